"""Drift: how far the population a candidate learned from has moved from the one the live version learned from.

Every version's manifest keeps `distributions`: for each feature, decile edges over its training users and the
share of users in each bin, and the share of users in each of its segments. A candidate is then compared with
the live version without the live version's data: its features are binned on the live edges, and its users are
labelled by the live segment graph, and each set of shares is compared with the live one by the population
stability index, PSI = sum((a - e) x ln(a / e)). Rule of thumb: below 0.1 stable, above 0.2 a real shift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from personalization.features import FEATURE_NAMES, SEGMENT_INPUT, SEGMENT_LABEL
from personalization.models import session

BINS = 10
# Shares are floored before the logarithm: an empty bin on one side would make PSI infinite.
FLOOR = 1e-4

Matrix = npt.NDArray[np.float64]


def _edges(values: npt.NDArray[np.float64]) -> list[float]:
    """Inner decile edges, de-duplicated: a count that is 0 for most users gets few bins, not ten empty ones."""
    if values.size == 0:
        return []
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, BINS + 1)[1:-1])
    return [float(edge) for edge in np.unique(quantiles)]


def binned_shares(values: npt.NDArray[np.float64], edges: Sequence[float]) -> list[float]:
    """Shares of `values` in (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(np.float64)
    return [float(share) for share in counts / max(values.size, 1)]


def label_shares(labels: npt.NDArray[np.int64]) -> dict[str, float]:
    found, counts = np.unique(labels, return_counts=True)
    return {str(int(label)): float(count) / max(labels.size, 1) for label, count in zip(found, counts, strict=True)}


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    e = np.maximum(np.asarray(expected, dtype=np.float64), FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def distributions(features: Matrix, labels: npt.NDArray[np.int64]) -> dict[str, Any]:
    """What a manifest keeps so that a later candidate can be compared with this version."""
    by_feature = {}
    for column, name in enumerate(FEATURE_NAMES):
        edges = _edges(features[:, column])
        by_feature[name] = {"edges": edges, "shares": binned_shares(features[:, column], edges)}
    return {"users": int(features.shape[0]), "features": by_feature, "segments": label_shares(labels)}


@dataclass(frozen=True)
class Drift:
    compared_with: str
    segments: float | None
    features: dict[str, float] = field(default_factory=dict)

    @property
    def max(self) -> float | None:
        values = [*self.features.values(), *([self.segments] if self.segments is not None else [])]
        return max(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "compared_with": self.compared_with,
            "psi_max": None if self.max is None else round(self.max, 4),
            "psi_segments": None if self.segments is None else round(self.segments, 4),
            "psi_features": {name: round(value, 4) for name, value in self.features.items()},
        }


def segment_labels(segment_onnx: bytes, features: Matrix) -> npt.NDArray[np.int64]:
    if features.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    (labels,) = session(segment_onnx).run([SEGMENT_LABEL], {SEGMENT_INPUT: features})
    return np.asarray(labels, dtype=np.int64).ravel()


def _kept_bins(kept: Any) -> tuple[list[float], list[float]] | None:
    """A feature's stored (edges, shares), or None when the manifest's entry is not that shape (a damaged or
    foreign manifest costs the comparison of that feature, never the run)."""
    try:
        edges = [float(edge) for edge in kept["edges"]]
        shares = [float(share) for share in kept["shares"]]
    except (KeyError, TypeError, ValueError):
        return None
    if len(shares) != len(edges) + 1 or edges != sorted(edges) or not all(np.isfinite([*edges, *shares])):
        return None
    return edges, shares


def _kept_shares(kept: Any) -> dict[str, float]:
    if not isinstance(kept, Mapping):
        return {}
    try:
        shares = {str(label): float(share) for label, share in kept.items()}
    except (TypeError, ValueError):
        return {}
    return shares if all(np.isfinite(list(shares.values()))) else {}


def drift(
    features: Matrix, live_version: str, live_distributions: Any, live_segment_onnx: bytes | None
) -> Drift | None:
    """The candidate's `features` (one row per training user) against the live version's distributions (as its
    manifest holds them); None when the live version kept none (published before drift was recorded)."""
    if not isinstance(live_distributions, Mapping) or not live_distributions:
        return None
    by_feature = live_distributions.get("features")
    per_feature: dict[str, float] = {}
    for column, name in enumerate(FEATURE_NAMES):
        kept = _kept_bins(by_feature.get(name)) if isinstance(by_feature, Mapping) else None
        if kept is not None:
            edges, shares = kept
            per_feature[name] = psi(shares, binned_shares(features[:, column], edges))
    live_shares = _kept_shares(live_distributions.get("segments"))
    segments = None
    if live_segment_onnx is not None and live_shares:
        try:
            now = label_shares(segment_labels(live_segment_onnx, features))
        except Exception:  # a live graph that does not load or run (onnxruntime raises several unrelated types)
            now = {}
        if now:
            labels = sorted(set(live_shares) | set(now))
            segments = psi([live_shares.get(label, 0.0) for label in labels], [now.get(label, 0.0) for label in labels])
    return Drift(live_version, segments, per_feature)
