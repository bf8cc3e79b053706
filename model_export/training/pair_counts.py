"""Session co-occurrence counts, the part of the co-occurrence similarity that grows with the data.

Kept apart from neighbors.py (scikit-learn, LAPACK) so that Spark's Python workers, which count, import only
numpy and scipy.sparse: every worker imports the modules of the functions it runs, and with scikit-learn that
import cost seconds per worker (more than a partition's counting at 10x the bundled shop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

# The longest window any family or baseline asks for: co-occurrences are counted up to this lag once, and every
# window's similarity is read from those counts (recommenders/cooccurrence.py, hybrid.py, evaluation/baselines.py).
MAX_WINDOW = 5


@dataclass(frozen=True)
class PairCounts:
    """How often item `after` followed item `before` at exactly `lag` steps within one session, and how often each
    item occurs in the sequences: integers, so partial counts (one per user partition, on Spark) sum to exactly
    the counts of the whole, and every engine derives the same similarity from them."""

    lag: npt.NDArray[np.int64]
    before: npt.NDArray[np.int64]
    after: npt.NDArray[np.int64]
    count: npt.NDArray[np.int64]
    occurrences: npt.NDArray[np.int64]

    @classmethod
    def of(cls, sequences: Sequence[npt.NDArray[np.int64]], n_items: int, max_lag: int = MAX_WINDOW) -> PairCounts:
        """The counts of `sequences` (each a session's items in time order), lags 1..max_lag."""
        empty = np.zeros(0, dtype=np.int64)
        if not sequences:
            return cls(empty, empty, empty, empty, np.zeros(n_items, dtype=np.int64))
        items = np.concatenate(sequences).astype(np.int64)
        session = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
        lags, befores, afters, counts = [], [], [], []
        for lag in range(1, max_lag + 1):
            same = session[lag:] == session[:-lag]
            pairs, count = np.unique(items[:-lag][same] * n_items + items[lag:][same], return_counts=True)
            lags.append(np.full(pairs.size, lag, dtype=np.int64))
            befores.append(pairs // n_items)
            afters.append(pairs % n_items)
            counts.append(count.astype(np.int64))
        occurrences = np.bincount(items, minlength=n_items).astype(np.int64)
        return cls(
            np.concatenate(lags), np.concatenate(befores), np.concatenate(afters), np.concatenate(counts), occurrences
        )

    def similarity(self, n_items: int, window: int = 3, backward: float = 0.5) -> sp.csr_matrix:
        """Session co-occurrence: j after i within `window` steps counts 1/lag, j before i counts `backward`/lag.

        Direction matters on the session protocol (people move on from a phone to its case more than back), so
        the pairs are weighted asymmetrically; dividing by sqrt(n_i * n_j) keeps best-sellers from being
        everyone's neighbor. Summed lag by lag, element by element: the same counts give the same bits, in
        whatever order the entries arrived."""
        if window > MAX_WINDOW:
            raise ValueError(f"co-occurrences are counted up to lag {MAX_WINDOW}, not {window}")
        forward = sp.csr_matrix((n_items, n_items), dtype=np.float64)
        for lag in range(1, window + 1):
            at = self.lag == lag
            counted = (self.count[at].astype(np.float64), (self.before[at], self.after[at]))
            forward = forward + sp.csr_matrix(counted, shape=(n_items, n_items)) * (1.0 / lag)
        counts = sp.csr_matrix(forward + forward.T * backward)
        counts.setdiag(0.0)
        counts.eliminate_zeros()
        scale = 1.0 / np.sqrt(np.maximum(self.occurrences.astype(np.float64), 1.0))
        similarity = sp.csr_matrix(sp.diags(scale) @ counts @ sp.diags(scale), dtype=np.float32)
        similarity.sort_indices()
        return similarity
