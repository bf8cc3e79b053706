"""The exported recommender: parity with its numpy reference, big catalogs, tiny histories, exact TopK order."""

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_export.data.canonical import normalize
from model_export.evaluation.metrics import top_k
from model_export.recommenders import Hybrid, RecsParams
from model_export.training.onnx_graphs import compact_neighbors, recs_graph
from model_export.training.parity import PARITY_USERS, check
from model_export.training.recs import RecsData, RecsModel
from model_export.training.training import Trained, train_models
from personalization.recommend import (
    EXCLUDED_BELOW,
    OUTPUT_INDICES,
    OUTPUT_SCORES,
    onnx_feed,
)
from tests.helpers.data import rees46_sample


@pytest.fixture(scope="module")
def trained() -> Trained:
    return train_models(normalize(rees46_sample()))


def hybrid(data: RecsData, params: RecsParams) -> RecsModel:
    return Hybrid(**params.to_dict()).fit(data).fitted()


def run(
    model_bytes: bytes, idx: list[int], w: list[float], exclude: list[int], k: int
) -> tuple[np.ndarray, np.ndarray]:
    graph = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    feed = onnx_feed(
        np.asarray(idx, dtype=np.int64), np.asarray(w, dtype=np.float32), np.asarray(exclude, dtype=np.int64), k
    )
    top_idx, top_score = graph.run([OUTPUT_INDICES, OUTPUT_SCORES], feed)
    return top_idx, top_score


def test_onnx_graphs_match_their_references_on_every_user(trained: Trained) -> None:
    # Given models trained on the sample (885 users: fewer than the 1,000 the check asks for)
    profiles = list(trained.profiles.values())
    # When the parity check runs the exported graphs and the references on the same users
    report = check(
        trained.segment_onnx,
        trained.segments,
        trained.features,
        trained.recs_onnx,
        trained.recs,
        profiles,
        trained.index.position,
    )
    # Then labels and top-10 sets are identical, and scores agree within 1e-4
    assert report.users == min(PARITY_USERS, len(profiles))
    assert report.segment_label_mismatches == 0
    assert report.top10_set_mismatches == 0
    assert report.max_abs_score_diff <= 1e-4
    assert report.ok


def test_the_parity_check_catches_a_graph_that_differs(trained: Trained) -> None:
    other = hybrid(RecsData(normalize(rees46_sample()), trained.index), RecsParams(prior=0.5, blend=1.0))
    report = check(
        trained.segment_onnx,
        trained.segments,
        trained.features,
        recs_graph(other),
        trained.recs,
        list(trained.profiles.values()),
        trained.index.position,
    )
    assert not report.ok


def test_a_user_with_one_item_gets_a_full_list_without_it(trained: Trained) -> None:
    item = int(trained.recs.neighbor_idx[0, 0])
    top_idx, top_score = run(trained.recs_onnx, [item], [1.0], [item], 10)
    assert len(top_idx) == 10
    assert item not in top_idx.tolist()
    assert np.all(np.diff(top_score) <= 0)
    reference, _ = trained.recs.top_k(np.asarray([item]), np.asarray([1.0], np.float32), np.asarray([item]), 10)
    assert top_idx.tolist() == reference.tolist()


def test_k_is_an_input_and_no_history_falls_back_to_the_prior(trained: Trained) -> None:
    top5, _ = run(trained.recs_onnx, [], [], [], 5)
    top20, _ = run(trained.recs_onnx, [], [], [], 20)
    assert top20[:5].tolist() == top5.tolist()
    # With nothing to go on, the list is the catalog's popularity order (index order).
    assert top20.tolist() == sorted(top20.tolist())


def test_excluded_items_only_fill_the_list_when_nothing_else_is_left() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b"],
            "item_id": ["1", "2", "2", "3"],
            "event_type": ["view"] * 4,
            "timestamp": pd.date_range("2024-01-01", periods=4, freq="min", tz="UTC"),
        }
    )
    model = hybrid(RecsData(normalize(frame)), RecsParams())
    top_idx, top_score = run(recs_graph(model), [0], [1.0], [0, 1], 3)
    assert top_idx.tolist()[0] == 2
    assert all(score < EXCLUDED_BELOW for score in top_score[1:])


def test_a_catalog_of_50000_items_exports_and_runs() -> None:
    # Given sparse synthetic data over 50,000 items (each seen at least once), with categories
    rng = np.random.default_rng(7)
    n_items, n_events = 50_000, 80_000
    items = np.concatenate([np.arange(n_items), rng.integers(0, 2_000, n_events - n_items)])
    frame = normalize(
        pd.DataFrame(
            {
                "user_id": rng.integers(0, 15_000, n_events).astype(str),
                "item_id": items.astype(str),
                "event_type": rng.choice(["view", "cart", "purchase"], n_events, p=[0.9, 0.07, 0.03]),
                "timestamp": pd.Timestamp("2024-01-01", tz="UTC")
                + pd.to_timedelta(rng.integers(0, 7 * 86_400, n_events), unit="s"),
                "category": (items % 300).astype(str),
            }
        )
    )
    # When the recommender is fitted and exported as one graph
    model = hybrid(RecsData(frame), RecsParams(category=0.2, blend=0.5, neighbors=50))
    graph = recs_graph(model)
    assert model.n_items >= 50_000
    # Then it runs and equals its reference, tail items included
    for idx, w in (([3, 49_999], [0.25, 0.75]), ([12_345], [1.0])):
        top_idx, top_score = run(graph, idx, w, idx, 10)
        ref_idx, _ = model.top_k(np.asarray(idx), np.asarray(w, np.float32), np.asarray(idx), 10)
        reference = model.score_vector(np.asarray(idx), np.asarray(w, np.float32), np.asarray(idx))
        assert set(top_idx.tolist()) == set(ref_idx.tolist())
        assert np.max(np.abs(top_score - reference[top_idx])) <= 1e-4


def test_offline_top_k_orders_ties_like_onnx_topk() -> None:
    scores = np.asarray([[0.5, 1.0, 0.5, 1.0, 0.0, 0.5], [0.0] * 6, [-np.inf, 2.0, -1.0, -1.0, -np.inf, 0.0]])
    assert top_k(scores.astype(np.float32), 4).tolist() == [[1, 3, 0, 2], [0, 1, 2, 3], [1, 5, 2, 3]]


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 30), st.integers(1, 8)),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_compacted_neighbor_lists_give_every_item_its_dense_row(
    shape: tuple[int, int], density: float, seed: int
) -> None:
    # Given a dense neighbor table where rows hold zero weights anywhere (negative weights too)
    rng = np.random.default_rng(seed)
    n_items, width = shape
    idx = rng.integers(0, n_items, (n_items, width)).astype(np.int32)
    sim = (rng.normal(size=(n_items, width)) * (rng.random((n_items, width)) < density)).astype(np.float32)
    # When it is compacted as the graph stores it
    start, length, flat_idx, flat_sim = compact_neighbors(idx, sim)
    # Then every item's list is its dense row up to its last non-zero weight, and position 0 adds nothing
    for item in range(n_items):
        last = max((c + 1 for c in range(width) if sim[item, c] != 0), default=0)
        where = slice(start[item], start[item] + length[item])
        assert flat_idx[where].tolist() == idx[item, :last].tolist()
        assert flat_sim[where].tolist() == sim[item, :last].tolist()
    assert flat_sim[0] == 0
    assert flat_sim.size == 1 + int(length.sum())


def test_a_long_tail_with_few_neighbors_keeps_the_graph_small() -> None:
    # Given 2,000 co-viewed items and a tail of 40,000 items seen by one person each, in tens
    rng = np.random.default_rng(3)
    head = rng.integers(0, 2_000, 20_000)
    tail = np.arange(2_000, 42_000)
    frame = normalize(
        pd.DataFrame(
            {
                "user_id": np.concatenate([rng.integers(0, 3_000, head.size), 10_000 + tail // 10]).astype(str),
                "item_id": np.concatenate([head, tail]).astype(str),
                "event_type": "view",
                "timestamp": pd.Timestamp("2024-01-01", tz="UTC")
                + pd.to_timedelta(rng.integers(0, 86_400, head.size + tail.size), unit="s"),
            }
        )
    )
    model = hybrid(RecsData(frame), RecsParams(neighbors=100))
    # When it is exported
    graph = recs_graph(model)
    # Then the graph is far smaller than a dense 42,000 x 100 table (33.6 MB of targets and weights) ...
    assert len(graph) < 0.3 * model.n_items * 100 * 8
    # ... and scores a head item's and a tail item's history as the reference does
    for idx, w in (([5, 2_500], [0.5, 0.5]), ([41_000], [1.0]), ([7, 8, 9], [0.2, 0.3, 0.5])):
        top_idx, top_score = run(graph, idx, w, idx, 10)
        reference = model.score_vector(np.asarray(idx), np.asarray(w, np.float32), np.asarray(idx))
        ref_idx, _ = model.top_k(np.asarray(idx), np.asarray(w, np.float32), np.asarray(idx), 10)
        assert top_idx.tolist() == ref_idx.tolist()
        assert np.array_equal(top_score, reference[top_idx])
