"""Parity: the exported graphs, run by onnxruntime, must answer as their scikit-learn / numpy references do.

Checked on real profiles (up to 1,000 users): identical segment labels, scores within MAX_SCORE_DIFF, and the
same top-10 lists. Both sides break exact ties the same way (the lower item index first), but float32 sums
taken in a different order can differ in the last bits, so two items the reference scores within
MAX_SCORE_DIFF of each other may swap places at the tenth place. Such a swap is counted apart
(`top10_tie_swaps`); a top-10 difference counts as a mismatch only where the scores differ by more than the
tolerance. Training refuses to write a version that fails, and a unit test runs the same check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from threadpoolctl import threadpool_limits

from model_export.training.recs import RecsModel
from model_export.training.segments import SegmentModel
from personalization.features import SEGMENT_DISTANCES, SEGMENT_INPUT, SEGMENT_LABEL
from personalization.profile import Profile
from personalization.recommend import OUTPUT_INDICES, OUTPUT_SCORES, exclusion_indices, onnx_feed, recent_inputs

PARITY_USERS = 1_000
TOP = 10
MAX_SCORE_DIFF = 1e-4
# The segment graph runs in float64 like scikit-learn: only summation order may differ.
MAX_DISTANCE_DIFF = 1e-9


class ParityError(AssertionError):
    """An exported graph disagrees with its reference."""


@dataclass(frozen=True)
class ParityReport:
    users: int
    segment_label_mismatches: int
    # Top-10 lists that differ from the reference's by more than a tie within MAX_SCORE_DIFF.
    top10_set_mismatches: int
    max_abs_score_diff: float
    # Top-10 lists that differ only by items the reference scores within MAX_SCORE_DIFF of the tenth.
    top10_tie_swaps: int = 0
    # The distances serve's hysteresis compares: the graph's against the pipeline's, in standardized units.
    segment_max_distance_diff: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.segment_label_mismatches == 0
            and self.segment_max_distance_diff <= MAX_DISTANCE_DIFF
            and self.top10_set_mismatches == 0
            and self.max_abs_score_diff <= MAX_SCORE_DIFF
        )

    def to_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "ok": self.ok}


def session(model_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def check(
    segment_onnx: bytes,
    segments: SegmentModel,
    features: npt.NDArray[np.float64],
    recs_onnx: bytes,
    recs: RecsModel,
    profiles: Sequence[Profile],
    position: Mapping[str, int],
) -> ParityReport:
    """`features[i]` is the feature vector of `profiles[i]`; both are cut to the first PARITY_USERS."""
    n = min(PARITY_USERS, len(profiles), len(features))
    labels_onnx, distances_onnx = session(segment_onnx).run(
        [SEGMENT_LABEL, SEGMENT_DISTANCES], {SEGMENT_INPUT: features[:n]}
    )
    label_mismatches = int(np.sum(np.asarray(labels_onnx).ravel() != segments.labels(features[:n])))
    distance_diff = float(np.max(np.abs(distances_onnx - segments.distances(features[:n])), initial=0.0))
    recs_report = recs_parity(recs_onnx, recs, profiles[:n], position)
    return ParityReport(
        n,
        label_mismatches,
        recs_report.top10_set_mismatches,
        recs_report.max_abs_score_diff,
        recs_report.top10_tie_swaps,
        distance_diff,
    )


def recs_parity(
    recs_onnx: bytes, recs: RecsModel, profiles: Sequence[Profile], position: Mapping[str, int]
) -> ParityReport:
    """recs.onnx against its reference on each profile's recent items, with serve's exclusions."""
    # One BLAS thread: a thousand small matrix-vector products (the factors part of each reference score) ran at
    # 57 ms each with BLAS threads contending on a busy 2-core machine (bench.train at 10x), for 1 ms of work.
    with threadpool_limits(1, "blas"):
        return _recs_parity(recs_onnx, recs, profiles, position)


def _recs_parity(
    recs_onnx: bytes, recs: RecsModel, profiles: Sequence[Profile], position: Mapping[str, int]
) -> ParityReport:
    graph = session(recs_onnx)
    weighting = recs.weighting()
    k = min(TOP, recs.n_items)
    set_mismatches, tie_swaps, max_diff = 0, 0, 0.0
    for profile in profiles:
        item_idx, item_w = recent_inputs(profile.recent, position, weighting)
        exclude = exclusion_indices((item for item, _, _ in profile.recent), position)
        top_idx, top_score = graph.run([OUTPUT_INDICES, OUTPUT_SCORES], onnx_feed(item_idx, item_w, exclude, k))
        reference = recs.score_vector(item_idx, item_w, exclude)
        ref_idx, _ = recs.top_k(item_idx, item_w, exclude, k)
        max_diff = max(max_diff, float(np.max(np.abs(top_score - reference[top_idx]), initial=0.0)))
        if set(top_idx.tolist()) != set(ref_idx.tolist()):
            if only_ties(top_idx, top_score, ref_idx, reference):
                tie_swaps += 1
            else:
                set_mismatches += 1
    return ParityReport(len(profiles), 0, set_mismatches, max_diff, tie_swaps)


def only_ties(
    top_idx: npt.NDArray[np.int64],
    top_score: npt.NDArray[np.float32],
    ref_idx: npt.NDArray[np.int64],
    reference: npt.NDArray[np.float32],
    tolerance: float = MAX_SCORE_DIFF,
) -> bool:
    """Whether two top-k lists differ only at the boundary, by items whose scores are within `tolerance`: every
    item only the graph kept scores (by the reference) at least the reference's k-th minus the tolerance, and
    every item only the reference kept scores at most the graph's k-th plus the tolerance."""
    if top_idx.size == 0 or ref_idx.size == 0:
        return top_idx.size == ref_idx.size
    graph_only = np.setdiff1d(top_idx, ref_idx)
    ref_only = np.setdiff1d(ref_idx, top_idx)
    ref_kth = float(reference[ref_idx].min())
    graph_kth = float(top_score.min())
    return bool(
        np.all(reference[graph_only] >= ref_kth - tolerance) and np.all(reference[ref_only] <= graph_kth + tolerance)
    )
