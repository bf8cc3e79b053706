"""`--engine spark`: the stages that grow with the data on PySpark, calling the SAME code as the single process.

Spark only moves rows. The canonical rows are handed over once (a Parquet file) and hash-partitioned by user id
into partitions of whole users; each partition then runs
- `user_replay.replay_partition` -- the very function the single process runs, which folds through
  personalization.profile.fold and reads personalization.features.feature_vector (no second implementation of an
  event, a fold or a feature); the driver gets back one row per user (feature vector and the profiles the spec
  keeps) and puts users back in the order of their first event;
- `interactions.partial_counts` -- the user x item weights and the session co-occurrence counts of its users,
  which Spark sums over partitions (integers and quarter multiples: the sums are exact in any order), and
  `interactions.combine` turns into the same matrices the single process builds.
Everything else (catalog, segments, search on a bounded sample, refit, ONNX export, parity) runs on the driver on
the same inputs, and the model comes out the same (tests/integration/test_spark_parity.py). Reading the archive
runs on Spark too (model_export.data.spark_archive).

PySpark is the optional extra `spark` (the Spark line AWS Glue 5.0 runs: 3.5), so serve and ingest stay lean;
it is imported only here, when the engine is asked for.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from model_export.training.interactions import (
    Counts,
    Interactions,
    ItemIndex,
    combine,
    count_interactions,
    partial_counts,
)
from model_export.training.pair_counts import PairCounts
from model_export.training.user_replay import (
    PARTITION_ROWS,
    Replay,
    Replayed,
    ReplaySpec,
    replay_partition,
    replay_users,
    user_order,
)
from personalization.features import FEATURE_NAMES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Partitions per core at least: a few more than cores so that one large partition does not leave a core idle.
PARTITIONS_PER_CORE = 4
# What a replay partition sends back: one row per user, and one row (user_id null) with the partition's refusals:
# their reasons and the seqs of the rows refused (rare), so the driver knows the kept rows without a list per user.
RESULT_SCHEMA = (
    "user_id string, first_seq long, features array<double>, early binary, final binary, refused string,"
    " refused_seqs array<long>"
)
# What a counting partition sends back: user x item weights (kind "ui": key = user, a = item, first = the user's
# first seq) and co-occurrence counts (kind "pair": a followed by b at `lag`; lag 0: a's occurrences).
COUNT_SCHEMA = "kind string, key string, lag long, a long, b long, value double, first long"
# The canonical columns the stages read, typed for Parquet and Spark (an all-empty column still has a type).
COLUMNS = {
    "user_id": "string",
    "item_id": "string",
    "event_type": "string",
    "category": "string",
    "price": "float64",
    "quantity": "int64",
    "session_id": "string",
    "device": "string",
    "utc_offset_min": "Int64",
}


def spark_session(cores: int | None = 2, memory: str = "2g") -> SparkSession:
    """A local Spark (local[cores]); with `cores` None, the session the environment gives (AWS Glue's, or what
    spark-submit was told), never forced to local mode."""
    from pyspark.sql import SparkSession

    _python_path_for_workers()
    builder = (
        SparkSession.builder.appName("model_export")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if cores is not None:
        builder = (
            builder.master(f"local[{cores}]")
            .config("spark.sql.shuffle.partitions", str(cores * PARTITIONS_PER_CORE))
            .config("spark.driver.memory", memory)
            .config("spark.ui.enabled", "false")
        )
    return builder.getOrCreate()


def _python_path_for_workers() -> None:
    """Spark's Python workers import model_export and personalization by name: give them the driver's path."""
    wanted = [
        path for path in sys.path if path and (Path(path, "model_export").is_dir() or Path(path).name == "functions")
    ]
    current = [part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*current, *wanted]))
    # The workers must run the same interpreter as the driver (the project's venv: its numpy, pandas, pydantic).
    os.environ["PYSPARK_PYTHON"] = sys.executable


def _partition_rows(batches: Iterator[pd.DataFrame]) -> pd.DataFrame:
    """A partition's Arrow batches as one frame indexed by seq, in seq (time) order: what the single process's
    functions read. The partition holds whole users (hash-partitioned by user id)."""
    rows = pd.concat(list(batches), ignore_index=True)
    rows = rows.sort_values("seq", kind="stable").set_index("seq")
    rows.index = rows.index.astype(np.int64)
    rows["timestamp"] = pd.to_datetime(rows["timestamp"], utc=True)
    return rows


def _replay_partition(spec: ReplaySpec) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        rows = _partition_rows(batches)
        if rows.empty:
            return
        # Users in the order of their first event, each user's rows in seq order: as user_replay.partitions gives.
        rows = rows.iloc[user_order(rows)[0]]
        found = replay_partition(rows, spec)
        yield pd.DataFrame(
            {
                "user_id": found.users,
                "first_seq": found.first,
                "features": list(found.features),
                "early": [_dumps(found.early.get(user)) for user in found.users],
                "final": [_dumps(found.final.get(user)) for user in found.users],
                "refused": [None] * len(found.users),
                "refused_seqs": [None] * len(found.users),
            }
        )
        refused_seqs = np.setdiff1d(rows.index.to_numpy(), found.kept)
        refusals: dict[str, Any] = {"user_id": None, "first_seq": -1, "features": [[]], "early": None, "final": None}
        yield pd.DataFrame({**refusals, "refused": [json.dumps(found.refused)], "refused_seqs": [refused_seqs]})

    return run


def _count_partition(index: dict[str, int]) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    n_items = len(index)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        rows = _partition_rows(batches)
        if rows.empty:
            return
        weights, pairs = partial_counts(rows, index, n_items)
        yield pd.DataFrame(
            {
                "kind": "ui",
                "key": weights["key"],
                "lag": 0,
                "a": weights["item"],
                "b": 0,
                "value": weights["weight"],
                "first": weights["first"],
            }
        )
        seen = np.flatnonzero(pairs.occurrences)
        yield pd.DataFrame(
            {
                "kind": "pair",
                "key": None,
                "lag": np.concatenate([pairs.lag, np.zeros(seen.size, dtype=np.int64)]),
                "a": np.concatenate([pairs.before, seen]),
                "b": np.concatenate([pairs.after, seen]),
                "value": np.concatenate([pairs.count, pairs.occurrences[seen]]).astype(np.float64),
                "first": 0,
            }
        )

    return run


def _dumps(value: Any) -> bytes | None:
    return None if value is None else pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def engine_for(events: int, spark_above: int | None, cores: int | None = None) -> tuple[Replay, Counts]:
    """The replay and the counting for a window of `events`: on Spark past `spark_above` events (never when
    None), else in this process."""
    if spark_above is None or events <= spark_above:
        return replay_users, count_interactions
    engine = SparkEngine(spark_session(cores))
    return engine, engine.interactions


class SparkEngine:
    """The replay (`user_replay.Replay`) and the counts (`interactions.Counts`) of `train_models` on Spark.

    The frame is handed over and partitioned once: the counting job reuses the replay's partitioned rows (cached
    by Spark) when it is given the frame the last replay was (train_models counts the frame it replayed last)."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.seconds: dict[str, float] = {}
        self._scratch = tempfile.TemporaryDirectory(prefix="spark-engine-")
        self._staged: tuple[pd.DataFrame, Any] | None = None

    def __call__(self, frame: pd.DataFrame, spec: ReplaySpec, progress: bool = False) -> Replayed:
        with self._timed("replay"):
            result = self._rows(frame).mapInPandas(_replay_partition(spec), RESULT_SCHEMA).toPandas()
            return _collect(result, frame.index.to_numpy(dtype=np.int64))

    def interactions(self, frame: pd.DataFrame, index: ItemIndex) -> Interactions:
        """`interactions.count_interactions` on Spark: partial counts per user partition, summed by Spark."""
        from pyspark.sql import functions as F

        with self._timed("counts"):
            partial = self._rows(frame).mapInPandas(_count_partition(index.position), COUNT_SCHEMA)
            summed = partial.groupBy("kind", "key", "lag", "a", "b").agg(
                F.sum("value").alias("value"), F.min("first").alias("first")
            )
            return _interactions(summed.toPandas(), len(index))

    def close(self) -> None:
        if self._staged is not None:
            self._staged[1].unpersist()
        self._staged = None
        self._scratch.cleanup()

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def _rows(self, frame: pd.DataFrame) -> Any:
        """`frame` as a Spark DataFrame of whole-user partitions (seq = the frame's index), staged once per frame."""
        from pyspark.sql import functions as F

        if self._staged is not None and self._staged[0] is frame:
            return self._staged[1]
        if self._staged is not None:
            self._staged[1].unpersist()
        # In local mode handed over as a Parquet file, as canonical files are read: Spark reads it in parallel, typed.
        typed = (
            frame[list(COLUMNS)]
            .astype(COLUMNS)
            .assign(seq=frame.index.to_numpy(dtype=np.int64), timestamp=frame["timestamp"])
        )
        if str(self.spark.sparkContext.master).startswith("local"):
            path = str(Path(self._scratch.name) / f"events-{len(frame)}-{id(frame)}.parquet")
            typed.to_parquet(path, index=False)
            staged = self.spark.read.parquet(path)
        else:
            # A cluster's executors cannot read the driver's disk (AWS Glue): through the driver, as Arrow batches.
            staged = self.spark.createDataFrame(typed)
        n_parts = max(
            int(self.spark.sparkContext.defaultParallelism) * PARTITIONS_PER_CORE, len(frame) // PARTITION_ROWS
        )
        # An explicit count of hash partitions by user id: every user whole in one partition, and many users per
        # partition keep them even (grouping by a partition number instead let adaptive execution merge them
        # into fewer partitions than cores).
        rows = staged.repartition(n_parts, F.col("user_id")).cache()
        self._staged = (frame, rows)
        return rows


def _collect(result: pd.DataFrame, seqs: npt.NDArray[np.int64]) -> Replayed:
    refusals = result[result["user_id"].isna()]
    users = result[result["user_id"].notna()].sort_values("first_seq", kind="stable")
    found = Replayed(
        users["user_id"].astype(str).tolist(),
        np.asarray([np.asarray(vector, dtype=np.float64) for vector in users["features"]]).reshape(
            len(users), len(FEATURE_NAMES)
        ),
    )
    found.first = users["first_seq"].to_numpy(dtype=np.int64)
    for user, early, final in zip(found.users, users["early"], users["final"], strict=True):
        if early is not None:
            found.early[user] = pickle.loads(early)  # noqa: S301  # this run's own workers wrote it
        if final is not None:
            found.final[user] = pickle.loads(final)  # noqa: S301
    refused = [np.asarray(part, dtype=np.int64) for part in refusals["refused_seqs"] if part is not None]
    found.kept = np.setdiff1d(seqs, np.concatenate(refused)) if refused else np.sort(seqs)
    for text in refusals["refused"]:
        found.refused.update(Counter(json.loads(text)))
    return found


def _interactions(summed: pd.DataFrame, n_items: int) -> Interactions:
    ui = summed[summed["kind"] == "ui"]
    weights = pd.DataFrame(
        {
            "key": ui["key"].to_numpy(),
            "item": ui["a"].to_numpy(dtype=np.int64),
            "weight": ui["value"].to_numpy(dtype=np.float64),
            "first": ui["first"].to_numpy(dtype=np.int64),
        }
    )
    counted = summed[(summed["kind"] == "pair") & (summed["lag"] > 0)]
    seen = summed[(summed["kind"] == "pair") & (summed["lag"] == 0)]
    occurrences = np.zeros(n_items, dtype=np.int64)
    occurrences[seen["a"].to_numpy(dtype=np.int64)] = seen["value"].to_numpy(dtype=np.int64)
    pairs = PairCounts(
        counted["lag"].to_numpy(dtype=np.int64),
        counted["a"].to_numpy(dtype=np.int64),
        counted["b"].to_numpy(dtype=np.int64),
        counted["value"].to_numpy(dtype=np.int64),
        occurrences,
    )
    return combine(weights, pairs, n_items)
