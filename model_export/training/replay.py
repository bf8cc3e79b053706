"""Training features by replaying canonical events through the SAME fold and feature code ingest and serve use.

Nothing here computes a feature: it turns rows into the one event schema (`canonical.indexed_events`), folds them
per user with `personalization.profile.fold`, and reads vectors with `personalization.features.feature_vector`.
So a model trained on these vectors sees exactly what serve will compute from a stored profile.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from tqdm import tqdm

from model_export.data.canonical import indexed_events
from personalization.features import FEATURE_NAMES, CatalogFacts, feature_vector
from personalization.profile import PositionedEvent, Profile, fold

SHARD = "replay"


def _as_timestamp(cutoff: pd.Timestamp | int | None) -> pd.Timestamp | None:
    if cutoff is None or isinstance(cutoff, pd.Timestamp):
        return cutoff
    return pd.Timestamp(cutoff, unit="ms", tz="UTC")


def replay(
    frame: pd.DataFrame,
    cutoff: pd.Timestamp | int | None = None,
    progress: bool = False,
    start: Mapping[str, Profile] | None = None,
) -> dict[str, Profile]:
    """Every user's profile as of `cutoff` (events strictly before it; all events when None).

    Positions are (shard "replay", seq = row index): `read_events` sorts rows by time, so sequence order is
    time order, and the fold's exactly-once bookkeeping behaves as it does on the stream. Events are grouped
    by user first and each user is folded in one call, so the cost is linear in the number of events.
    `start` continues from profiles replayed earlier (the fold skips the rows they already hold, by their
    watermark), so a later cutoff costs only the events in between; those profiles are not modified.
    """
    at = _as_timestamp(cutoff)
    rows = frame if at is None else frame[frame["timestamp"] < at]
    profiles = dict(start or {})
    if start:
        # Rows at or below every given profile's watermark are already folded in; skip building their events.
        seen = max((p.watermarks.get(SHARD, -1) for p in start.values()), default=-1)
        rows = rows[rows.index > seen]
    by_user: dict[str, list[PositionedEvent]] = defaultdict(list)
    # Rows the event schema refuses are skipped here as ingest would quarantine them (canonical.screen counts
    # them before training; a frame that was not screened still replays).
    events = indexed_events(rows)
    for seq, event in tqdm(events, total=len(rows), desc="replay: events", unit="ev", disable=not progress):
        by_user[event.user_id].append(PositionedEvent(event, SHARD, int(seq)))
    for user_id, positioned in tqdm(by_user.items(), desc="replay: fold", unit="user", disable=not progress):
        profiles[user_id], _ = fold(profiles.get(user_id), user_id, positioned)
    return profiles


def feature_matrix(
    profiles: Mapping[str, Profile] | Iterable[tuple[str, Profile]], now_ms: int, catalog: CatalogFacts
) -> tuple[list[str], np.ndarray]:
    """(user ids, matrix [n_users x len(FEATURE_NAMES)] float64), rows in the order of `profiles`.

    `catalog` is the catalog the model version ships (serve reads the same prices and category axes)."""
    pairs = list(profiles.items()) if isinstance(profiles, Mapping) else list(profiles)
    user_ids = [user_id for user_id, _ in pairs]
    matrix = np.zeros((len(pairs), len(FEATURE_NAMES)), dtype=np.float64)
    for row, (_, profile) in enumerate(pairs):
        matrix[row] = feature_vector(profile, now_ms, catalog)
    return user_ids, matrix


def to_ms(at: pd.Timestamp) -> int:
    return int(at.value // 1_000_000)
