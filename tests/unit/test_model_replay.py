"""Training features come from the same fold and feature code as ingest and serve (no train/serve skew)."""

import copy
from collections import defaultdict

import numpy as np
import pandas as pd

from model_export.data.canonical import normalize, to_events
from model_export.data.catalog import build_catalog
from model_export.training.protocols import time_cutoff
from model_export.training.replay import SHARD, feature_matrix, replay, to_ms
from personalization.features import FEATURE_NAMES, feature_vector
from personalization.profile import PositionedEvent, Profile, fold
from tests.helpers.data import rees46_sample


def sample() -> pd.DataFrame:
    return normalize(rees46_sample())


def test_replay_equals_the_stream_fold_applied_batch_by_batch() -> None:
    # Given the sample, and the same events cut into small batches the way ingest receives them
    frame = sample()
    cutoff = time_cutoff(frame, 0.3)
    batches: dict[str, list[list[PositionedEvent]]] = defaultdict(lambda: [[]])
    for seq, event in zip(frame.index, to_events(frame), strict=True):
        if event.ts >= cutoff:
            continue
        user_batches = batches[event.user_id]
        if len(user_batches[-1]) == 3:
            user_batches.append([])
        user_batches[-1].append(PositionedEvent(event, SHARD, int(seq)))
    streamed: dict[str, Profile] = {}
    for user_id, user_batches in batches.items():
        profile = None
        for batch in user_batches:
            profile, _ = fold(profile, user_id, batch)
        assert profile is not None
        streamed[user_id] = profile
    # When the trainer replays the file up to the cutoff
    replayed = replay(frame, cutoff)
    # Then every profile is identical, field for field
    assert replayed == streamed


def test_replay_continues_from_earlier_profiles_without_changing_them() -> None:
    frame = sample()
    early = replay(frame, time_cutoff(frame, 0.5))
    snapshot = copy.deepcopy(early)
    assert replay(frame, start=early) == replay(frame)
    assert early == snapshot


def test_feature_matrix_is_feature_vector_row_by_row() -> None:
    frame = sample()
    profiles = replay(frame)
    now = to_ms(frame["timestamp"].max()) + 1
    catalog = build_catalog(frame)
    user_ids, matrix = feature_matrix(profiles, now, catalog)
    assert matrix.shape == (len(profiles), len(FEATURE_NAMES))
    for row in (0, len(user_ids) // 2, len(user_ids) - 1):
        assert np.array_equal(matrix[row], feature_vector(profiles[user_ids[row]], now, catalog))


def test_events_at_or_after_the_cutoff_are_not_replayed() -> None:
    frame = sample()
    cutoff = frame["timestamp"].iloc[1000]
    profiles = replay(frame, cutoff)
    assert sum(sum(p.counts.values()) for p in profiles.values()) == int((frame["timestamp"] < cutoff).sum())
