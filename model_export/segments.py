"""Segments: scaled profile features, K-Means with K picked by silhouette, a Gaussian mixture for comparison,
and a readable name for every segment derived from its centroid.

K-Means is what ships: hard, centroid-based segments that a name can describe and a banner can target.
The Gaussian mixture is fitted on the same sample and reported beside it (silhouette of its hard labels, and
BIC); it is not exported because skl2onnx 1.20's GaussianMixture converter disagrees with scikit-learn 1.9's
labels on most rows, which the parity check would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from model_export.interactions import positive_weights
from personalization.features import FEATURE_NAMES

K_RANGE = range(2, 13)
# Silhouette is quadratic in rows; 2,500 rows tell K apart as well as the full set and cost a second.
SILHOUETTE_SAMPLE = 2_500
# K-Means itself is linear in rows; a larger sample only moves centroids by noise.
FIT_SAMPLE = 200_000
SEED = 0

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Segment:
    id: int
    name: str
    size: int
    share: float
    centroid: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "size": self.size, "share": self.share, "centroid": self.centroid}


@dataclass(frozen=True)
class SegmentModel:
    pipeline: Pipeline
    k: int
    silhouette: float
    curve: dict[int, float]
    gmm_curve: dict[int, float]
    gmm_bic: dict[int, float]
    segments: list[Segment]

    def labels(self, features: Matrix) -> npt.NDArray[np.int64]:
        return np.asarray(self.pipeline.predict(features), dtype=np.int64)

    def summary(self) -> dict[str, Any]:
        best_gmm = max(self.gmm_curve, key=lambda k: self.gmm_curve[k]) if self.gmm_curve else None
        return {
            "model": "StandardScaler+KMeans",
            "k": self.k,
            "silhouette": round(self.silhouette, 4),
            "silhouette_by_k": {str(k): round(v, 4) for k, v in self.curve.items()},
            "gmm_silhouette_by_k": {str(k): round(v, 4) for k, v in self.gmm_curve.items()},
            "gmm_bic_by_k": {str(k): round(v, 1) for k, v in self.gmm_bic.items()},
            "gmm_best_k": best_gmm,
        }


def _sample(n: int, size: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size=size, replace=False))


def _silhouette(scaled: Matrix, labels: npt.NDArray[np.int64]) -> float:
    if len(np.unique(labels)) < 2:
        return -1.0
    return float(silhouette_score(scaled, labels))


def fit_segments(features: Matrix, progress: bool = False) -> SegmentModel:
    """Pick K in 2..12 by silhouette on a sample, then fit the scaler+K-Means pipeline on (a sample of) all."""
    rng = np.random.default_rng(SEED)
    scaler = StandardScaler().fit(features)
    scaled = scaler.transform(features)
    sample = scaled[_sample(len(scaled), SILHOUETTE_SAMPLE, rng)]
    # Profiles are often identical (one view, no cart): K cannot exceed the distinct points.
    distinct = len(np.unique(sample, axis=0))
    ks = [k for k in K_RANGE if k < distinct] or [min(2, max(distinct, 1))]
    curve, gmm_curve, gmm_bic = {}, {}, {}
    for k in tqdm(ks, desc="segments: K", unit="k", disable=not progress):
        # Two starts suffice to compare K; the exported model below gets four.
        labels = KMeans(n_clusters=k, n_init=2, random_state=SEED).fit_predict(sample)
        curve[k] = _silhouette(sample, labels)
        gmm = GaussianMixture(n_components=k, covariance_type="diag", reg_covar=1e-3, random_state=SEED)
        gmm_labels = gmm.fit(sample).predict(sample)
        gmm_curve[k] = _silhouette(sample, gmm_labels)
        gmm_bic[k] = float(gmm.bic(sample))
    k = max(curve, key=lambda key: (curve[key], -key))
    rows = _sample(len(features), FIT_SAMPLE, rng)
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("kmeans", KMeans(n_clusters=k, n_init=4, random_state=SEED))]
    ).fit(features[rows])
    labels = np.asarray(pipeline.predict(features), dtype=np.int64)
    return SegmentModel(pipeline, k, curve[k], curve, gmm_curve, gmm_bic, describe(pipeline, labels))


def describe(pipeline: Pipeline, labels: npt.NDArray[np.int64]) -> list[Segment]:
    scaler: StandardScaler = pipeline.named_steps["scale"]
    centers = pipeline.named_steps["kmeans"].cluster_centers_
    original = scaler.inverse_transform(centers)
    sizes = np.bincount(labels, minlength=len(centers))
    names = unique_names([segment_name(center) for center in centers], centers)
    return [
        Segment(
            id=i,
            name=names[i],
            size=int(sizes[i]),
            share=round(float(sizes[i] / max(sizes.sum(), 1)), 4),
            centroid={name: round(float(value), 4) for name, value in zip(FEATURE_NAMES, original[i], strict=True)},
        )
        for i in range(len(centers))
    ]


def _z(center: Matrix, feature: str) -> float:
    return float(center[FEATURE_NAMES.index(feature)])


def segment_name(center: Matrix) -> str:
    """A name from a centroid in standardized units (0 = the average profile, 1 = one deviation above).

    Buying beats carting beats browsing: a segment is named for the strongest intent its centroid shows,
    qualified by recency, so a banner author can tell "recent high-value buyers" from "lapsed browsers".
    """
    recent = _z(center, "log_hours_since_last_event") < -0.5 or _z(center, "session_active") > 0.5
    lapsed = _z(center, "log_hours_since_last_event") > 0.5 and _z(center, "session_active") < 0
    when = "recent " if recent else "lapsed " if lapsed else ""
    if _z(center, "log_count_purchase") > 0.5:
        value = "high-value " if _z(center, "log_monetary") > 1.0 else ""
        return f"{when}{value}buyers"
    if _z(center, "cart_abandoned") > 0.5 or (
        _z(center, "cart_items") > 0.5 and _z(center, "log_count_purchase") <= 0.5
    ):
        return "cart abandoners" if _z(center, "cart_abandoned") > 0.5 else f"{when}cart builders"
    if _z(center, "log_count_view_product") > 0.5 or _z(center, "log_session_events") > 0.5:
        focus = _z(center, "distinct_categories") > 0.5
        return f"{when}{'wide-ranging' if focus else 'engaged'} browsers"
    return f"{when}casual browsers"


QUALIFIERS: tuple[tuple[str, str, float], ...] = (
    ("distinct_categories", "many categories", 1.0),
    ("top_category_share", "one category", 1.0),
    ("log_session_events", "long sessions", 1.0),
    ("log_hours_since_first_seen", "long-standing", 1.0),
    ("log_hours_since_first_seen", "new", -1.0),
    ("view_to_cart_rate", "quick to cart", 1.0),
    ("log_count_view_product", "many views", 1.0),
    ("log_count_view_product", "few views", -1.0),
)


def unique_names(names: list[str], centers: Matrix) -> list[str]:
    """Two segments may earn the same name; each then gets the qualifier its centroid shows most."""
    result = list(names)
    for name in set(names):
        same = [i for i, n in enumerate(names) if n == name]
        if len(same) < 2:
            continue
        for i in same:
            scores = [(sign * _z(centers[i], feature), label) for feature, label, sign in QUALIFIERS]
            best = max(scores)
            result[i] = f"{name} ({best[1]})" if best[0] > 0 else name
    seen: dict[str, int] = {}
    for i, name in enumerate(result):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            result[i] = f"{name} #{seen[name]}"
    return result


SEGMENT_ITEMS_LIMIT = 100


def segment_items(
    frame: pd.DataFrame, user_labels: Mapping[str, int], limit: int = SEGMENT_ITEMS_LIMIT
) -> dict[str, list[str]]:
    """Each segment's most popular items among its own members (the same view < cart < purchase weights).

    This is what a segment fragment shows: it is the same for every member, so the CDN can cache it per
    segment, and it still differs from the shop-wide best-sellers.
    """
    weights = positive_weights(frame)
    labels = frame["user_id"].map(user_labels)
    scored = pd.DataFrame({"label": labels, "item_id": frame["item_id"], "weight": weights})
    scored = scored[scored["label"].notna() & (scored["weight"] > 0)]
    totals = scored.groupby(["label", "item_id"], sort=False)["weight"].sum().reset_index()
    totals = totals.sort_values(["label", "weight", "item_id"], ascending=[True, False, True], kind="stable")
    return {
        str(int(label)): group["item_id"].astype(str).head(limit).tolist()
        for label, group in totals.groupby("label", sort=True)
    }
