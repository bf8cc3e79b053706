"""Ranking metrics over top-k lists, and the batched top-k every offline scorer goes through."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from model_export.protocols import Queries

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
    n_items = scores.shape[1]
    k = min(k, n_items)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.min(np.take_along_axis(scores, part, axis=1), axis=1)
    out = np.empty((scores.shape[0], k), dtype=np.int64)
    for row in range(scores.shape[0]):
        row_scores = scores[row]
        above = np.flatnonzero(row_scores > kth[row])
        ties = np.flatnonzero(row_scores == kth[row])[: k - above.size]
        chosen = np.concatenate([above, ties])
        out[row] = chosen[np.lexsort((chosen, -row_scores[chosen]))]
    return out


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


def summarize(lists: TopLists, queries: Queries, n_items: int) -> dict[str, float]:
    """NDCG@10, Recall@20 (the hit rate when each query has one target), MRR@20, coverage@10."""
    discounts = 1.0 / np.log2(np.arange(2, CUTOFF + 2))
    ndcg, recall, mrr = [], [], []
    for row, targets in enumerate(queries.targets):
        wanted = int(queries.n_targets[row])
        hits = np.isin(lists[row, :CUTOFF], targets)
        ideal = discounts[: min(wanted, NDCG_AT)].sum()
        ndcg.append(float(discounts[:NDCG_AT][hits[:NDCG_AT]].sum() / ideal) if ideal > 0 else 0.0)
        recall.append(float(hits.sum()) / wanted if wanted else 0.0)
        first = np.flatnonzero(hits)
        mrr.append(1.0 / (first[0] + 1) if first.size else 0.0)
    covered = np.unique(lists[:, :COVERAGE_AT]).size if lists.size else 0
    return {
        "ndcg@10": round(float(np.mean(ndcg)) if ndcg else 0.0, 4),
        "recall@20": round(float(np.mean(recall)) if recall else 0.0, 4),
        "mrr": round(float(np.mean(mrr)) if mrr else 0.0, 4),
        "coverage": round(covered / max(n_items, 1), 4),
    }
