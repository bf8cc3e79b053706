"""The promotion gate, drift and the retraining use case, with the artifact store in memory (no sockets).

The headline: a candidate trained on events whose item ids were shuffled is refused, the live version stays,
and the refused candidate is kept with its evaluation and the reason."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model_export.publishing.drift import binned_shares, distributions, drift, psi
from model_export.publishing.gate import decide
from model_export.publishing.retrain import RetrainConfig, RetrainError, RetrainResult, Trainer, retrain
from model_export.publishing.scoring import Scores
from model_export.publishing.versions import RollbackError, VersionRow, list_versions, rollback
from model_export.training.parity import ParityError
from model_export.training.training import Trained, train_models
from personalization.events import Event
from personalization.features import FEATURE_NAMES
from personalization.manifest import Manifest
from store.artifacts import ArtifactError, ModelVersion
from tests.helpers.archive import archive_objects, pseudonym, shopping_events, write_folder

UNTIL = datetime(2026, 11, 20, 12, tzinfo=UTC)


class MemoryStore:
    """The artifact store's contract (upload, point_to, load with sha256 checks left to the real one) in memory."""

    def __init__(self) -> None:
        self.folders: dict[str, dict[str, bytes]] = {}
        self.current: str | None = None
        self.switches: list[str] = []

    def current_version(self) -> str:
        if self.current is None:
            raise ArtifactError("no current version")
        return self.current

    def load(self, version: str | None = None) -> ModelVersion:
        version = version or self.current_version()
        if version not in self.folders:
            raise ArtifactError(f"no version {version}")
        files = self.folders[version]
        manifest = json.loads(files["manifest.json"])
        return ModelVersion(
            version, Manifest.model_validate(manifest), {name: files[name] for name in manifest["files"]}
        )

    def upload(self, folder: Path) -> str:
        manifest = json.loads((folder / "manifest.json").read_text())
        names = [*manifest["files"], "manifest.json"]
        self.folders[manifest["version"]] = {name: (folder / name).read_bytes() for name in names}
        return str(manifest["version"])

    def point_to(self, version: str) -> None:
        self.current = version
        self.switches.append(version)

    def versions(self) -> list[str]:
        return sorted(self.folders)

    def manifest(self, version: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.folders[version]["manifest.json"])
        return data


class Sink:
    def __init__(self) -> None:
        self.put_values: list[dict[str, float]] = []

    def put(self, values: Mapping[str, float]) -> None:
        self.put_values.append(dict(values))


def scores(ndcg: float, queries: int = 100) -> Scores:
    return Scores(ndcg, 0.0, 0.0, 0.0, queries)


def run(
    tmp_path: Path,
    name: str,
    events: list[Event],
    store: MemoryStore,
    sink: Sink | None = None,
    trainer: Trainer = train_models,
    erased: frozenset[str] = frozenset(),
) -> RetrainResult:
    root = write_folder(tmp_path / f"archive-{name}", archive_objects(events))
    config = RetrainConfig(archive=str(root), days=3, out=tmp_path / f"models-{name}", until=UNTIL)
    return retrain(config, store, sink, trainer, erased)


def shuffled_trainer(frame: pd.DataFrame) -> Trained:
    """Trains on the rows with their item ids (and categories, prices) dealt out at random: what was learnable
    about who wants what is gone; popularity and timing stay."""
    order = np.random.default_rng(1).permutation(len(frame))
    columns = ["item_id", "category", "price"]
    shuffled = frame.copy()
    shuffled[columns] = frame[columns].iloc[order].to_numpy()
    return train_models(shuffled)


# -- the gate --------------------------------------------------------------------------------------------------


def test_the_gate_promotes_within_the_tolerance_and_refuses_beyond_it() -> None:
    popularity = scores(0.01)
    assert decide(scores(0.0981), popularity, scores(0.1), tolerance=0.02).promote
    assert decide(scores(0.0980), popularity, scores(0.1), tolerance=0.02).promote
    refused = decide(scores(0.0979), popularity, scores(0.1), tolerance=0.02)
    assert not refused.promote
    assert "worse than the live version" in refused.reason


def test_with_no_live_version_a_candidate_must_beat_popularity() -> None:
    assert decide(scores(0.05), scores(0.04), None, 0.02).promote
    assert not decide(scores(0.04), scores(0.04), None, 0.02).promote
    unusable = decide(scores(0.01), scores(0.04), None, 0.02, live_problem="live version v1 cannot be read")
    assert not unusable.promote
    assert unusable.reason.startswith("live version v1 cannot be read")


def test_no_questions_no_promotion() -> None:
    assert not decide(scores(0.0, queries=0), scores(0.0, queries=0), None, 0.02).promote


@given(ndcg=st.floats(0, 1), live=st.floats(0, 1), tolerance=st.floats(0, 0.99))
def test_the_gate_is_exactly_the_rule(ndcg: float, live: float, tolerance: float) -> None:
    assert decide(scores(ndcg), scores(0.0), scores(live), tolerance).promote == (ndcg >= (1 - tolerance) * live)


# -- drift -----------------------------------------------------------------------------------------------------


def test_psi_is_zero_for_the_same_population_and_large_for_a_shifted_one() -> None:
    rng = np.random.default_rng(0)
    before = rng.normal(0, 1, 5000)
    edges = list(np.quantile(before, np.linspace(0, 1, 11)[1:-1]))
    same = psi(binned_shares(before, edges), binned_shares(rng.normal(0, 1, 5000), edges))
    shifted = psi(binned_shares(before, edges), binned_shares(rng.normal(1, 1, 5000), edges))
    assert same < 0.02
    assert shifted > 0.2


@given(
    a=st.lists(st.floats(0, 1), min_size=2, max_size=12),
    b=st.lists(st.floats(0, 1), min_size=2, max_size=12),
)
def test_psi_is_never_negative_and_zero_on_itself(a: list[float], b: list[float]) -> None:
    n = min(len(a), len(b))
    assert psi(a[:n], b[:n]) >= 0
    assert psi(a, a) == 0


# -- the use case ----------------------------------------------------------------------------------------------


def test_a_first_candidate_is_promoted_when_it_beats_popularity(tmp_path: Path) -> None:
    # Given an archive of three days of a shop, one of whose customers has been erased, and no model version yet
    store, sink = MemoryStore(), Sink()
    events = shopping_events(UNTIL, 3)
    erased = pseudonym("person-5")
    # When the job runs
    result = run(tmp_path, "first", events, store, sink, erased=frozenset({erased, "f" * 64}))
    # Then the candidate beat popularity on the latest day and is current, and the metrics say promoted
    assert result.promotion == "promoted"
    assert result.candidate is not None
    assert result.popularity is not None
    assert result.candidate.ndcg > result.popularity.ndcg
    assert store.current == result.candidate_version
    assert sink.put_values[-1]["RetrainRejected"] == 0.0
    manifest = store.manifest(str(result.candidate_version))
    assert manifest["evaluation"]["compared_with"] is None
    assert manifest["promotion"]["decision"] == "promoted"
    assert manifest["data"]["holdout"]["start"] == (UNTIL - timedelta(days=1)).isoformat()
    assert manifest["distributions"]["users"] > 0
    # and the erased customer's events were left out before anything was trained or asked
    assert manifest["data"]["left_out_erased"] == {"people": 1, "events": sum(e.user_id == erased for e in events)}
    assert result.events == len(events) - manifest["data"]["left_out_erased"]["events"]


def test_a_candidate_trained_on_shuffled_item_ids_is_refused(tmp_path: Path) -> None:
    # Given a live version trained from the shop's archive
    store, sink = MemoryStore(), Sink()
    events = shopping_events(UNTIL, 3)
    live = run(tmp_path, "live", events, store).candidate_version
    # When the next run's candidate is trained on the same events with their item ids shuffled
    result = run(tmp_path, "shuffled", events, store, sink, trainer=shuffled_trainer)
    # Then the gate refuses it: the live version stays current, the candidate is kept with its evaluation
    assert result.promotion == "rejected"
    assert result.candidate is not None
    assert result.live is not None
    assert result.candidate.ndcg < 0.98 * result.live.ndcg
    assert store.current == live
    assert store.switches == [live]
    manifest = store.manifest(str(result.candidate_version))
    assert manifest["promotion"]["decision"] == "rejected"
    assert "worse than the live version" in manifest["promotion"]["reason"]
    assert manifest["evaluation"]["compared_with"] == live
    assert manifest["evaluation"]["live"]["ndcg"] == result.live.ndcg
    # and the alarms' metrics say so, with the drift its scrambled categories caused (users' category mix)
    assert sink.put_values[-1]["RetrainRejected"] == 1.0
    assert result.drift is not None
    assert result.drift.compared_with == live
    assert sink.put_values[-1]["DriftPsi"] > 0.2
    assert manifest["drift"]["psi_max"] == pytest.approx(sink.put_values[-1]["DriftPsi"], abs=1e-4)


def test_a_candidate_whose_export_fails_parity_is_refused_and_nothing_is_published(tmp_path: Path) -> None:
    # Given a live version trained from the shop's archive
    store, sink = MemoryStore(), Sink()
    events = shopping_events(UNTIL, 3)
    live = run(tmp_path, "live", events, store).candidate_version

    def disagreeing(frame: pd.DataFrame) -> Trained:
        raise ParityError("scores differ by 0.5")

    # When the next run's exported graphs disagree with their references
    result = run(tmp_path, "parity", events, store, sink, trainer=disagreeing)
    # Then nothing was uploaded or switched, and the result says why, with the data it read
    assert result.promotion == "rejected"
    assert "parity failed" in result.decision.reason
    assert "scores differ by 0.5" in result.decision.reason
    assert result.candidate_version is None
    assert result.candidate is None
    assert result.popularity is None
    assert result.folder is None
    assert result.evaluation == {}
    assert result.live_version == live
    assert store.versions() == [live]
    assert store.switches == [live]
    assert result.events == len(events)
    assert result.train_events + result.holdout_events == result.events
    assert result.data["rows"] == result.train_events
    assert set(result.seconds) == {"read", "train"}
    assert sink.put_values[-1]["RetrainRejected"] == 1.0


def test_versions_list_the_evaluations_and_rollback_switches_back(tmp_path: Path) -> None:
    # Given two promoted versions
    store = MemoryStore()
    events = shopping_events(UNTIL, 3)
    first = run(tmp_path, "one", events, store).candidate_version
    second = run(tmp_path, "two", events, store).candidate_version
    assert store.current == second
    # When the versions are listed and the first is rolled back to
    rows = {row.version: row for row in list_versions(store)}
    previous = rollback(store, str(first))
    # Then the listing showed what each was compared with and which was live, and the first is current again
    assert rows[str(second)].live
    assert not rows[str(first)].live
    assert rows[str(second)].compared_with == first
    assert rows[str(second)].decision == "promoted"
    assert previous == second
    assert store.current == first


def test_rollback_to_a_damaged_or_unknown_version_changes_nothing(tmp_path: Path) -> None:
    store = MemoryStore()
    version = str(run(tmp_path, "one", shopping_events(UNTIL, 3), store).candidate_version)
    store.folders["broken"] = {**store.folders[version], "recs.onnx": b"not a graph"}
    with pytest.raises(RollbackError):
        rollback(store, "broken")
    with pytest.raises(RollbackError):
        rollback(store, "no-such-version")
    assert store.switches == [version]


def test_a_window_with_nothing_before_the_latest_day_is_an_error(tmp_path: Path) -> None:
    late = [e for e in shopping_events(UNTIL, 3) if e.ts >= UNTIL - timedelta(hours=12)]
    with pytest.raises(RetrainError):
        run(tmp_path, "late", late, MemoryStore())


# -- reading what other versions' manifests hold ---------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
manifest_like = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        ("evaluation", "promotion", "data", "metrics", "drift", "created", "distributions", "segment_model"),
        json_values,
    ),
)


@given(manifest=st.one_of(json_values, manifest_like))
def test_a_version_row_reads_any_manifest(manifest: Any) -> None:
    row = VersionRow.of("v1", manifest, live=True)
    assert row.version == "v1"
    assert row.ndcg is None or isinstance(row.ndcg, float)
    assert row.events is None or isinstance(row.events, int)
    assert row.decision is None or isinstance(row.decision, str)


stored_bins = st.builds(
    lambda edges, shares: {"features": {FEATURE_NAMES[0]: {"edges": edges, "shares": shares}}}, json_values, json_values
)


@given(kept=st.one_of(json_values, manifest_like, stored_bins))
def test_drift_against_any_stored_distributions_never_fails_a_run(kept: Any) -> None:
    features = np.random.default_rng(0).random((30, len(FEATURE_NAMES)))
    found = drift(features, "v1", kept, b"not a graph")
    if found is not None:
        assert all(np.isfinite(value) and value >= 0 for value in found.features.values())
        assert found.segments is None


def test_drift_is_measured_on_the_live_edges() -> None:
    rng = np.random.default_rng(0)
    live = rng.normal(0, 1, (2000, len(FEATURE_NAMES)))
    stored = distributions(live, np.zeros(2000, dtype=np.int64))
    same = drift(rng.normal(0, 1, (2000, len(FEATURE_NAMES))), "v1", stored, None)
    moved = drift(rng.normal(0.5, 1, (2000, len(FEATURE_NAMES))), "v1", stored, None)
    assert same is not None
    assert moved is not None
    assert same.max is not None
    assert moved.max is not None
    assert same.max < 0.05 < 0.1 < moved.max
