"""`--engine spark`: the replay, the stage that grows with the data, on PySpark, calling the SAME code.

Spark only moves rows: the canonical rows are grouped into partitions of whole users (a hash of the user id), and
each partition runs `user_replay.replay_partition` (applyInPandas) -- the very function the single process runs,
which folds through personalization.profile.fold and reads personalization.features.feature_vector. There is no
second implementation of an event, a fold or a feature here. The driver gets back one row per user (feature
vector, accepted seqs, the profiles the spec keeps) and puts users back in the order of their first event, so
everything after the replay (segments, search, refit, ONNX export, parity) runs on the same inputs as the single
process, on the driver, and the model comes out the same (tests/integration/test_spark_parity.py).

PySpark is the optional extra `spark` (the Spark line AWS Glue 5.0 runs: 3.5), so serve and ingest stay lean;
it is imported only here, when the engine is asked for.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from model_export.training.user_replay import (
    PARTITION_ROWS,
    Replay,
    Replayed,
    ReplaySpec,
    replay_partition,
    replay_users,
)
from personalization.features import FEATURE_NAMES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Partitions per core: a few more than cores so that one large partition does not leave a core idle.
PARTITIONS_PER_CORE = 4
# What a partition sends back: one row per user, and one row (user_id null) with the partition's refusals.
RESULT_SCHEMA = (
    "user_id string, first_seq long, features array<double>, kept array<long>, early binary, final binary,"
    " refused string"
)
# The canonical columns the replay reads, typed for Parquet and Spark (an all-empty column still has a type).
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


def _replay_group(spec: ReplaySpec) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def run(rows: pd.DataFrame) -> pd.DataFrame:
        # Users in the order of their first event, each user's rows in seq order: as user_replay.partitions gives.
        rows = rows.assign(first_seq=rows.groupby("user_id")["seq"].transform("min"))
        rows = rows.sort_values(["first_seq", "seq"], kind="stable")
        rows = rows.set_index("seq").drop(columns=["part", "first_seq"])
        rows.index = rows.index.astype(np.int64)
        rows["timestamp"] = pd.to_datetime(rows["timestamp"], utc=True)
        found = replay_partition(rows, spec)
        kept = pd.Series(found.kept)
        by_user = kept.groupby(rows.loc[found.kept, "user_id"].to_numpy(), sort=False).agg(list).to_dict()
        out = pd.DataFrame(
            {
                "user_id": found.users,
                "first_seq": found.first.tolist(),
                "features": list(found.features),
                "kept": [by_user.get(user, []) for user in found.users],
                "early": [_dumps(found.early.get(user)) for user in found.users],
                "final": [_dumps(found.final.get(user)) for user in found.users],
                "refused": [None] * len(found.users),
            }
        )
        refusals: dict[str, Any] = {
            "user_id": None,
            "first_seq": -1,
            "features": [[]],
            "kept": [[]],
            "early": None,
            "final": None,
        }
        return pd.concat([out, pd.DataFrame({**refusals, "refused": [json.dumps(found.refused)]})])

    return run


def _dumps(value: Any) -> bytes | None:
    return None if value is None else pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def replay_for(events: int, spark_above: int | None, cores: int | None = None) -> Replay:
    """The replay for a window of `events`: on Spark past `spark_above` events (never when None), else here."""
    if spark_above is None or events <= spark_above:
        return replay_users
    return SparkReplay(spark_session(cores))


class SparkReplay:
    """The replay step of `train_models` (`user_replay.Replay`) on a Spark session."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def __call__(self, frame: pd.DataFrame, spec: ReplaySpec, progress: bool = False) -> Replayed:
        return replay_on_spark(self.spark, frame, spec)


def replay_on_spark(spark: SparkSession, frame: pd.DataFrame, spec: ReplaySpec) -> Replayed:
    """`user_replay.replay_users` on Spark: the same `Replayed`, users in the same order."""
    from pyspark.sql import functions as F

    n_parts = max(int(spark.sparkContext.defaultParallelism) * PARTITIONS_PER_CORE, len(frame) // PARTITION_ROWS)
    with tempfile.TemporaryDirectory(prefix="spark-replay-") as scratch:
        # Handed over as a Parquet file, as canonical files are read: Spark reads it in parallel, typed.
        typed = (
            frame[list(COLUMNS)]
            .astype(COLUMNS)
            .assign(seq=frame.index.to_numpy(dtype=np.int64), timestamp=frame["timestamp"])
        )
        path = str(Path(scratch) / "events.parquet")
        typed.to_parquet(path, index=False)
        rows = spark.read.parquet(path).withColumn("part", F.abs(F.xxhash64("user_id")) % n_parts)
        result = rows.groupBy("part").applyInPandas(_replay_group(spec), RESULT_SCHEMA).toPandas()
    return _collect(result)


def _collect(result: pd.DataFrame) -> Replayed:
    refusals = result[result["user_id"].isna()]
    users = result[result["user_id"].notna()].sort_values("first_seq", kind="stable")
    found = Replayed(
        users["user_id"].astype(str).tolist(),
        np.asarray([np.asarray(vector, dtype=np.float64) for vector in users["features"]]).reshape(
            len(users), len(FEATURE_NAMES)
        ),
    )
    for user, early, final in zip(found.users, users["early"], users["final"], strict=True):
        if early is not None:
            found.early[user] = pickle.loads(early)  # noqa: S301  # this run's own workers wrote it
        if final is not None:
            found.final[user] = pickle.loads(final)  # noqa: S301
    kept = [np.asarray(seqs, dtype=np.int64) for seqs in users["kept"]]
    found.kept = np.sort(np.concatenate(kept)) if kept else found.kept
    for text in refusals["refused"]:
        found.refused.update(Counter(json.loads(text)))
    return found
