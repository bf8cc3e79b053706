"""Train everything a model version holds, from canonical events: segments, recommender, graphs, parity."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from model_export.data.canonical import REFUSED_ATTR
from model_export.data.catalog import build_catalog
from model_export.recommenders import BY_NAME, Hybrid, RecsParams
from model_export.training.interactions import Counts, ItemIndex, count_interactions
from model_export.training.onnx_graphs import OPSET, recs_graph, segment_graph
from model_export.training.parity import PARITY_USERS, ParityError, ParityReport, check
from model_export.training.protocols import time_cutoff
from model_export.training.recs import RecsData, RecsModel
from model_export.training.replay import to_ms
from model_export.training.segment_names import category_mixes
from model_export.training.segments import MIN_SHARE, SegmentModel, fit_segments, segment_items
from model_export.training.stages import Stages
from model_export.training.tuning import CRITERION, Selection, Validation, search_users, select, validation
from model_export.training.user_replay import Replay, Replayed, ReplaySpec, cutoff_seq, first_users, replay_users
from personalization.catalog import Catalog, CatalogError
from personalization.catalog_file import MAGIC as CATALOG_MAGIC
from personalization.features import FEATURE_NAMES, SEGMENT_DISTANCES, SEGMENT_INPUT, SEGMENT_LABEL, CatalogFeatures
from personalization.manifest import CATALOG_BINARY_FILE, CATALOG_FILE
from personalization.profile import Profile
from personalization.recommend import (
    EXCLUDE_PENALTY,
    INPUT_EXCLUDE,
    INPUT_ITEMS,
    INPUT_K,
    INPUT_WEIGHTS,
    OUTPUT_INDICES,
    OUTPUT_SCORES,
)

VALIDATION_FRACTION = 0.2


def _compact(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


@dataclass
class Trained:
    catalog: Catalog
    index: ItemIndex
    profiles: dict[str, Profile]
    features: npt.NDArray[np.float64]
    segments: SegmentModel
    segment_onnx: bytes
    data: RecsData
    valid: Validation | None
    selection: Selection | None
    recs: RecsModel
    recs_onnx: bytes
    parity: ParityReport
    train_s: float
    validation_fraction: float = VALIDATION_FRACTION
    segment_items: dict[str, list[str]] | None = None
    # Rows the one event schema refused, by the reason ingest would quarantine them with.
    refused: dict[str, int] | None = None
    # Every user's id in the order of `features`' rows (`profiles` may hold only the parity users').
    users: list[str] = field(default_factory=list)
    # Seconds per stage (replay, segments, search, fit, export).
    stages: dict[str, float] = field(default_factory=dict)
    # The rows trained on: the canonical frame less the rows the event schema refused (what the manifest hashes).
    frame: pd.DataFrame | None = None

    def files(self) -> dict[str, bytes]:
        files = {
            "segment.onnx": self.segment_onnx,
            "recs.onnx": self.recs_onnx,
            self.catalog_file: self._catalog_bytes,
            "segment_items.json": _compact(self.segment_items or {}),
        }
        if self.index_file is not None:
            files[self.index_file] = _compact({"items": self.index.ids})
        return files

    @cached_property
    def _catalog_bytes(self) -> bytes:
        """catalog.bin, which serve loads without an object per item; catalog.json for a shop whose ids the
        binary file cannot hold (a line break in one)."""
        try:
            return self.catalog.to_bytes()
        except CatalogError:
            return _compact(self.catalog.to_dict())

    @property
    def catalog_file(self) -> str:
        return CATALOG_BINARY_FILE if self._catalog_bytes.startswith(CATALOG_MAGIC) else CATALOG_FILE

    @property
    def index_file(self) -> str | None:
        """None when the recs graph indexes the catalog's order (always, as trained here): serve reads the ids
        from the catalog. Otherwise items.json lists them in the graph's order."""
        return None if self.index.ids == self.catalog.ids else "items.json"

    def manifest_extra(self) -> dict[str, Any]:
        return {
            "catalog_file": self.catalog_file,
            "feature_names": list(FEATURE_NAMES),
            "segments": [segment.to_dict() for segment in self.segments.segments],
            "segment_model": {
                "file": "segment.onnx",
                "input": {"name": SEGMENT_INPUT, "type": "float64", "shape": ["n", len(FEATURE_NAMES)]},
                "outputs": {SEGMENT_LABEL: "int64 [n]", SEGMENT_DISTANCES: "float64 [n, k]"},
                "items_file": "segment_items.json",
                # Serve keeps a known visitor's segment until another centre is nearer by this much.
                "hysteresis_margin": self.segments.hysteresis_margin,
            },
            "recs_model": {
                "file": "recs.onnx",
                **({"index_file": self.index_file} if self.index_file else {}),
                "n_items": self.recs.n_items,
                "opset": OPSET,
                "inputs": {
                    INPUT_ITEMS: "int64 [n]: catalog indices of recent items, distinct",
                    INPUT_WEIGHTS: "float32 [n]: their weights, summing to 1",
                    INPUT_EXCLUDE: "int64 [m]: catalog indices never to return",
                    INPUT_K: "int64 [1]: list length, at most n_items",
                },
                "outputs": {OUTPUT_INDICES: "int64 [k]", OUTPUT_SCORES: "float32 [k]"},
                "excluded_score": EXCLUDE_PENALTY,
                "family": self.recs.family,
                "recent_weighting": self.recs.weighting().to_dict(),
            },
        }

    def parameters(self) -> dict[str, Any]:
        return {
            "recs": self.recs.described(),
            "segments": self.segments.summary(),
            "validation_fraction": self.validation_fraction,
            "selection": (
                self.selection.to_dict()
                if self.selection is not None
                else {"criterion": CRITERION, "winner": self.recs.family, "reason": "no validation split: defaults"}
            ),
        }

    def metrics(self) -> dict[str, Any]:
        return {
            "users": len(self.users or self.profiles),
            "items": len(self.index),
            "segments": {
                key: value for key, value in self.segments.summary().items() if key not in {"candidates", "rule"}
            },
            "validation": self.selection.metrics if self.selection else None,
            "parity": self.parity.to_dict(),
            "refused_rows": dict(self.refused or {}),
            "train_s": round(self.train_s, 3),
            "stages_s": {stage: round(seconds, 3) for stage, seconds in self.stages.items()},
        }


def _replay(
    frame: pd.DataFrame, validation_fraction: float, keep_profiles: bool, progress: bool, replay: Replay
) -> tuple[pd.DataFrame, Catalog, frozenset[str] | None, Replayed]:
    """(the rows the event schema accepts, their catalog, the search sample, the replay), screening as it replays.

    Replayed once, user by user: up to the validation cutoff (kept for the search sample's questions), then on to
    the end for the segments, as of just after the last event (when a model trained now would start serving). If
    the schema refused rows (rare: normalize drops most), the rest is replayed again with a catalog without them,
    so that features read the prices serve will."""
    catalog, sample, replayed = _replay_once(frame, validation_fraction, keep_profiles, progress, replay)
    if len(replayed.kept) == len(frame):
        return frame, catalog, sample, replayed
    refused = replayed.refused
    frame = frame.loc[replayed.kept]
    if not frame.empty:
        catalog, sample, replayed = _replay_once(frame, validation_fraction, keep_profiles, progress, replay)
    replayed.refused = refused
    return frame, catalog, sample, replayed


def _replay_once(
    frame: pd.DataFrame, validation_fraction: float, keep_profiles: bool, progress: bool, replay: Replay
) -> tuple[Catalog, frozenset[str] | None, Replayed]:
    catalog = build_catalog(frame)
    sample = search_users(frame)
    spec = ReplaySpec(
        cutoff_seq=cutoff_seq(frame, time_cutoff(frame, validation_fraction)),
        now_ms=to_ms(frame["timestamp"].max()) + 1,
        catalog=CatalogFeatures(catalog.relative_prices, catalog.category_axes),
        keep_early=sample,
        keep_final=None if keep_profiles else first_users(frame, PARITY_USERS),
    )
    return catalog, sample, replay(frame, spec, progress)


def train_models(
    frame: pd.DataFrame,
    validation_fraction: float = VALIDATION_FRACTION,
    progress: bool = False,
    min_segment_share: float = MIN_SHARE,
    keep_profiles: bool = False,
    replay: Replay = replay_users,
    counts: Counts = count_interactions,
) -> Trained:
    """`frame` is canonical (canonical.normalize). Rows the one event schema refuses are left out and counted
    (`Trained.refused`). Raises ParityError rather than return graphs that disagree with their references.

    Lean at any size: the replay runs user by user and keeps one feature row per user (every final profile
    only with `keep_profiles`, which the evaluation's user split needs; otherwise the parity users'), and the
    search runs on a bounded sample of users (`tuning.search_users`). `Trained.stages` holds each stage's seconds.
    `replay`, `counts`: in this process, or on Spark (spark_engine.SparkEngine): the same partition functions
    either way."""
    stages = Stages()
    refused: dict[str, int] = dict(frame.attrs.get(REFUSED_ATTR, {}))
    if frame.empty:
        raise ValueError("no events to train on")
    with stages("replay"):
        frame, catalog, sample, replayed = _replay(frame, validation_fraction, keep_profiles, progress, replay)
    if replayed.refused:
        refused = dict(sorted((Counter(refused) + replayed.refused).items()))
    if frame.empty:
        raise ValueError("no events to train on")
    index = ItemIndex.from_catalog(catalog)
    features = replayed.features
    with stages("counts"):
        # Counted once over every event, for whichever family the search picks (RecsData caches what it derives).
        data = RecsData(frame, index, counts(frame, index))
    with stages("segments"):
        # fit_segments runs its many small fits single-threaded (threads lose more than they win there).
        mixes = category_mixes(frame, replayed.users)
        segments = fit_segments(features, min_segment_share, progress=progress, mixes=mixes)
        segment_onnx = segment_graph(segments.pipeline, len(FEATURE_NAMES))
    with stages("search"):
        valid = validation(frame, validation_fraction, profiles=replayed.early, users=sample)
        # Chosen on the validation split only; then refitted on the whole training frame.
        selection = select(valid, progress=progress) if valid is not None else None
    family = BY_NAME[selection.family] if selection is not None else Hybrid
    params = selection.params if selection is not None else RecsParams().to_dict()
    with stages("fit"):
        recs = family(**params).fit(data).fitted()
    with stages("export"):
        recs_onnx = recs_graph(recs)
        # The parity users are the first PARITY_USERS in feature order, as check() reads them.
        profiles = [replayed.final[user] for user in replayed.users[:PARITY_USERS]]
        parity = check(segment_onnx, segments, features, recs_onnx, recs, profiles, index.position)
        if not parity.ok:
            raise ParityError(f"exported graphs disagree with their references: {parity.to_dict()}")
        users = replayed.users
        members = dict(zip(users, (int(label) for label in segments.labels(features)), strict=True))
        items = segment_items(frame, members)
    return Trained(
        catalog,
        index,
        replayed.final,
        features,
        segments,
        segment_onnx,
        data,
        valid,
        selection,
        recs,
        recs_onnx,
        parity,
        stages.total(),
        validation_fraction,
        items,
        refused,
        users,
        stages.seconds,
        frame,
    )
