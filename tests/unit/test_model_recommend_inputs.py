"""personalization.recommend: a profile's history -> recs.onnx inputs, as serve and the evaluation build them."""

import numpy as np
import pytest

from personalization.recommend import RecentWeighting, decode, exclusion_indices, onnx_feed, recent_inputs

INDEX = {"a": 0, "b": 1, "c": 2}


def test_recent_items_weigh_by_type_and_recency_and_sum_to_one() -> None:
    history = [("a", "v", 1), ("b", "p", 2), ("zz", "v", 3), ("a", "v", 4)]
    idx, w = recent_inputs(history, INDEX, RecentWeighting(decay=0.5))
    # newest first: a (view, step 0) = 1; zz (unknown, still a step); b (purchase, step 2) = 5 * 0.25;
    # a (view, step 3) = 0.125
    expected = {0: 1.0 + 0.125, 1: 1.25}
    total = sum(expected.values())
    assert idx.tolist() == [0, 1]
    assert np.allclose(w, [expected[0] / total, expected[1] / total])
    assert idx.dtype == np.int64
    assert w.dtype == np.float32


def test_nothing_known_gives_empty_inputs_and_removals_weigh_nothing() -> None:
    idx, w = recent_inputs([("zz", "v", 1), ("a", "r", 2)], INDEX, RecentWeighting())
    assert idx.size == 0
    assert w.size == 0


def test_only_the_newest_events_count() -> None:
    history = [("a", "v", 1), ("b", "v", 2), ("c", "v", 3)]
    idx, _ = recent_inputs(history, INDEX, RecentWeighting(decay=1.0, max_events=2))
    assert idx.tolist() == [1, 2]


def test_exclusions_and_feed() -> None:
    excluded = exclusion_indices(["c", "zz", "a", "c"], INDEX)
    assert excluded.tolist() == [0, 2]
    feed = onnx_feed(np.asarray([1]), np.asarray([1.0], np.float32), excluded, 10)
    assert feed["k"].tolist() == [10]
    assert feed["exclude_idx"].dtype == np.int64
    assert RecentWeighting.from_dict(RecentWeighting(0.3, 7).to_dict()) == RecentWeighting(0.3, 7)


def test_decode_drops_excluded_fillers() -> None:
    ranked = decode(np.asarray([2, 0, 1]), np.asarray([0.5, 0.1, -1e9], np.float32), ["a", "b", "c"])
    assert ranked == [("c", 0.5), ("a", pytest.approx(0.1))]
