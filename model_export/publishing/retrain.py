"""The retraining use case: archive window -> candidate -> evaluation against the live version -> promote or not.

1. The window's events are read from the archive (de-duplicated, consent applied: model_export.data).
2. A candidate is trained, exactly as `train` does, on the window without its last `holdout_days`.
3. The candidate, the live version and popularity answer the same questions: the user split of `evaluate`
   with the cutoff at the start of the held-out day (profiles replayed up to it, through the fold).
4. The gate decides (publishing/gate.py). The candidate is uploaded either way, its manifest holding its
   evaluation, the version it was compared with, the decision and its reason, and drift against the live
   version; only a promoted candidate becomes `current`.
5. The outcome goes out as metrics (rejection, NDCG of both, drift), which alarms watch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from model_export.data.archive import Window, read_window
from model_export.data.window import ArchiveWindow, Reader, load_window
from model_export.publishing.drift import Drift, drift
from model_export.publishing.folder import write_trained
from model_export.publishing.gate import Decision, decide, parity_refused
from model_export.publishing.scoring import Scores, score_popularity, score_version
from model_export.training.artifacts import read_manifest, write_manifest
from model_export.training.parity import ParityError
from model_export.training.protocols import Protocol as Questions
from model_export.training.protocols import user_split
from model_export.training.replay import replay
from model_export.training.training import Trained, train_models
from personalization.models import ModelError
from store.artifacts import ArtifactError, ModelVersion

log = logging.getLogger(__name__)

MAX_QUERIES = 20_000


Trainer = Callable[[pd.DataFrame], Trained]


class RetrainError(RuntimeError):
    """The run cannot produce a candidate at all (nothing to train on): the job fails, and its alarm fires."""


class VersionStore(Protocol):
    """The artifact store as the job uses it (store.artifacts.ArtifactStore)."""

    def current_version(self) -> str: ...

    def load(self, version: str | None = None) -> ModelVersion: ...

    def upload(self, folder: Path) -> str: ...

    def point_to(self, version: str) -> None: ...


class MetricsSink(Protocol):
    def put(self, values: Mapping[str, float]) -> None: ...


@dataclass(frozen=True)
class RetrainConfig:
    archive: str
    days: float
    out: Path
    tolerance: float = 0.02
    holdout_days: float = 1.0
    until: datetime | None = None
    max_queries: int = MAX_QUERIES
    region: str = "us-east-1"


@dataclass(frozen=True)
class RetrainResult:
    decision: Decision
    candidate_version: str | None
    live_version: str | None
    candidate: Scores | None
    live: Scores | None
    popularity: Scores | None
    events: int
    train_events: int
    holdout_events: int
    drift: Drift | None
    data: dict[str, Any]
    folder: Path | None
    evaluation: dict[str, Any] = field(default_factory=dict)
    # Seconds per phase: read (archive), train (candidate and its folder), evaluate (scores, drift), publish.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def promotion(self) -> str:
        return self.decision.outcome

    def summary(self) -> dict[str, Any]:
        """The JSON last line of the command and the job's report."""
        return {
            "promotion": self.promotion,
            "reason": self.decision.reason,
            "candidate_version": self.candidate_version,
            "live_version": self.live_version,
            "candidate_ndcg": None if self.candidate is None else self.candidate.ndcg,
            "live_ndcg": None if self.live is None else self.live.ndcg,
            "popularity_ndcg": None if self.popularity is None else self.popularity.ndcg,
            "queries": 0 if self.candidate is None else self.candidate.queries,
            "events": self.events,
            "train_events": self.train_events,
            "holdout_events": self.holdout_events,
            "psi": None if self.drift is None or self.drift.max is None else round(self.drift.max, 4),
            "drift": None if self.drift is None else self.drift.to_dict(),
            "window": self.data.get("window"),
            "left_out_for_consent": self.data.get("left_out_for_consent"),
            "left_out_erased": self.data.get("left_out_erased"),
            "seconds": self.seconds,
        }

    def metrics(self) -> dict[str, float]:
        """What the alarms watch: a completed run (its absence), a rejection, drift beyond its threshold."""
        values = {
            "RetrainRuns": 1.0,
            "RetrainPromoted": float(self.decision.promote),
            "RetrainRejected": float(not self.decision.promote),
        }
        if self.candidate is not None:
            values["CandidateNdcg"] = self.candidate.ndcg
        if self.live is not None:
            values["LiveNdcg"] = self.live.ndcg
        if self.drift is not None and self.drift.max is not None:
            values["DriftPsi"] = self.drift.max
            if self.drift.segments is not None:
                values["DriftPsiSegments"] = self.drift.segments
        return values


@dataclass(frozen=True)
class _Live:
    version: str | None
    model: ModelVersion | None
    problem: str | None


def _live(store: VersionStore) -> _Live:
    try:
        version = store.current_version()
    except ArtifactError:
        return _Live(None, None, None)
    try:
        return _Live(version, store.load(version), None)
    except ArtifactError as exc:
        log.warning("live version %s cannot be read: %s", version, exc)
        return _Live(version, None, f"live version {version} cannot be read")


def _split(loaded: ArchiveWindow, holdout_days: float) -> tuple[datetime, pd.DataFrame, pd.DataFrame]:
    if not 0 < holdout_days < (loaded.window.end - loaded.window.start) / timedelta(days=1):
        raise RetrainError("the held-out period must be shorter than the window")
    cutoff = loaded.window.end - timedelta(days=holdout_days)
    frame = loaded.frame
    # Rows are in time order, so the training rows are a prefix and keep their positions (replay's sequence).
    return cutoff, frame[frame["timestamp"] < cutoff], frame[frame["timestamp"] >= cutoff]


def questions(frame: pd.DataFrame, cutoff: datetime, max_queries: int) -> Questions:
    """The user split at `cutoff`: histories replayed through the fold from the archive itself (what serve's
    profiles held at the cutoff), whatever the candidate was trained on. Only people seen after the cutoff
    can be asked, so only they are replayed."""
    returning = frame[frame["user_id"].isin(frame.loc[frame["timestamp"] >= cutoff, "user_id"].unique())]
    return user_split(frame, pd.Timestamp(cutoff), replay(returning, pd.Timestamp(cutoff)), max_queries)


def retrain(
    config: RetrainConfig,
    store: VersionStore,
    metrics: MetricsSink | None = None,
    trainer: Trainer = train_models,
    erased: Collection[str] = (),
    reader: Reader = read_window,
) -> RetrainResult:
    """`trainer` trains a candidate from canonical rows (training.train_models: what `train` does);
    a benchmark passes one that corrupts its input, to show that the gate refuses a worse model. `erased` are
    the pseudonyms of people with a live erasure tombstone: left out even before the archive purge reaches them.
    `reader`: how the window is read (here, or on Spark for a large window: spark_archive.reader_above)."""
    clock = _Clock()
    window = Window.last_days(config.days, config.until)
    loaded = load_window(config.archive, window, config.region, erased, reader)
    cutoff, train, holdout = _split(loaded, config.holdout_days)
    if train.empty:
        raise RetrainError(f"no events to train on in {window.start.isoformat()}..{cutoff.isoformat()}")
    data = {
        **loaded.summary(),
        "window": {"start": window.start.isoformat(), "end": cutoff.isoformat()},
        "holdout": {"start": cutoff.isoformat(), "end": window.end.isoformat(), "rows": len(holdout)},
        "rows": len(train),
    }
    live = _live(store)
    read = _Read(live.version, len(loaded.frame), len(train), len(holdout), data)
    clock.lap("read")
    try:
        trained = trainer(train)
    except ParityError as exc:
        return _report(metrics, read, parity_refused(str(exc)), clock.lap("train"))
    folder = write_trained(trained, train, config.out, data)
    clock.lap("train")

    manifest = read_manifest(folder)
    protocol = questions(loaded.frame, cutoff, config.max_queries)
    files = {name: (folder / name).read_bytes() for name in manifest.files}
    candidate = score_version(files, manifest, protocol)
    popularity = score_popularity(trained.index.ids, trained.index.popularity.tolist(), protocol)
    live_scores, live_problem = None, live.problem
    if live.model is not None:
        try:
            live_scores = score_version(live.model.files, live.model.manifest, protocol)
        except ModelError as exc:
            live_problem = f"live version {live.version} cannot be served ({exc})"
    decision = decide(candidate, popularity, live_scores, config.tolerance, live_problem)
    measured = _drift(trained, live.model)
    evaluation = {
        "protocol": "user split (evaluate): profiles replayed to the cutoff, scored on new items after it",
        "cutoff": cutoff.isoformat(),
        "end": window.end.isoformat(),
        "queries": candidate.queries,
        "candidate": candidate.to_dict(),
        "popularity": popularity.to_dict(),
        "compared_with": live.version,
        "live": None if live_scores is None else live_scores.to_dict(),
        "live_problem": live_problem,
        # A live version trained on events after the cutoff has seen the answers; the comparison favours it.
        "live_saw_holdout": _saw(live.model, cutoff),
        "tolerance": config.tolerance,
    }
    clock.lap("evaluate")

    manifest = manifest.with_recorded(
        evaluation=evaluation,
        drift=None if measured is None else measured.to_dict(),
        promotion={"decision": decision.outcome, "reason": decision.reason, "at": datetime.now(UTC).isoformat()},
    )
    write_manifest(folder, manifest)
    version = store.upload(folder)
    if decision.promote:
        store.point_to(version)
    log.info("candidate %s %s: %s", version, decision.outcome, decision.reason)
    return _report(
        metrics,
        read,
        decision,
        clock.lap("publish"),
        _Candidate(version, candidate, live_scores, popularity, measured, folder, evaluation),
    )


class _Clock:
    """Seconds per phase of a run, for the job's report (where the time of a slow run went)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._laps: dict[str, float] = {}

    def lap(self, name: str) -> dict[str, float]:
        now = time.perf_counter()
        self._laps[name] = round(now - self._last, 3)
        self._last = now
        return dict(self._laps)


def _drift(trained: Trained, live: ModelVersion | None) -> Drift | None:
    if live is None:
        return None
    meta = live.manifest.segment_model
    graph = live.files.get(meta.file) if meta is not None else None
    return drift(trained.features, live.version, live.manifest.recorded("distributions"), graph)


def _saw(live: ModelVersion | None, cutoff: datetime) -> bool | None:
    """Whether the live version learned from events after `cutoff`; None when its manifest does not say."""
    data = live.manifest.recorded("data") if live is not None else None
    window = data.get("window") if isinstance(data, dict) else None
    end = window.get("end") if isinstance(window, dict) else None
    try:
        learned_until = datetime.fromisoformat(end) if isinstance(end, str) else None
        return None if learned_until is None else learned_until > cutoff
    except (ValueError, TypeError):  # not ISO 8601, or without a time zone
        return None


@dataclass(frozen=True, slots=True)
class _Read:
    """What every result of a run reports of its data, whether a candidate was scored or refused."""

    live_version: str | None
    events: int
    train_events: int
    holdout_events: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A candidate that was trained, scored and uploaded (a run refused at training has none)."""

    version: str
    scores: Scores
    live: Scores | None
    popularity: Scores
    drift: Drift | None
    folder: Path
    evaluation: dict[str, Any]


def _report(
    metrics: MetricsSink | None,
    read: _Read,
    decision: Decision,
    seconds: dict[str, float],
    candidate: _Candidate | None = None,
) -> RetrainResult:
    """The run's result, emitted as metrics: one shape for a published candidate and for a refused run."""
    result = RetrainResult(
        decision=decision,
        candidate_version=None if candidate is None else candidate.version,
        live_version=read.live_version,
        candidate=None if candidate is None else candidate.scores,
        live=None if candidate is None else candidate.live,
        popularity=None if candidate is None else candidate.popularity,
        events=read.events,
        train_events=read.train_events,
        holdout_events=read.holdout_events,
        drift=None if candidate is None else candidate.drift,
        data=read.data,
        folder=None if candidate is None else candidate.folder,
        evaluation={} if candidate is None else candidate.evaluation,
        seconds=seconds,
    )
    _emit(metrics, result)
    return result


def _emit(metrics: MetricsSink | None, result: RetrainResult) -> None:
    if metrics is not None:
        metrics.put(result.metrics())
