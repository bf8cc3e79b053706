"""Item-item similarities learned from implicit feedback, all on scipy sparse matrices.

Cosine over users, sequential co-occurrence within sessions, low-rank item factors, and the top-M truncation
that turns a sparse similarity into fixed-size neighbor lists (what the ONNX graph stores).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.linalg import lapack
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

from model_export.training.pair_counts import PairCounts

# A person with thousands of items would add millions of pairs and say little about any one of them.
MAX_ITEMS_PER_ROW = 200


def cap_rows(matrix: sp.csr_matrix, limit: int = MAX_ITEMS_PER_ROW) -> sp.csr_matrix:
    """Keep each row's `limit` largest entries."""
    lengths = np.diff(matrix.indptr)
    if lengths.size == 0 or lengths.max() <= limit:
        return matrix
    rows, cols, vals = [], [], []
    for row in np.flatnonzero(lengths > 0):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        data = matrix.data[start:end]
        keep = np.argsort(-data, kind="stable")[:limit]
        rows.append(np.full(keep.size, row))
        cols.append(matrix.indices[start:end][keep])
        vals.append(data[keep])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape, dtype=matrix.dtype
    )


def cosine(user_items: sp.csr_matrix) -> sp.csr_matrix:
    """Item-item cosine over the rows (users or sessions) of a weighted matrix, diagonal removed."""
    columns = normalize(cap_rows(user_items).tocsc(), axis=0)
    similarity = (columns.T @ columns).tocsr()
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    return similarity.astype(np.float32)


def sequential(
    sequences: Sequence[npt.NDArray[np.int64]], n_items: int, window: int = 3, backward: float = 0.5
) -> sp.csr_matrix:
    """PairCounts.similarity of `sequences`, counted here (RecsData counts once for every window)."""
    return PairCounts.of(sequences, n_items, window).similarity(n_items, window, backward)


def item_factors(user_items: sp.csr_matrix, dimensions: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """Unit-length item vectors from a truncated SVD: their dot product is a smoothed cosine that also links
    items no one has combined yet (what the sparse neighbors cannot)."""
    n_rows, n_items = user_items.shape
    dimensions = max(1, min(dimensions, n_items - 1, n_rows - 1))
    if dimensions < 1 or n_items < 3 or n_rows < 3:
        return np.zeros((n_items, 1), dtype=np.float32)
    svd = TruncatedSVD(n_components=dimensions, algorithm="randomized", n_iter=7, random_state=seed)
    with threadpool_limits(1, "blas"):  # see svd_factors
        svd.fit(user_items)
    factors = svd.components_.T * svd.singular_values_
    return np.asarray(normalize(factors), dtype=np.float32)


def svd_factors(
    user_items: sp.csr_matrix, dimensions: int, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """PureSVD (Cremonesi et al. 2010): the top right singular vectors V [n_items x d] of the user x item
    matrix, and the singular values. A history x scores x V V^T: its projection on the d strongest tastes."""
    n_rows, n_items = user_items.shape
    dimensions = min(dimensions, n_items - 1, n_rows - 1)
    if dimensions < 1:
        return np.zeros((n_items, 1), dtype=np.float32), np.zeros(1, dtype=np.float32)
    svd = TruncatedSVD(n_components=dimensions, algorithm="randomized", n_iter=7, random_state=seed)
    # One BLAS thread: the randomized SVD's many small QR and LU steps ran 15x slower with BLAS threads
    # competing for a busy 2-core machine.
    with threadpool_limits(1, "blas"):
        svd.fit(user_items)
    return np.asarray(svd.components_.T, dtype=np.float32), np.asarray(svd.singular_values_, dtype=np.float32)


def spd_inverse(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Inverse of a symmetric positive definite matrix through Cholesky: half the time of a general inverse."""
    factor, info = lapack.spotrf(matrix, lower=1, clean=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky failed (info={info})")
    inverse, info = lapack.spotri(factor, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverse failed (info={info})")
    lower = np.tril(inverse)
    return np.asarray(lower + np.tril(inverse, -1).T, dtype=np.float32)


def ease(user_items: sp.csr_matrix, l2: float) -> npt.NDArray[np.float32]:
    """EASE (Steck 2019): the item-item weights B that best rebuild each row from its other items,
    B = I - P / diag(P) with P = (X^T X + l2 I)^-1. Dense n x n, so only for a few thousand items.
    Its weights can be negative (items that substitute for each other), and the graph keeps them."""
    matrix = user_items.astype(np.float32)
    gram = np.asarray((matrix.T @ matrix).todense(), dtype=np.float32)
    gram[np.diag_indices_from(gram)] += np.float32(l2)
    inverse = spd_inverse(gram)
    weights = -inverse / np.diag(inverse)[None, :]
    weights[np.diag_indices_from(weights)] = 0.0
    return np.asarray(weights, dtype=np.float32)


def supported_items(user_items: sp.csr_matrix, limit: int) -> npt.NDArray[np.int64]:
    """The (at most `limit`) items the most rows touched, among those at least two rows touched: an item
    one person touched says nothing about what goes with it that cosine does not already say."""
    support = np.diff(user_items.tocsc().indptr)
    candidates = np.flatnonzero(support >= 2)
    if candidates.size > limit:
        candidates = candidates[np.lexsort((candidates, -support[candidates]))[:limit]]
    return np.sort(candidates).astype(np.int64)


def ease_head(user_items: sp.csr_matrix, l2: float, limit: int) -> sp.csr_matrix:
    """EASE over the catalog's best-supported items, as a sparse n x n matrix of their strongest weights.

    Restricting EASE to the head keeps its dense inverse small at any catalog size; the tail is still
    reached through the sparse cosine and co-occurrence neighbors.
    """
    n_items = user_items.shape[1]
    head = supported_items(user_items, limit)
    if head.size < 2:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    block = strongest(ease(user_items[:, head], l2)).tocoo()
    return sp.csr_matrix((block.data, (head[block.row], head[block.col])), shape=(n_items, n_items), dtype=np.float32)


def strongest(dense: npt.NDArray[np.float32], m: int = 200) -> sp.csr_matrix:
    """A dense item-item matrix cut to each row's m largest magnitudes (the rest is noise), sparse."""
    n_items = dense.shape[0]
    m = min(m, max(n_items - 1, 1))
    if n_items <= m:
        return sp.csr_matrix(dense)
    cols = np.argpartition(-np.abs(dense), m - 1, axis=1)[:, :m]
    rows = np.repeat(np.arange(n_items), m)
    values = np.take_along_axis(dense, cols, axis=1).ravel()
    matrix = sp.csr_matrix((values, (rows, cols.ravel())), shape=dense.shape, dtype=np.float32)
    matrix.eliminate_zeros()
    return matrix


def unit_scale(similarity: sp.csr_matrix) -> sp.csr_matrix:
    """Scaled so that an item's strongest neighbor weighs 1 on average: cosine, co-occurrence and EASE
    weights live on different scales, and a blend of them should mean what its shares say."""
    similarity = similarity.tocsr()
    if similarity.nnz == 0:
        return similarity
    peaks = abs(similarity).max(axis=1).toarray().ravel()
    typical = float(np.mean(peaks[peaks > 0]))
    return sp.csr_matrix(similarity / typical, dtype=np.float32)


def top_m(similarity: sp.csr_matrix, m: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """Each item's m strongest neighbors (by magnitude), as [n_items x m] index and score arrays.

    Rows with fewer than m neighbors are padded with the item itself at score 0, which adds nothing when the
    graph scatters the scores, so the graph needs no ragged shapes.
    """
    similarity = similarity.tocsr()
    similarity.eliminate_zeros()
    n_items = similarity.shape[0]
    m = max(1, min(m, max(n_items - 1, 1)))
    indices = np.repeat(np.arange(n_items, dtype=np.int32)[:, None], m, axis=1)
    scores = np.zeros((n_items, m), dtype=np.float32)
    rows = np.repeat(np.arange(n_items), np.diff(similarity.indptr))
    # One sort of all entries, by row, then magnitude, then column: stable lists from the same data.
    order = np.lexsort((similarity.indices, -np.abs(similarity.data), rows))
    rank = np.arange(order.size) - similarity.indptr[rows[order]]
    keep = order[rank < m]
    indices[rows[keep], rank[rank < m]] = similarity.indices[keep]
    scores[rows[keep], rank[rank < m]] = similarity.data[keep]
    return indices, scores


def from_neighbors(indices: npt.NDArray[np.int32], scores: npt.NDArray[np.float32]) -> sp.csr_matrix:
    """The sparse matrix the neighbor lists stand for (padding drops out as explicit zeros)."""
    n_items, m = indices.shape
    rows = np.repeat(np.arange(n_items), m)
    matrix = sp.csr_matrix((scores.ravel(), (rows, indices.ravel())), shape=(n_items, n_items), dtype=np.float32)
    matrix.eliminate_zeros()
    return matrix
