"""Ranking metrics over top-k lists, and the batched top-k every offline scorer goes through."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from model_export.training.protocols import Queries

CUTOFF = 20
NDCG_AT = 10
COVERAGE_AT = 10
# Dense score blocks of about this many floats: 50,000 items x 80 queries, 16 MB.
BLOCK_FLOATS = 4_000_000

Scorer = Callable[[sp.csr_matrix], npt.NDArray[np.float32]]
TopLists = npt.NDArray[np.int64]


def top_k(scores: npt.NDArray[np.float32], k: int) -> TopLists:
    """Rows' k best indices by (score descending, index ascending): the ONNX TopK order, so ties (items no
    signal reaches) fall back to catalog order, which is popularity."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
    # argpartition breaks ties at the k-th score arbitrarily; only rows with more tied items than places
    # left need the exact rule, and they are redone one by one.
    above = (scores > kth[:, None]).sum(axis=1)
    tied = (scores == kth[:, None]).sum(axis=1)
    for row in np.flatnonzero(above + tied > k):
        row_scores = scores[row]
        chosen = np.flatnonzero(row_scores > kth[row])
        fill = np.flatnonzero(row_scores == kth[row])[: k - chosen.size]
        part[row] = np.concatenate([chosen, fill])
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -picked), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def rank(scorer: Scorer, queries: Queries, k: int = CUTOFF) -> TopLists:
    """Top-k lists of a batch scorer, with each query's exclusions removed."""
    n_items = queries.inputs.shape[1]
    block = max(1, BLOCK_FLOATS // max(n_items, 1))
    lists = []
    for start in range(0, len(queries), block):
        stop = min(start + block, len(queries))
        scores = np.asarray(scorer(queries.inputs[start:stop]), dtype=np.float32)
        excluded = queries.exclude[start:stop].tocoo()
        scores[excluded.row, excluded.col] = -np.inf
        lists.append(top_k(scores, k))
    return np.concatenate(lists) if lists else np.zeros((0, k), dtype=np.int64)


def per_query(lists: TopLists, queries: Queries, n_items: int) -> dict[str, npt.NDArray[np.float64]]:
    """Each query's NDCG@10, Recall@20 (the hit rate when each query has one target) and MRR@20."""
    discounts = 1.0 / np.log2(np.arange(2, CUTOFF + 2))
    n_queries = len(queries.targets)
    if n_queries == 0:
        return {name: np.zeros(0) for name in ("ndcg@10", "recall@20", "mrr")}
    wanted = queries.n_targets.astype(np.float64)
    rows = np.repeat(np.arange(n_queries), [t.size for t in queries.targets])
    cols = np.concatenate(queries.targets)
    relevant = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_queries, n_items))
    top = lists[:, :CUTOFF]
    hits = np.asarray(relevant[np.repeat(np.arange(n_queries), top.shape[1]), top.ravel()]).reshape(top.shape) > 0
    ideal = np.cumsum(discounts[:NDCG_AT])[np.clip(np.minimum(wanted, NDCG_AT).astype(int) - 1, 0, None)]
    dcg = (hits[:, :NDCG_AT] * discounts[: min(NDCG_AT, top.shape[1])]).sum(axis=1)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, np.inf)
    return {
        "ndcg@10": np.where(wanted > 0, dcg / ideal, 0.0),
        "recall@20": np.where(wanted > 0, hits.sum(axis=1) / np.maximum(wanted, 1), 0.0),
        "mrr": 1.0 / first,
    }


def summarize(lists: TopLists, queries: Queries, n_items: int) -> dict[str, float]:
    """Means of `per_query`, and coverage@10: the share of the catalog that appears in any top-10 list."""
    found = {
        name: round(float(values.mean()) if values.size else 0.0, 4)
        for name, values in per_query(lists, queries, n_items).items()
    }
    covered = np.unique(lists[:, :COVERAGE_AT]).size if lists.size else 0
    return {**found, "coverage": round(covered / max(n_items, 1), 4)}


def interval(values: npt.NDArray[np.float64], seed: int = 0, resamples: int = 1000) -> float:
    """Half-width of a 95% bootstrap interval of the mean: how far apart two models must be to differ."""
    if values.size < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(high - low) / 2.0
