"""Segments: few, sizeable, stable and truly named, or one segment when the data supports no split.

Selection, on a bounded sample of standardized profile vectors seen through a lens:
0. The lens weighs the features by aspect. Every aspect of behaviour (recency, frequency, order value,
   conversion, breadth, price sensitivity, device, time of day) weighs as one, whatever number of features
   spell it (its features share the weight), so four time-of-day shares do not outvote one order value; what
   people shop for (the category axes) weighs CATEGORY_WEIGHTS aspects. Lenses are tried heaviest category
   weight first: a segment's banner shows products, and segments that differ in what they shop for are the
   ones whose best-sellers differ. A lighter lens is tried only when a heavier one has no admissible K >= 3
   solution (a shop whose category mixes do not split into sizeable, stable groups: then behaviour leads).
1. K-Means, a Gaussian mixture (diagonal), K-Means started from that mixture's means, and agglomerative
   clustering (Ward) are each fitted for every K in K_RANGE, and scored with silhouette (higher is better)
   and Davies-Bouldin (lower is better). K-Means from k-means++ starts readily spends a centre on a tiny
   far group (the few buyers of a browsing shop); started from the mixture's means it settles, as often as
   not, in a local optimum of the same objective with sizeable segments, and exports like any K-Means.
2. A solution is admissible only when its smallest segment holds at least `min_share` of the people, and when it
   is stable: fitted again on STABILITY_RESAMPLES bootstrap resamples, each refit labels the sample with a mean
   adjusted Rand index of at least MIN_STABILITY against the original fit.
3. The rule, within a lens: among admissible solutions of a method that can be exported to ONNX with parity (either
   K-Means; the mixture's skl2onnx converter disagrees with scikit-learn's labels, and Ward has no predict,
   so both are compared and reported, never exported), those with K >= 3 come first when there are any (a banner needs
   more than "these and everyone else"); among them the best mean rank of silhouette and Davies-Bouldin wins,
   then the smaller K.
   The first lens (heaviest first) with an admissible K >= 3 solution wins; when no lens has one, the first
   lens with an admissible K = 2 solution.
4. When nothing is admissible (a tiny or uniform shop), the model is one segment, and the summary says so.

The shipped model is StandardScaler + K-Means refitted on (a sample of) everyone, the lens folded into the
scaler's scales; its graph returns the label and the distance to every centre (in lens units), which serve's
hysteresis compares (`hysteresis_margin`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from model_export.training.interactions import positive_weights
from model_export.training.segment_names import (
    CategoryMixes,
    CategoryShare,
    Defining,
    defining_features,
    name_segments,
    signature_categories,
)
from personalization.features import CATEGORY_AXES, FEATURE_NAMES
from personalization.profile import DAYPARTS

K_RANGE = range(2, 9)
MIN_SHARE = 0.03
MIN_STABILITY = 0.8
STABILITY_RESAMPLES = 5
# Selection is quadratic in rows (silhouette, Ward); 2,000 rows tell K and methods apart well and cost seconds.
SELECTION_SAMPLE = 2_000
# K-Means itself is linear in rows; a larger sample only moves centroids by noise.
FIT_SAMPLE = 200_000
# A visitor's segment changes only when another centre is nearer than the current one by this share of the
# median distance between centres (in standardized units): see personalization.models.SegmentModel.
HYSTERESIS_FRACTION = 0.1
SEED = 0
# How many behavioural aspects what people shop for weighs, per lens, in the order they are tried (module
# docstring, step 0). 0 is behaviour alone.
CATEGORY_WEIGHTS = (4.0, 2.0, 1.0, 0.0)
CATEGORY_GROUP = "what they shop for"
# The aspects a merchandiser segments on, and the features that spell each (every feature in exactly one).
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "recency": ("log_hours_since_last_event",),
    "frequency": ("log_visits", "log_views", "log_carts", "log_orders"),
    "order value": ("log_order_value",),
    "conversion": ("view_to_cart_rate", "cart_abandonment"),
    "breadth": ("distinct_categories", "top_category_share"),
    "price sensitivity": ("viewed_price_index", "bought_price_index"),
    CATEGORY_GROUP: tuple(f"category_axis_{n}" for n in range(1, CATEGORY_AXES + 1)),
    "device": ("share_mobile", "share_desktop", "share_tablet"),
    "time of day": tuple(f"share_{part}" for part in DAYPARTS),
}
# A feature out of the lens still needs a finite scale (the ONNX scaler multiplies by its inverse).
_OUT_OF_LENS = 1e-12
EXPORTABLE = frozenset({"kmeans", "kmeans_from_gmm"})
METHODS = ("kmeans", "kmeans_from_gmm", "gmm", "ward")

Matrix = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Candidate:
    """One (method, K) fitted on the selection sample, with what decides whether it may ship."""

    method: str
    k: int
    silhouette: float
    davies_bouldin: float
    min_share: float
    stability: float | None
    min_share_required: float
    category_weight: float = 0.0

    @property
    def exportable(self) -> bool:
        return self.method in EXPORTABLE

    @property
    def refusal(self) -> str | None:
        """Why the solution may not ship, or None when it is admissible."""
        if self.min_share < self.min_share_required:
            return f"smallest segment {self.min_share:.1%} < {self.min_share_required:.0%}"
        if self.stability is None or self.stability < MIN_STABILITY:
            return f"unstable (mean ARI {self.stability or 0:.2f} < {MIN_STABILITY})"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "k": self.k,
            "category_weight": self.category_weight,
            "silhouette": round(self.silhouette, 4),
            "davies_bouldin": round(self.davies_bouldin, 4),
            "min_share": round(self.min_share, 4),
            "stability": None if self.stability is None else round(self.stability, 4),
            "admissible": self.refusal is None,
            "exportable": self.exportable,
            "refused": self.refusal,
        }


@dataclass(frozen=True)
class Segment:
    id: int
    name: str
    size: int
    share: float
    centroid: dict[str, float]
    defining: list[Defining] = field(default_factory=list)
    # What its members shop for more than everyone does (segment_names.signature_categories).
    categories: list[CategoryShare] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "size": self.size,
            "share": self.share,
            "centroid": self.centroid,
            "defining": [d.to_dict() for d in self.defining],
            "categories": [c.to_dict() for c in self.categories],
        }


@dataclass(frozen=True)
class SegmentModel:
    pipeline: Pipeline
    k: int
    method: str
    silhouette: float
    davies_bouldin: float
    stability: float
    segments: list[Segment]
    candidates: list[Candidate]
    hysteresis_margin: float
    min_share: float
    # Why the model is one segment, when it is.
    note: str | None = None
    # The lens the winner was chosen through (module docstring, step 0).
    category_weight: float = 0.0

    def labels(self, features: Matrix) -> Labels:
        return np.asarray(self.pipeline.predict(features), dtype=np.int64)

    def distances(self, features: Matrix) -> Matrix:
        """Distance from each row to every centre, in standardized units (what segment.onnx returns)."""
        return np.asarray(self.pipeline.transform(features), dtype=np.float64)

    @property
    def shares(self) -> list[float]:
        return [s.share for s in self.segments]

    def summary(self) -> dict[str, Any]:
        return {
            "model": "StandardScaler+KMeans",
            "method": self.method,
            "k": self.k,
            "category_weight": self.category_weight,
            "shares": self.shares,
            "names": [s.name for s in self.segments],
            "silhouette": round(self.silhouette, 4),
            "davies_bouldin": round(self.davies_bouldin, 4),
            "stability": round(self.stability, 4),
            "min_share": self.min_share,
            "hysteresis_margin": round(self.hysteresis_margin, 4),
            "rule": "lenses heaviest category weight first, the first with an admissible K >= 3 (else K = 2)"
            " solution; within it: admissible (min share, stability) and exportable; K >= 3 first; best mean"
            " rank of silhouette and Davies-Bouldin; then smaller K",
            "note": self.note,
            "candidates": [c.to_dict() for c in self.candidates],
        }


def _sample(n: int, size: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size=size, replace=False))


def _mixture(scaled: Matrix, k: int, seed: int = SEED) -> GaussianMixture:
    return GaussianMixture(n_components=k, covariance_type="diag", reg_covar=1e-3, random_state=seed).fit(scaled)


def _kmeans_from_gmm(scaled: Matrix, k: int, seed: int = SEED) -> KMeans:
    means = _mixture(scaled, k, seed).means_
    return KMeans(n_clusters=k, init=means, n_init=1, random_state=seed).fit(scaled)


class _Fitter:
    """Fits one method at every K on a sample (and on resamples of it), labelling the whole sample."""

    def __init__(self, method: str, sample: Matrix) -> None:
        self.method = method
        self.sample = sample
        self._trees: dict[int, Any] = {}

    def labels(self, k: int, rows: npt.NDArray[np.int64] | None = None, seed: int = SEED) -> Labels:
        """Labels of every sample row by a fit on `rows` of it (all rows when None)."""
        fit_on = self.sample if rows is None else self.sample[rows]
        if self.method == "kmeans":
            model = KMeans(n_clusters=k, n_init=2, random_state=seed).fit(fit_on)
            return np.asarray(model.predict(self.sample), dtype=np.int64)
        if self.method == "gmm":
            return np.asarray(_mixture(fit_on, k, seed).predict(self.sample), dtype=np.int64)
        if self.method == "kmeans_from_gmm":
            return np.asarray(_kmeans_from_gmm(fit_on, k, seed).predict(self.sample), dtype=np.int64)
        # Ward: one tree per resample, cut at every K; rows outside the fit go to the nearest cluster mean.
        key = -1 if rows is None else seed
        if key not in self._trees:
            self._trees[key] = linkage(fit_on, method="ward")
        cut: Labels = np.asarray(fcluster(self._trees[key], t=k, criterion="maxclust"), dtype=np.int64) - 1
        if rows is None:
            return cut
        centres = np.stack([fit_on[cut == c].mean(axis=0) for c in np.unique(cut)])
        return np.asarray(((self.sample[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1), dtype=np.int64)


def _stability(fitter: _Fitter, k: int, reference: Labels, rng: np.random.Generator) -> float:
    n = len(fitter.sample)
    scores = []
    for b in range(STABILITY_RESAMPLES):
        rows = rng.integers(0, n, size=n)
        scores.append(adjusted_rand_score(reference, fitter.labels(k, rows, seed=SEED + 1 + b)))
    return float(np.mean(scores))


def compare(scaled: Matrix, min_share: float, progress: bool = False, category_weight: float = 0.0) -> list[Candidate]:
    """Every method at every K, on a sample of the (lens-)scaled vectors."""
    rng = np.random.default_rng(SEED)
    sample = scaled[_sample(len(scaled), SELECTION_SAMPLE, rng)]
    distinct = len(np.unique(sample, axis=0))
    ks = [k for k in K_RANGE if k < distinct]
    found = []
    steps = list(itertools.product(METHODS, ks))
    fitters = {method: _Fitter(method, sample) for method in METHODS}
    for method, k in tqdm(steps, desc="segments: method x K", unit="fit", disable=not progress):
        fitter = fitters[method]
        labels = fitter.labels(k)
        used = len(np.unique(labels))
        shares = np.bincount(labels, minlength=k) / len(labels)
        if used < 2:
            found.append(Candidate(method, k, -1.0, float("inf"), 0.0, None, min_share, category_weight))
            continue
        smallest = float(shares.min())
        # Stability costs five refits: spent only on solutions whose sizes already qualify.
        stability = _stability(fitter, k, labels, rng) if smallest >= min_share else None
        found.append(
            Candidate(
                method,
                k,
                float(silhouette_score(sample, labels)),
                float(davies_bouldin_score(sample, labels)),
                smallest,
                stability,
                min_share,
                category_weight,
            )
        )
    return found


def choose(candidates: list[Candidate]) -> list[Candidate]:
    """Admissible, exportable candidates in the order the rule prefers them (module docstring, step 3)."""
    pool = [c for c in candidates if c.refusal is None and c.exportable]
    if not pool:
        return []
    by_silhouette = sorted(pool, key=lambda c: -c.silhouette)
    by_db = sorted(pool, key=lambda c: c.davies_bouldin)

    def key(c: Candidate) -> tuple[int, float, int]:
        mean_rank = (by_silhouette.index(c) + by_db.index(c)) / 2
        return (0 if c.k >= 3 else 1, mean_rank, c.k)

    return sorted(pool, key=key)


def lens_weights(features: Matrix, category_weight: float) -> npt.NDArray[np.float64]:
    """Per-feature multipliers of the standardized values (module docstring, step 0). A group's features that
    vary share its weight (a group's squared weights sum to its weight squared); constant ones say nothing."""
    varies = features.var(axis=0) > 0 if len(features) else np.zeros(len(FEATURE_NAMES), dtype=bool)
    weights = np.zeros(len(FEATURE_NAMES))
    for group, names in FEATURE_GROUPS.items():
        columns = [FEATURE_NAMES.index(name) for name in names]
        live = max(int(varies[columns].sum()), 1)
        weights[columns] = (category_weight if group == CATEGORY_GROUP else 1.0) / np.sqrt(live)
    return weights


def _scaler(features: Matrix, weights: npt.NDArray[np.float64]) -> StandardScaler:
    """StandardScaler with the lens folded into its scales: what ships is a plain scaler (skl2onnx converts it
    as it is), and its output is the standardized value times the feature's weight."""
    scaler = StandardScaler().fit(features)
    scaler.scale_ = scaler.scale_ / np.maximum(weights, _OUT_OF_LENS)
    return scaler


def _pipeline(
    features: Matrix, k: int, method: str = "kmeans", weights: npt.NDArray[np.float64] | None = None
) -> Pipeline:
    scaler = _scaler(features, np.ones(features.shape[1]) if weights is None else weights)
    if method == "kmeans_from_gmm":
        kmeans = _kmeans_from_gmm(scaler.transform(features), k)
    else:
        kmeans = KMeans(n_clusters=k, n_init=4, random_state=SEED).fit(scaler.transform(features))
    return Pipeline([("scale", scaler), ("kmeans", kmeans)])


Mixes = CategoryMixes


def fit_segments(
    features: Matrix, min_share: float = MIN_SHARE, progress: bool = False, mixes: Mixes | None = None
) -> SegmentModel:
    """Select by the rule, refit the winner on (a sample of) everyone, name it; one segment when none qualifies.
    `mixes` holds row i's category mix in its row i, which names segments by what they shop for."""
    # Over a hundred small fits: OpenMP's threads cost more in hand-offs than they win (a twentieth of the time
    # single-threaded, measured on the bundled data), and the machine is often shared.
    with threadpool_limits(1):
        return _fit_segments(features, min_share, progress, mixes)


def _fit_segments(features: Matrix, min_share: float, progress: bool, mixes: Mixes | None) -> SegmentModel:
    rng = np.random.default_rng(SEED)
    rows = _sample(len(features), FIT_SAMPLE, rng)
    candidates: list[Candidate] = []
    lenses: list[tuple[npt.NDArray[np.float64], list[Candidate]]] = []
    for category_weight in CATEGORY_WEIGHTS if len(features) >= 2 else ():
        weights = lens_weights(features, category_weight)
        found = compare(_scaler(features, weights).transform(features), min_share, progress, category_weight)
        candidates.extend(found)
        lenses.append((weights, choose(found)))
        # Step 3: the first lens with an admissible K >= 3 wins; lighter lenses are not fitted.
        model = _first_that_holds(features, rows, weights, [c for c in lenses[-1][1] if c.k >= 3], min_share)
        if model is not None:
            return _model(features, *model, candidates, min_share, mixes)
    for weights, chosen in lenses:
        model = _first_that_holds(features, rows, weights, chosen, min_share)
        if model is not None:
            return _model(features, *model, candidates, min_share, mixes)
    pipeline = _pipeline(features[rows], 1)
    labels = np.zeros(len(features), dtype=np.int64)
    note = "no admissible split (every solution had a segment under the minimum share or was unstable)"
    if len(features) < 2 or not candidates:
        note = "too few distinct people to split"
    return _model(features, pipeline, labels, None, candidates, min_share, mixes, note)


def _first_that_holds(
    features: Matrix,
    rows: npt.NDArray[np.int64],
    weights: npt.NDArray[np.float64],
    chosen: list[Candidate],
    min_share: float,
) -> tuple[Pipeline, Labels, Candidate] | None:
    """The first candidate whose refit on (a sample of) everyone keeps every segment at the minimum share."""
    for candidate in chosen:
        pipeline = _pipeline(features[rows], candidate.k, candidate.method, weights)
        labels = np.asarray(pipeline.predict(features), dtype=np.int64)
        shares = np.bincount(labels, minlength=candidate.k) / len(labels)
        # The refit on everyone must keep the sizes the sample promised.
        if shares.min() >= min_share:
            return pipeline, labels, candidate
    return None


def _model(
    features: Matrix,
    pipeline: Pipeline,
    labels: Labels,
    chosen: Candidate | None,
    candidates: list[Candidate],
    min_share: float,
    mixes: Mixes | None = None,
    note: str | None = None,
) -> SegmentModel:
    scaler: StandardScaler = pipeline.named_steps["scale"]
    centers = np.asarray(pipeline.named_steps["kmeans"].cluster_centers_, dtype=np.float64)
    k = len(centers)
    gaps = [float(np.linalg.norm(a - b)) for a, b in itertools.combinations(centers, 2)]
    margin = HYSTERESIS_FRACTION * float(np.median(gaps)) if gaps else 0.0
    segments = describe(features, scaler, centers, labels, mixes)
    return SegmentModel(
        pipeline=pipeline,
        k=k,
        method=chosen.method if chosen else "single",
        silhouette=chosen.silhouette if chosen else 0.0,
        davies_bouldin=chosen.davies_bouldin if chosen else 0.0,
        stability=(chosen.stability or 0.0) if chosen else 1.0,
        segments=segments,
        candidates=candidates,
        hysteresis_margin=margin,
        min_share=min_share,
        note=note,
        category_weight=chosen.category_weight if chosen else 0.0,
    )


def describe(
    features: Matrix, scaler: StandardScaler, centers: Matrix, labels: Labels, mixes: Mixes | None = None
) -> list[Segment]:
    """Size, share, centre (in feature units), defining features and a true name for every segment."""
    k = len(centers)
    sizes = np.bincount(labels, minlength=k)
    members = [features[labels == i] for i in range(k)]
    population = features.mean(axis=0) if len(features) else np.zeros(len(FEATURE_NAMES))
    # The centre's standing against the population, in standard deviations (not lens units); a constant feature
    # stands nowhere.
    scale = np.where(scaler.var_ > 0, np.sqrt(scaler.var_), 1.0)
    member_means = [rows.mean(axis=0) if len(rows) else population for rows in members]
    standing = np.stack([(m - population) / scale for m in member_means]) * (scaler.var_ > 0)
    categories = signature_categories(mixes, labels, k) if mixes is not None else [[] for _ in range(k)]
    names = name_segments(standing, members, categories)
    original = scaler.inverse_transform(centers)
    return [
        Segment(
            id=i,
            name=names[i],
            size=int(sizes[i]),
            share=round(float(sizes[i] / max(sizes.sum(), 1)), 4),
            centroid={name: round(float(value), 4) for name, value in zip(FEATURE_NAMES, original[i], strict=True)},
            defining=defining_features(standing[i], member_means[i], population),
            categories=categories[i],
        )
        for i in range(k)
    ]


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
