"""The exported recommender's one graph shape, its numpy reference, and the training data every family reads.

Every family (model_export/recommenders/) fits into the same exportable shape, so serve runs any of them
with the same inputs and outputs:
score(j) = prior(j) + f F_j . sum_i w_i Q_i + c catpop(j) sum_{i: cat(i) = cat(j)} w_i + sum_i w_i S[i, j],
rounded to multiples of QUANTUM; excluded items get -1e9, then TopK (ties to the lower index). S is stored as
each item's top-M neighbours (sparse lists grow linearly with the catalog: 50,000 items x 100 neighbours is
40 MB, where a dense item-item matrix would be 10 GB); F and Q are optional low-rank item factors (Q = F
unless a family needs a separate query side); the category part is left out when the data has no categories.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from model_export.training.interactions import Interactions, ItemIndex, count_interactions
from model_export.training.neighbors import (
    cosine,
    ease,
    ease_head,
    from_neighbors,
    item_factors,
    svd_factors,
)
from personalization.recommend import EXCLUDE_PENALTY, RecentWeighting

# EASE inverts a dense n x n Gram matrix, cubic in n: 10,000 items take about two minutes on two cores,
# which the baseline may spend; the exported model's EASE part uses at most EASE_HEAD_ITEMS (seconds).
EASE_MAX_ITEMS = 10_000
EASE_HEAD_ITEMS = 3_000
Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
T = TypeVar("T")
# Scores are rounded to multiples of this before TopK, in the graph and in the reference alike: float32 sums
# taken in a different order (onnxruntime's Gemm and scatter against numpy's) differ in the last bits, and
# without the rounding two items that tie in exact arithmetic would come out in either order. A power of two,
# so scaling by it is exact; 1.5e-5 is far below any difference that matters to a ranking.
QUANTUM = 2.0**-16


def quantized(scores: Floats) -> Floats:
    return np.asarray(np.round(scores * np.float32(1.0 / QUANTUM)) * np.float32(QUANTUM), dtype=np.float32)


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
    """What recs.onnx holds. `params` are the family's hyperparameters, the recent-items decay included."""

    family: str
    params: dict[str, Any]
    item_ids: list[str]
    neighbor_idx: npt.NDArray[np.int32]
    neighbor_sim: Floats
    prior: Floats
    factors: Floats | None = None
    # The query side of the factors (None: the same as `factors`), and their weight in the score.
    query_factors: Floats | None = None
    factor_weight: float = 0.0
    # Category code per item, and category weight x within-category popularity per item.
    item_category: Ints | None = None
    category_prior: Floats | None = None
    n_categories: int = 0
    _sparse: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def weighting(self) -> RecentWeighting:
        return RecentWeighting(decay=float(self.params.get("decay", RecentWeighting().decay)))

    def described(self) -> dict[str, Any]:
        return {"family": self.family, **self.params}

    def top_k(self, item_idx: Ints, item_w: Floats, exclude_idx: Ints, k: int) -> tuple[Ints, Floats]:
        """The reference of recs.onnx: TopK with ties to the lower index, over `score_vector`."""
        scores = self.score_vector(item_idx, item_w, exclude_idx)
        order = np.argsort(-scores, kind="stable")[:k]
        return order.astype(np.int64), scores[order]

    def _query_side(self) -> Floats | None:
        return self.query_factors if self.query_factors is not None else self.factors

    def score_vector(self, item_idx: Ints, item_w: Floats, exclude_idx: Ints) -> Floats:
        """The graph's scores before TopK, op for op and in the same order, in float32."""
        weights = item_w.astype(np.float32)
        scores = self.prior.copy()
        query = self._query_side()
        if self.factors is not None and query is not None:
            user = (query[item_idx] * weights[:, None]).sum(axis=0, dtype=np.float32)
            scores = scores + np.float32(self.factor_weight) * (self.factors @ user)
        if self.item_category is not None and self.category_prior is not None:
            category_w = np.zeros(self.n_categories, dtype=np.float32)
            np.add.at(category_w, self.item_category[item_idx], weights)
            scores = scores + category_w[self.item_category] * self.category_prior
        contributions = (self.neighbor_sim[item_idx] * weights[:, None]).ravel()
        np.add.at(scores, self.neighbor_idx[item_idx].ravel().astype(np.int64), contributions)
        mask = np.zeros(self.n_items, dtype=np.float32)
        mask[exclude_idx] = np.float32(EXCLUDE_PENALTY)
        return quantized(scores) + mask

    def scores(self, inputs: sp.csr_matrix) -> Floats:
        """Batch scores of many queries at once (offline selection); equal to top_k's up to float rounding."""
        if self._sparse is None:
            self._sparse = from_neighbors(self.neighbor_idx, self.neighbor_sim)
        dense = np.asarray((inputs @ self._sparse).todense(), dtype=np.float32) + self.prior[None, :]
        query = self._query_side()
        if self.factors is not None and query is not None:
            dense += np.float32(self.factor_weight) * ((inputs @ query) @ self.factors.T)
        if self.item_category is not None and self.category_prior is not None:
            one_hot = Categories(self.item_category, self.n_categories, self.category_prior).one_hot()
            spread = sp.csr_matrix(one_hot.T.multiply(self.category_prior[None, :]))
            dense += np.asarray(((inputs @ one_hot) @ spread).todense(), dtype=np.float32)
        return quantized(dense)


def no_neighbors(n_items: int) -> tuple[npt.NDArray[np.int32], Floats]:
    """Neighbour lists that add nothing (each item itself at score 0), for families without an item-item part."""
    return np.arange(n_items, dtype=np.int32)[:, None], np.zeros((n_items, 1), dtype=np.float32)


class RecsData:
    """One training frame's inputs to the recommender, with the costly parts cached across candidates."""

    def __init__(self, frame: pd.DataFrame, index: ItemIndex | None = None, counts: Interactions | None = None) -> None:
        """`counts`: the frame's interactions when already counted (on Spark); else counted here."""
        self.index = index or ItemIndex.from_frame(frame)
        counts = counts or count_interactions(frame, self.index)
        self.user_items = counts.user_items
        self.pairs = counts.pairs
        self._memo: dict[Hashable, Any] = {}

    def cached(self, key: Hashable, make: Callable[[], T]) -> T:
        """What a family derives from this data (neighbour lists, say), made once per key."""
        if key not in self._memo:
            self._memo[key] = make()
        found: T = self._memo[key]
        return found

    @cache  # noqa: B019  # one RecsData per training frame, dropped with it
    def cosine(self) -> sp.csr_matrix:
        return cosine(self.user_items)

    @cache  # noqa: B019
    def sequential(self, window: int, backward: float) -> sp.csr_matrix:
        return self.pairs.similarity(len(self.index), window, backward)

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

    @lru_cache(maxsize=4)  # noqa: B019
    def svd(self, dimensions: int) -> tuple[Floats, Floats]:
        """Truncated SVD of the user x item matrix: the item factors V [n x d] and the singular values."""
        return svd_factors(self.user_items, dimensions)

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

    def prior(self) -> Floats:
        popularity = np.log1p(np.maximum(self.index.popularity, 0.0))
        top = popularity.max() if popularity.size else 1.0
        return np.asarray(popularity / (top if top > 0 else 1.0), dtype=np.float32)
