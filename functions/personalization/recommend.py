"""Profile history -> the inputs of recs.onnx, in pure numpy (serve imports this; it must not need scikit-learn).

The trainer's evaluation builds every query through these same functions, so the model is scored offline on
exactly the inputs serve will give it.

recs.onnx inputs: item_idx int64 [n] (distinct catalog indices, ascending), item_w float32 [n] (summing to 1),
exclude_idx int64 [m], k int64 [1]. Outputs: top_idx int64 [k], top_score float32 [k]; an excluded item that
had to fill the list scores below EXCLUDED_BELOW.

Serve's call, with a model version's manifest and items.json (the graph's index order):
    position = {item: i for i, item in enumerate(items)}
    recent = manifest.recs_model.recent_weighting  # the typed personalization.manifest.Manifest
    weighting = RecentWeighting(decay=recent.decay, max_events=recent.max_events)
    item_idx, item_w = recent_inputs(profile.recent, position, weighting)
    feed = onnx_feed(item_idx, item_w, exclusion_indices(excluded, position), min(k, len(items)))
    ranked = decode(*session.run([OUTPUT_INDICES, OUTPUT_SCORES], feed), items)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from personalization.profile import AFFINITY_WEIGHTS, CODE_TYPES, HISTORY_LIMIT

INPUT_ITEMS = "item_idx"
INPUT_WEIGHTS = "item_w"
INPUT_EXCLUDE = "exclude_idx"
INPUT_K = "k"
OUTPUT_INDICES = "top_idx"
OUTPUT_SCORES = "top_score"
# The graph adds EXCLUDE_PENALTY to excluded items; any real score is far above EXCLUDED_BELOW.
EXCLUDE_PENALTY = -1e9
EXCLUDED_BELOW = -1e8

# The same event-type weights as the category affinities: a purchase says more than a view.
CODE_WEIGHTS: dict[str, float] = {code: AFFINITY_WEIGHTS[kind] for code, kind in CODE_TYPES.items()}

History = Sequence[tuple[str, str, int]]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class RecentWeighting:
    """How a history becomes input weights: type weight x decay ** (events back from the newest).

    The trainer picks `decay` on a validation split and writes it into the manifest ("recent_weighting"), so
    serve weighs a history the way the model was selected with.
    """

    decay: float = 0.7
    max_events: int = HISTORY_LIMIT

    def to_dict(self) -> dict[str, float | int]:
        return {"decay": self.decay, "max_events": self.max_events}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecentWeighting:
        return cls(decay=float(data["decay"]), max_events=int(data["max_events"]))


def recent_inputs(
    history: History, index: Mapping[str, int], weighting: RecentWeighting
) -> tuple[IntArray, FloatArray]:
    """(item_idx, item_w) from a history of (item id, type code, ts ms), oldest first (Profile.recent's shape).

    Items the catalog does not know are skipped but still count as a step back, so one unknown item does
    not make older ones look newer. Weights are normalized to sum to 1, so the model's popularity prior
    weighs the same against a long history as against a single view.
    """
    weights: dict[int, float] = {}
    for step, (item, code, _ts) in enumerate(reversed(history[-weighting.max_events :])):
        position = index.get(item)
        weight = CODE_WEIGHTS.get(code, 0.0) * weighting.decay**step
        if position is None or weight <= 0:
            continue
        weights[position] = weights.get(position, 0.0) + weight
    if not weights:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    order = sorted(weights)
    total = sum(weights.values())
    return (
        np.asarray(order, dtype=np.int64),
        np.asarray([weights[i] / total for i in order], dtype=np.float32),
    )


def exclusion_indices(items: Iterable[str], index: Mapping[str, int]) -> IntArray:
    """Catalog indices of the items not to offer (unknown ids are ignored), distinct and ascending."""
    return np.asarray(sorted({index[item] for item in items if item in index}), dtype=np.int64)


def onnx_feed(item_idx: IntArray, item_w: FloatArray, exclude_idx: IntArray, k: int) -> dict[str, npt.NDArray[Any]]:
    """The feed dict of recs.onnx. `k` must not exceed the catalog size."""
    return {
        INPUT_ITEMS: item_idx.astype(np.int64, copy=False),
        INPUT_WEIGHTS: item_w.astype(np.float32, copy=False),
        INPUT_EXCLUDE: exclude_idx.astype(np.int64, copy=False),
        INPUT_K: np.asarray([k], dtype=np.int64),
    }


def decode(top_idx: IntArray, top_score: FloatArray, items: Sequence[str]) -> list[tuple[str, float]]:
    """The graph's outputs as (item id, score), best first, without excluded items that only filled the list."""
    return [
        (items[int(i)], float(score))
        for i, score in zip(top_idx.tolist(), top_score.tolist(), strict=True)
        if score > EXCLUDED_BELOW
    ]
