"""Parity between engines: reading, replay and counts on Spark (local mode) and in this process agree.

Spark runs the very partition functions the single process runs (archive.object_events for each archived object;
user_replay.replay_partition, through personalization.profile.fold and features.feature_vector;
interactions.partial_counts); everything else runs on the driver. So on the bundled shop (../shared; the
committed first 2,000 rows of it where it is absent, as on CI) the two trainings must agree on the item index and
catalog, the counts, every user's segment label, the neighbour lists and their scores, and what both exported
graphs answer for the parity users (up to 1,000); and an archive with repeated deliveries, bad lines and a
corrupt object reads to the same distinct events and the same counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench.common import bundled_events
from model_export.data.archive import LocalObjects, Window, read_window
from model_export.data.canonical import normalize
from model_export.data.datasets import load_any
from model_export.data.spark_archive import read_window_spark
from model_export.training.pair_counts import MAX_WINDOW
from model_export.training.parity import session
from model_export.training.spark_engine import SparkEngine, spark_session
from model_export.training.training import Trained, train_models
from personalization.features import SEGMENT_DISTANCES, SEGMENT_INPUT, SEGMENT_LABEL
from personalization.recommend import OUTPUT_INDICES, OUTPUT_SCORES, exclusion_indices, onnx_feed, recent_inputs
from tests.helpers.archive import archived, hostile_archive, sample_frame, write_folder
from tests.helpers.data import rees46_sample

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark (two cores) for the whole test session: starting a JVM costs seconds."""
    found = spark_session(cores=2, memory="1g")
    yield found
    found.stop()


@pytest.fixture(scope="module")
def both(spark: Any) -> tuple[Trained, Trained]:
    frame = load_any(bundled_events())
    return train_models(frame), train_models(frame, replay=(engine := SparkEngine(spark)), counts=engine.interactions)


def answers(trained: Trained) -> list[tuple[np.ndarray, np.ndarray]]:
    """recs.onnx's top 10 for every parity user's recent items, with serve's exclusions."""
    graph = session(trained.recs_onnx)
    position, weighting = trained.index.position, trained.recs.weighting()
    found = []
    for user in trained.users[:1000]:
        profile = trained.profiles[user]
        idx, weights = recent_inputs(profile.recent, position, weighting)
        exclude = exclusion_indices((item for item, _, _ in profile.recent), position)
        top, scores = graph.run([OUTPUT_INDICES, OUTPUT_SCORES], onnx_feed(idx, weights, exclude, 10))
        found.append((np.asarray(top), np.asarray(scores)))
    return found


def test_both_engines_index_and_catalog_the_same_items(both: tuple[Trained, Trained]) -> None:
    local, spark = both
    assert spark.index.ids == local.index.ids
    assert spark.catalog.to_dict() == local.catalog.to_dict()
    assert local.frame is not None
    assert spark.frame is not None
    pd.testing.assert_frame_equal(spark.frame, local.frame)


def test_both_engines_count_the_same_interactions(both: tuple[Trained, Trained]) -> None:
    local, spark = both
    assert (spark.data.user_items != local.data.user_items).nnz == 0
    assert spark.data.user_items.shape == local.data.user_items.shape
    np.testing.assert_array_equal(spark.data.pairs.occurrences, local.data.pairs.occurrences)
    for window in range(1, MAX_WINDOW + 1):
        on_spark, here = (
            spark.data.pairs.similarity(len(spark.index), window),
            local.data.pairs.similarity(len(local.index), window),
        )
        assert (on_spark != here).nnz == 0


def test_both_engines_read_an_archive_window_to_the_same_events(spark: Any, tmp_path: Path) -> None:
    # Given the sample archived over two days, half the objects gzipped, one delivery repeated (at-least-once),
    # bad lines, a corrupt object and an object dated before the window
    until = datetime(2026, 11, 20, 12, tzinfo=UTC)
    events = archived(sample_frame(until, days=2, rows=600))
    objects = hostile_archive(events)
    source = LocalObjects(write_folder(tmp_path / "archive", objects))

    # When both engines read the last two days
    window = Window.last_days(2, until)
    here, counted_here = read_window(source, window)
    on_spark, counted_on_spark = read_window_spark(spark, source, window)

    # Then they return the same distinct events in the same order, and count the same problems
    assert on_spark == here
    assert counted_on_spark.to_dict() == counted_here.to_dict()
    assert counted_here.duplicates == 100 + 3


def test_both_engines_give_every_user_the_same_features_and_segment(both: tuple[Trained, Trained]) -> None:
    local, spark = both
    assert spark.users == local.users
    np.testing.assert_array_equal(spark.features, local.features)
    np.testing.assert_array_equal(spark.segments.labels(spark.features), local.segments.labels(local.features))
    labels_graph = session(spark.segment_onnx).run([SEGMENT_LABEL, SEGMENT_DISTANCES], {SEGMENT_INPUT: spark.features})
    labels_local = session(local.segment_onnx).run([SEGMENT_LABEL, SEGMENT_DISTANCES], {SEGMENT_INPUT: local.features})
    np.testing.assert_array_equal(labels_graph[0], labels_local[0])
    np.testing.assert_allclose(labels_graph[1], labels_local[1], atol=1e-9)


def test_both_engines_choose_and_fit_the_same_recommender(both: tuple[Trained, Trained]) -> None:
    local, spark = both
    assert spark.recs.family == local.recs.family
    assert spark.recs.described() == local.recs.described()
    np.testing.assert_array_equal(spark.recs.neighbor_idx, local.recs.neighbor_idx)
    np.testing.assert_allclose(spark.recs.neighbor_sim, local.recs.neighbor_sim, atol=1e-6)


def test_both_engines_exported_graphs_answer_the_same_for_the_parity_users(both: tuple[Trained, Trained]) -> None:
    local, spark = both
    assert spark.profiles.keys() == local.profiles.keys()
    assert len(local.profiles) == min(1000, len(local.users))
    for (top_spark, scores_spark), (top_local, scores_local) in zip(answers(spark), answers(local), strict=True):
        np.testing.assert_array_equal(top_spark, top_local)
        np.testing.assert_allclose(scores_spark, scores_local, atol=1e-6)


def test_both_engines_train_the_same_model_of_a_shop_with_one_event_type(spark: Any) -> None:
    # Given a shop shaped like a grocery's purchase log (Ta-Feng's shape, built from the committed sample): only
    # purchases, dates without a time of day (a day's events all tie), no categories, baskets as sessions, odd
    # quantities
    rows = rees46_sample()
    day = rows["timestamp"].dt.floor("D") + pd.to_timedelta(rows.index % 3, unit="D")
    frame = normalize(
        rows.assign(
            event_type="purchase",
            timestamp=day,
            category=None,
            session_id=rows["user_id"] + "_" + day.dt.strftime("%Y%m%d"),
            quantity=(rows.index % 7) + 1,
        )
    )

    # When both engines train on it
    engine = SparkEngine(spark)
    local, on_spark = train_models(frame), train_models(frame, replay=engine, counts=engine.interactions)

    # Then the model is the same
    assert on_spark.index.ids == local.index.ids
    assert on_spark.users == local.users
    np.testing.assert_array_equal(on_spark.features, local.features)
    np.testing.assert_array_equal(on_spark.segments.labels(on_spark.features), local.segments.labels(local.features))
    assert (on_spark.data.user_items != local.data.user_items).nnz == 0
    assert on_spark.recs.described() == local.recs.described()
    np.testing.assert_array_equal(on_spark.recs.neighbor_idx, local.recs.neighbor_idx)
    np.testing.assert_allclose(on_spark.recs.neighbor_sim, local.recs.neighbor_sim, atol=1e-6)
