"""Segments hold still: small profile changes near a boundary never flip a visitor's segment back and forth."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from model_export.training.onnx_graphs import segment_graph
from personalization.catalog import Catalog
from personalization.hysteresis import nearest, sticky_segment
from personalization.manifest import SegmentInfo
from personalization.models import SegmentModel


def walk(centres: np.ndarray, points: np.ndarray, margin: float) -> list[int]:
    """The segment after each request, each request starting from the segment the last one set (the cookie)."""
    current: int | None = None
    path = []
    for point in points:
        distances = np.linalg.norm(centres - point, axis=1).tolist()
        current = sticky_segment(distances, current, margin)
        path.append(current)
    return path


def returns_to_a_segment_it_left(path: list[int]) -> bool:
    left: set[int] = set()
    for before, after in itertools.pairwise(path):
        if after != before:
            left.add(before)
            if after in left:
                return True
    return False


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(2, 6),
    dims=st.integers(1, 5),
    margin=st.floats(0.05, 2.0),
    steps=st.integers(2, 40),
)
def test_within_half_a_margin_no_segment_is_ever_left_and_re_entered(
    seed: int, k: int, dims: int, margin: float, steps: int
) -> None:
    # Given centres, and a visitor's vector wandering within margin/2 of a point on the boundary of two of them
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, dims))
    boundary = (centres[0] + centres[1]) / 2
    offsets = rng.normal(size=(steps, dims))
    offsets *= (rng.uniform(0, margin / 2, size=(steps, 1)) * 0.999) / np.maximum(
        np.linalg.norm(offsets, axis=1, keepdims=True), 1e-12
    )
    # When each request re-derives the segment from the one the last request set
    path = walk(centres, boundary + offsets, margin)
    # Then the segment changes at most into segments it has not held before: no back and forth
    assert not returns_to_a_segment_it_left(path)


def test_a_clearly_nearer_segment_takes_over_and_no_cookie_means_the_nearest() -> None:
    assert sticky_segment([1.0, 0.5], current=0, margin=0.4) == 1
    assert sticky_segment([1.0, 0.7], current=0, margin=0.4) == 0
    assert sticky_segment([1.0, 0.7], current=None, margin=0.4) == 1
    # A cookie naming a segment the version does not have is ignored
    assert sticky_segment([1.0, 0.7], current=7, margin=0.4) == 1
    assert nearest([2.0, 1.0, 1.0]) == 1


def test_the_served_segment_holds_where_the_nearest_centre_would_flap() -> None:
    # Given an exported segment graph of two segments, as serve loads it
    rng = np.random.default_rng(0)
    features = np.vstack([rng.normal(0.0, 1.0, size=(200, 2)), rng.normal(6.0, 1.0, size=(200, 2))])
    pipeline = Pipeline([("scale", StandardScaler()), ("kmeans", KMeans(2, n_init=2, random_state=0))]).fit(features)
    graph = segment_graph(pipeline, 2)
    segments = [SegmentInfo(id=0, name="a"), SegmentInfo(id=1, name="b")]
    sticky = SegmentModel(graph, segments, {}, Catalog([]), hysteresis_margin=0.2)
    nearest_only = SegmentModel(graph, segments, {}, Catalog([]), hysteresis_margin=0.0)
    # And a visitor whose profile moves a hair back and forth across the boundary between the centres
    centres = pipeline.named_steps["scale"].inverse_transform(pipeline.named_steps["kmeans"].cluster_centers_)
    boundary = (centres[0] + centres[1]) / 2
    direction = (centres[1] - centres[0]) / np.linalg.norm(centres[1] - centres[0])
    vectors = [(boundary + direction * (0.01 if step % 2 else -0.01)).tolist() for step in range(10)]

    def labels(model: SegmentModel) -> list[int]:
        current: int | None = None
        path = []
        for vector in vectors:
            current = model.predict(vector, current).id
            path.append(current)
        return path

    # Then the nearest centre alone flips on every request, and the served segment never does
    assert len(set(labels(nearest_only))) == 2
    assert returns_to_a_segment_it_left(labels(nearest_only))
    assert len(set(labels(sticky))) == 1
