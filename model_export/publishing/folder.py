"""A trained model version written as a folder: its files and a manifest that says what it learned from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from model_export.data.canonical import data_hash, normalize
from model_export.publishing.drift import distributions
from model_export.training.artifacts import write_version
from model_export.training.interactions import Counts, count_interactions
from model_export.training.segments import MIN_SHARE
from model_export.training.training import Trained, train_models
from model_export.training.user_replay import Replay, replay_users


def data_summary(frame: pd.DataFrame, source: str) -> dict[str, Any]:
    """What the manifest records about the data of a canonical file: where from, and the time span."""
    if frame.empty:
        return {"source": source, "rows": 0}
    return {
        "source": source,
        "window": {"start": frame["timestamp"].min().isoformat(), "end": frame["timestamp"].max().isoformat()},
        "rows": len(frame),
    }


def write_trained(
    trained: Trained,
    frame: pd.DataFrame,
    out: Path,
    data: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """The version folder under `out` for a model trained on canonical `frame` (the manifest's data hash)."""
    return write_version(
        out,
        trained.files(),
        data_hash(frame),
        parameters=trained.parameters(),
        metrics={"events": len(frame), **trained.metrics()},
        extra={
            **trained.manifest_extra(),
            "data": data or data_summary(frame, "events"),
            # Kept so that a later candidate's drift can be measured against this version (publishing/drift.py).
            "distributions": distributions(trained.features, trained.segments.labels(trained.features)),
            **(extra or {}),
        },
    )


def train_version(
    frame: pd.DataFrame,
    out: Path,
    progress: bool = False,
    data: dict[str, Any] | None = None,
    min_segment_share: float = MIN_SHARE,
    replay: Replay = replay_users,
    counts: Counts = count_interactions,
) -> Path:
    """Train segments and recommender on canonical events and write a versioned model folder under `out`.
    `replay`, `counts`: in this process, or on Spark (training.spark_engine.SparkEngine)."""
    # The trainer screens as it replays (each event built once); the version hashes the rows it trained on.
    trained = train_models(
        normalize(frame), progress=progress, min_segment_share=min_segment_share, replay=replay, counts=counts
    )
    return write_trained(trained, trained.frame if trained.frame is not None else frame, out, data)
