"""The exported recommender: what it learns, and the numpy reference of exactly what recs.onnx computes.

Design (kept because it won on validation against the alternatives; see evaluate.py for the numbers):
- Sessions here are short and most users have a handful of events, so what predicts the next item is which
  items people combine, not a user's long-run taste. The core is therefore item-item: a blend of cosine over
  users (who touched both, weighted view < cart < purchase) and sequential session co-occurrence (what
  people open next), truncated to each item's top-M neighbors. Sparse lists scale linearly with the
  catalog: 50,000 items x 100 neighbors is 40 MB, where a dense item-item matrix would be 10 GB.
- Optional low-rank item factors (truncated SVD) add a smoothed similarity that reaches items no session
  combined yet; their weight is a hyperparameter, and the graph leaves them out when it is 0.
- A popularity prior, log-scaled to [0, 1], fills lists for users whose items have few neighbors.
score(j) = prior * p(j) + f * (sum_i w_i F_i) . F_j + sum_i w_i S[i, j]; excluded items get -1e9; TopK.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from model_export.interactions import ItemIndex, session_sequences, user_item_matrix
from model_export.neighbors import cosine, from_neighbors, item_factors, sequential, top_m
from personalization.recommend import EXCLUDE_PENALTY, RecentWeighting

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RecsParams:
    decay: float = 0.5
    blend: float = 0.5
    window: int = 3
    backward: float = 0.5
    factors: float = 0.0
    dimensions: int = 64
    prior: float = 0.01
    neighbors: int = 100

    def weighting(self) -> RecentWeighting:
        return RecentWeighting(decay=self.decay)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RecsModel:
    params: RecsParams
    item_ids: list[str]
    neighbor_idx: npt.NDArray[np.int32]
    neighbor_sim: Floats
    prior: Floats
    factors: Floats | None = None
    _sparse: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def top_k(self, item_idx: Ints, item_w: Floats, exclude_idx: Ints, k: int) -> tuple[Ints, Floats]:
        """The reference of recs.onnx, op for op in float32 (Gather, Mul, ReduceSum, Gemm, ScatterElements
        add, mask add, TopK with ties to the lower index)."""
        weights = item_w.astype(np.float32)
        scores = self.prior.copy()
        if self.factors is not None:
            user = (self.factors[item_idx] * weights[:, None]).sum(axis=0, dtype=np.float32)
            scores = scores + np.float32(self.params.factors) * (self.factors @ user)
        contributions = (self.neighbor_sim[item_idx] * weights[:, None]).ravel()
        np.add.at(scores, self.neighbor_idx[item_idx].ravel().astype(np.int64), contributions)
        mask = np.zeros(self.n_items, dtype=np.float32)
        mask[exclude_idx] = np.float32(EXCLUDE_PENALTY)
        scores = scores + mask
        order = np.argsort(-scores, kind="stable")[:k]
        return order.astype(np.int64), scores[order]

    def scores(self, inputs: sp.csr_matrix) -> Floats:
        """Batch scores of many queries at once (offline selection); equal to top_k's up to float rounding."""
        if self._sparse is None:
            self._sparse = from_neighbors(self.neighbor_idx, self.neighbor_sim)
        dense = np.asarray((inputs @ self._sparse).todense(), dtype=np.float32) + self.prior[None, :]
        if self.factors is not None:
            dense += np.float32(self.params.factors) * ((inputs @ self.factors) @ self.factors.T)
        return dense


class RecsData:
    """One training frame's inputs to the recommender, with the costly parts cached across candidates."""

    def __init__(self, frame: pd.DataFrame, index: ItemIndex | None = None) -> None:
        self.index = index or ItemIndex.from_frame(frame)
        self.user_items, _ = user_item_matrix(frame, self.index.position, len(self.index))
        self.sequences = session_sequences(frame, self.index.position)

    @cache  # noqa: B019  # one RecsData per training frame, dropped with it
    def cosine(self) -> sp.csr_matrix:
        return cosine(self.user_items)

    @cache  # noqa: B019
    def sequential(self, window: int, backward: float) -> sp.csr_matrix:
        return sequential(self.sequences, len(self.index), window, backward)

    @cache  # noqa: B019
    def factors(self, dimensions: int) -> Floats:
        return item_factors(self.user_items, dimensions)

    @cache  # noqa: B019
    def neighbors(self, blend: float, window: int, backward: float, m: int) -> tuple[npt.NDArray[np.int32], Floats]:
        parts = []
        if blend > 0:
            parts.append(blend * self.cosine())
        if blend < 1:
            parts.append((1.0 - blend) * self.sequential(window, backward))
        return top_m(sp.csr_matrix(sum(parts[1:], parts[0])), m)

    def prior(self) -> Floats:
        popularity = np.log1p(np.maximum(self.index.popularity, 0.0))
        top = popularity.max() if popularity.size else 1.0
        return np.asarray(popularity / (top if top > 0 else 1.0), dtype=np.float32)

    def fit(self, params: RecsParams) -> RecsModel:
        neighbor_idx, neighbor_sim = self.neighbors(params.blend, params.window, params.backward, params.neighbors)
        return RecsModel(
            params=params,
            item_ids=self.index.ids,
            neighbor_idx=neighbor_idx,
            neighbor_sim=neighbor_sim,
            prior=np.float32(params.prior) * self.prior(),
            factors=self.factors(params.dimensions) if params.factors > 0 else None,
        )


def with_values(params: RecsParams, **changes: Any) -> RecsParams:
    return replace(params, **changes)
