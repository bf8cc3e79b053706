"""Replay user by user: features for everyone without first holding every event or every profile in memory.

The same fold and feature code as `replay.replay` (personalization.profile.fold, features.feature_vector), run
over partitions of whole users: a partition's rows become events, each user's events are folded up to the
validation cutoff and then on to the end, and only the feature vector is kept, with the profiles the caller
asked for (the search sample's as of the cutoff; the parity users' at the end). Memory is one partition of events
plus one row of features per user, whatever the size of the shop.

`replay_partition` is the unit of work and takes plain values only, so the Spark engine runs the very same
function on each of its partitions (model_export.training.spark_engine).
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from tqdm import tqdm

from model_export.data.canonical import indexed_events
from personalization.features import FEATURE_NAMES, CatalogFeatures, feature_vector
from personalization.profile import PositionedEvent, Profile, fold

# The shard name replay positions carry (as replay.replay's): seq is the row's place in the time-sorted frame.
SHARD = "replay"
# Rows per partition: big enough that pandas' per-call cost vanishes, small enough that one partition's events
# (a few KB each as objects) stay a few hundred MB at most.
PARTITION_ROWS = 50_000


@dataclass(frozen=True)
class ReplaySpec:
    """What every partition needs to know, as plain values (picklable, for Spark's executors too).

    `cutoff_seq`: rows with seq below it are before the validation cutoff (rows are in time order, so the cutoff
    in time is a cutoff in seq). `keep_early` / `keep_final`: whose profiles to return as of the cutoff / at the
    end; None means everyone's."""

    cutoff_seq: int
    now_ms: int
    catalog: CatalogFeatures
    keep_early: frozenset[str] | None = frozenset()
    keep_final: frozenset[str] | None = frozenset()


@dataclass
class Replayed:
    """Feature rows in first-appearance order of the users, and the profiles the spec asked to keep."""

    users: list[str]
    features: npt.NDArray[np.float64]
    early: dict[str, Profile] = field(default_factory=dict)
    final: dict[str, Profile] = field(default_factory=dict)
    # The seqs of the rows the event schema accepted, and the others counted by the reason ingest would give.
    kept: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    refused: Counter[str] = field(default_factory=Counter)
    # Each user's first accepted seq: users are ordered by it (a refused first row does not count).
    first: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @staticmethod
    def concat(parts: list[Replayed]) -> Replayed:
        width = len(FEATURE_NAMES)
        features = np.concatenate([p.features for p in parts]) if parts else np.zeros((0, width))
        first = np.concatenate([p.first for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        order = np.argsort(first, kind="stable")
        users = [user for p in parts for user in p.users]
        found = Replayed([users[i] for i in order], features[order], first=first[order])
        for part in parts:
            found.early.update(part.early)
            found.final.update(part.final)
            found.refused.update(part.refused)
        found.kept = np.sort(np.concatenate([p.kept for p in parts])) if parts else found.kept
        return found


def _keeps(keep: frozenset[str] | None, user_id: str) -> bool:
    return keep is None or user_id in keep


def replay_partition(rows: pd.DataFrame, spec: ReplaySpec) -> Replayed:
    """Fold the rows of whole users (indexed by seq, sorted by user then seq) and read their feature vectors.

    Rows the event schema refuses are skipped, as ingest would quarantine them, and counted (`Replayed.refused`):
    the replay screens as it goes, so the trainer builds every event once (`canonical.screen` built them all
    once more)."""
    users: list[str] = []
    vectors: list[list[float]] = []
    found = Replayed(users, np.zeros((0, len(FEATURE_NAMES))))
    kept: list[int] = []
    firsts: list[int] = []
    events = indexed_events(rows, refused=found.refused)
    for user_id, pairs in itertools.groupby(events, key=lambda pair: pair[1].user_id):
        positioned = [PositionedEvent(event, SHARD, seq) for seq, event in pairs]
        kept.extend(p.seq for p in positioned)
        firsts.append(positioned[0].seq)
        split = bisect.bisect_left([p.seq for p in positioned], spec.cutoff_seq)
        early = fold(None, user_id, positioned[:split])[0] if split else None
        keep_early = early is not None and _keeps(spec.keep_early, user_id)
        if early is not None and keep_early:
            found.early[user_id] = early
        # In place when nobody keeps the early profile: saves the copy the fold otherwise makes.
        final = fold(early, user_id, positioned[split:], in_place=not keep_early)[0] if positioned[split:] else early
        assert final is not None  # a user in a partition has at least one event
        if _keeps(spec.keep_final, user_id):
            found.final[user_id] = final
        users.append(user_id)
        vectors.append(feature_vector(final, spec.now_ms, spec.catalog))
    found.features = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), len(FEATURE_NAMES))
    found.kept = np.asarray(kept, dtype=np.int64)
    found.first = np.asarray(firsts, dtype=np.int64)
    return found


def user_order(frame: pd.DataFrame) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(row positions sorted by user then time, each user's first position in that order). Users come in the
    order of their first event, the order `replay.replay` returns them in."""
    codes, _ = pd.factorize(frame["user_id"], sort=False)
    order = np.lexsort((np.arange(len(frame)), codes))
    ordered = codes[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(ordered) else np.zeros(0, np.int64)
    return order.astype(np.int64), starts.astype(np.int64)


def partitions(frame: pd.DataFrame, rows: int = PARTITION_ROWS) -> Iterator[pd.DataFrame]:
    """Slices of whole users of about `rows` rows each, sorted by user then seq (the frame's index)."""
    order, starts = user_order(frame)
    bounds = [0]
    while bounds[-1] < len(order):
        # The first user start at or after `rows` past the previous bound; the frame's end otherwise.
        at = int(np.searchsorted(starts, bounds[-1] + rows))
        bounds.append(int(starts[at]) if at < len(starts) else len(order))
    for start, end in itertools.pairwise(bounds):
        yield frame.iloc[order[start:end]]


def replay_users(
    frame: pd.DataFrame, spec: ReplaySpec, progress: bool = False, rows_per_partition: int = PARTITION_ROWS
) -> Replayed:
    """Every user's feature vector as of `spec.now_ms`, with the profiles `spec` keeps; partition by partition."""
    if not frame.index.is_monotonic_increasing:
        raise ValueError("replay_users needs the frame in time order, indexed by seq (canonical.normalize does it)")
    parts = []
    with tqdm(total=len(frame), desc="replay: users' events", unit="ev", disable=not progress) as bar:
        for rows in partitions(frame, rows_per_partition):
            parts.append(replay_partition(rows, spec))
            bar.update(len(rows))
    return Replayed.concat(parts)


class Replay(Protocol):
    """How train_models replays: `replay_users` in this process, or spark_engine.SparkEngine on Spark."""

    def __call__(self, frame: pd.DataFrame, spec: ReplaySpec, progress: bool = False) -> Replayed: ...


def cutoff_seq(frame: pd.DataFrame, cutoff: pd.Timestamp) -> int:
    """The first seq (index label) at or after `cutoff` in a time-sorted frame; past the end when none is."""
    at = int((frame["timestamp"] < cutoff).sum())  # sorted by time: the rows before it come first
    return int(frame.index[at]) if at < len(frame) else int(frame.index[-1]) + 1 if len(frame) else 0


def first_users(frame: pd.DataFrame, count: int) -> frozenset[str]:
    """The first `count` users by their first event: the first rows of the feature matrix."""
    return frozenset(frame["user_id"].drop_duplicates().head(count).astype(str))
