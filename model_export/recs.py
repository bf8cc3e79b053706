"""The exported recommender: what it learns, and the numpy reference of exactly what recs.onnx computes.

Design (each part stays because it won on the validation split; evaluate.py reports the numbers):
- Sessions are short and most users have a handful of events, so what predicts the next item is which items
  people combine, not a long-run taste. The core is item-item: a blend of EASE over the best-supported
  items, cosine over users (who touched both, weighted view < cart < purchase) and sequential session
  co-occurrence (what people open next), each on a common scale and cut to every item's top-M neighbors.
  Sparse lists grow linearly with the catalog: 50,000 items x 100 neighbors is 40 MB, where a dense
  item-item matrix would be 10 GB.
- A category component: the recent items' categories, weighted like the items, times each item's
  popularity within its category. It reaches the long tail that no co-occurrence covers yet (most items
  here were touched by one person), and it is what wins the most on validation; without categories in the
  data it is left out.
- Optional low-rank item factors (truncated SVD) add a smoothed similarity; the graph leaves them out
  when validation gives them no weight.
- A global popularity prior, log-scaled to [0, 1], orders whatever nothing else reaches.
score(j) = prior(j) + f F_j . sum_i w_i F_i + c catpop(j) sum_{i: cat(i) = cat(j)} w_i + sum_i w_i S[i, j],
excluded items get -1e9, then TopK.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import cache, lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from model_export.interactions import ItemIndex, session_sequences, user_item_matrix
from model_export.neighbors import (
    cosine,
    ease,
    ease_head,
    from_neighbors,
    item_factors,
    sequential,
    top_m,
    unit_scale,
)
from personalization.recommend import EXCLUDE_PENALTY, RecentWeighting

# EASE inverts a dense n x n Gram matrix, cubic in n: 10,000 items take about two minutes on two cores,
# which the baseline may spend; the exported model's EASE part uses at most EASE_HEAD_ITEMS (seconds).
EASE_MAX_ITEMS = 10_000
EASE_HEAD_ITEMS = 3_000
Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RecsParams:
    decay: float = 0.7
    category: float = 0.0
    ease: float = 0.0
    l2: float = 500.0
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


@dataclass(frozen=True)
class Categories:
    """Each item's category code (items without one share a last code whose weight is always 0) and its
    popularity within its category, log-scaled so the category's best-seller is 1."""

    codes: Ints
    count: int
    within: Floats

    def one_hot(self) -> sp.csr_matrix:
        n_items = self.codes.size
        return sp.csr_matrix(
            (np.ones(n_items, dtype=np.float32), (np.arange(n_items), self.codes)), shape=(n_items, self.count)
        )


@dataclass
class RecsModel:
    params: RecsParams
    item_ids: list[str]
    neighbor_idx: npt.NDArray[np.int32]
    neighbor_sim: Floats
    prior: Floats
    factors: Floats | None = None
    # Category code per item, and category weight x within-category popularity per item.
    item_category: Ints | None = None
    category_prior: Floats | None = None
    n_categories: int = 0
    _sparse: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def top_k(self, item_idx: Ints, item_w: Floats, exclude_idx: Ints, k: int) -> tuple[Ints, Floats]:
        """The reference of recs.onnx: TopK with ties to the lower index, over `score_vector`."""
        scores = self.score_vector(item_idx, item_w, exclude_idx)
        order = np.argsort(-scores, kind="stable")[:k]
        return order.astype(np.int64), scores[order]

    def score_vector(self, item_idx: Ints, item_w: Floats, exclude_idx: Ints) -> Floats:
        """The graph's scores before TopK, op for op and in the same order, in float32."""
        weights = item_w.astype(np.float32)
        scores = self.prior.copy()
        if self.factors is not None:
            user = (self.factors[item_idx] * weights[:, None]).sum(axis=0, dtype=np.float32)
            scores = scores + np.float32(self.params.factors) * (self.factors @ user)
        if self.item_category is not None and self.category_prior is not None:
            category_w = np.zeros(self.n_categories, dtype=np.float32)
            np.add.at(category_w, self.item_category[item_idx], weights)
            scores = scores + category_w[self.item_category] * self.category_prior
        contributions = (self.neighbor_sim[item_idx] * weights[:, None]).ravel()
        np.add.at(scores, self.neighbor_idx[item_idx].ravel().astype(np.int64), contributions)
        mask = np.zeros(self.n_items, dtype=np.float32)
        mask[exclude_idx] = np.float32(EXCLUDE_PENALTY)
        return scores + mask

    def scores(self, inputs: sp.csr_matrix) -> Floats:
        """Batch scores of many queries at once (offline selection); equal to top_k's up to float rounding."""
        if self._sparse is None:
            self._sparse = from_neighbors(self.neighbor_idx, self.neighbor_sim)
        dense = np.asarray((inputs @ self._sparse).todense(), dtype=np.float32) + self.prior[None, :]
        if self.factors is not None:
            dense += np.float32(self.params.factors) * ((inputs @ self.factors) @ self.factors.T)
        if self.item_category is not None and self.category_prior is not None:
            one_hot = Categories(self.item_category, self.n_categories, self.category_prior).one_hot()
            spread = sp.csr_matrix(one_hot.T.multiply(self.category_prior[None, :]))
            dense += np.asarray(((inputs @ one_hot) @ spread).todense(), dtype=np.float32)
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

    @lru_cache(maxsize=3)  # noqa: B019  # n x n floats each: keep only the few a search compares
    def ease(self, l2: float) -> npt.NDArray[np.float32]:
        """Full-catalog EASE, for the baseline (EASE_MAX_ITEMS bounds the catalogs it runs on)."""
        return ease(self.user_items, l2)

    @cache  # noqa: B019
    def ease_neighbors(self, l2: float) -> sp.csr_matrix:
        return ease_head(self.user_items, l2, EASE_HEAD_ITEMS)

    @cache  # noqa: B019
    def factors(self, dimensions: int) -> Floats:
        return item_factors(self.user_items, dimensions)

    @cache  # noqa: B019
    def categories(self) -> Categories | None:
        """None when no item has a category (the component then has nothing to say)."""
        codes, uniques = pd.factorize(pd.Series(self.index.categories, dtype=object))
        if len(uniques) == 0:
            return None
        none = len(uniques)
        codes = np.where(codes < 0, none, codes).astype(np.int64)
        popularity = np.log1p(np.maximum(self.index.popularity, 0.0))
        best = np.zeros(none + 1)
        np.maximum.at(best, codes, popularity)
        within = np.where(codes < none, popularity / np.maximum(best[codes], 1e-12), 0.0)
        return Categories(codes, none + 1, np.asarray(within, dtype=np.float32))

    def neighbors(self, params: RecsParams) -> tuple[npt.NDArray[np.int32], Floats]:
        """The blend: share `ease` of EASE (over the best-supported items), the rest split `blend` to cosine
        and 1 - `blend` to sequential co-occurrence, each on a common scale, then cut to top-M."""
        only = {name: getattr(params, name) for name in ("ease", "l2", "blend", "window", "backward", "neighbors")}
        # Cached on the parameters that shape the lists only, so a search over the others reuses them.
        return self._neighbors(replace(RecsParams(), **only))

    @cache  # noqa: B019
    def _neighbors(self, params: RecsParams) -> tuple[npt.NDArray[np.int32], Floats]:
        parts = []
        if params.ease > 0:
            parts.append(params.ease * unit_scale(self.ease_neighbors(params.l2)))
        if params.ease < 1 and params.blend > 0:
            parts.append((1.0 - params.ease) * params.blend * unit_scale(self.cosine()))
        if params.ease < 1 and params.blend < 1:
            sequential = self.sequential(params.window, params.backward)
            parts.append((1.0 - params.ease) * (1.0 - params.blend) * unit_scale(sequential))
        return top_m(sp.csr_matrix(sum(parts[1:], parts[0])), params.neighbors)

    def prior(self) -> Floats:
        popularity = np.log1p(np.maximum(self.index.popularity, 0.0))
        top = popularity.max() if popularity.size else 1.0
        return np.asarray(popularity / (top if top > 0 else 1.0), dtype=np.float32)

    def fit(self, params: RecsParams) -> RecsModel:
        neighbor_idx, neighbor_sim = self.neighbors(params)
        categories = self.categories() if params.category > 0 else None
        return RecsModel(
            params=params,
            item_ids=self.index.ids,
            neighbor_idx=neighbor_idx,
            neighbor_sim=neighbor_sim,
            prior=np.float32(params.prior) * self.prior(),
            factors=self.factors(params.dimensions) if params.factors > 0 else None,
            item_category=None if categories is None else categories.codes,
            category_prior=None if categories is None else np.float32(params.category) * categories.within,
            n_categories=0 if categories is None else categories.count,
        )


def with_values(params: RecsParams, **changes: Any) -> RecsParams:
    return replace(params, **changes)
