"""Parity: the exported graphs, run by onnxruntime, must answer as their scikit-learn / numpy references do.

Checked on real profiles (up to 1,000 users): identical segment labels, identical top-10 item sets, and
scores within 1e-4. Training refuses to write a version that fails, and a unit test runs the same check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from model_export.recs import RecsModel
from model_export.segments import SegmentModel
from personalization.features import SEGMENT_INPUT, SEGMENT_LABEL
from personalization.profile import Profile
from personalization.recommend import OUTPUT_INDICES, OUTPUT_SCORES, exclusion_indices, onnx_feed, recent_inputs

PARITY_USERS = 1_000
TOP = 10
MAX_SCORE_DIFF = 1e-4


class ParityError(AssertionError):
    """An exported graph disagrees with its reference."""


@dataclass(frozen=True)
class ParityReport:
    users: int
    segment_label_mismatches: int
    top10_set_mismatches: int
    max_abs_score_diff: float

    @property
    def ok(self) -> bool:
        return (
            self.segment_label_mismatches == 0
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
    labels_onnx = session(segment_onnx).run([SEGMENT_LABEL], {SEGMENT_INPUT: features[:n]})[0]
    label_mismatches = int(np.sum(np.asarray(labels_onnx).ravel() != segments.labels(features[:n])))
    graph = session(recs_onnx)
    weighting = recs.params.weighting()
    k = min(TOP, recs.n_items)
    set_mismatches, max_diff = 0, 0.0
    for profile in profiles[:n]:
        item_idx, item_w = recent_inputs(profile.recent, position, weighting)
        exclude = exclusion_indices((item for item, _, _ in profile.recent), position)
        top_idx, top_score = graph.run([OUTPUT_INDICES, OUTPUT_SCORES], onnx_feed(item_idx, item_w, exclude, k))
        reference = recs.score_vector(item_idx, item_w, exclude)
        ref_idx, _ = recs.top_k(item_idx, item_w, exclude, k)
        set_mismatches += int(set(top_idx.tolist()) != set(ref_idx.tolist()))
        max_diff = max(max_diff, float(np.max(np.abs(top_score - reference[top_idx]), initial=0.0)))
    return ParityReport(n, label_mismatches, set_mismatches, max_diff)
