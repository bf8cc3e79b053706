"""The user-by-user replay is the whole-frame replay, cut differently: same profiles, same features, same order.

`user_replay.replay_users` (what training runs, and what Spark runs per partition) must give exactly what
`replay.replay` and `replay.feature_matrix` give, whatever the partition size, with rows the event schema refuses
left out and counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from model_export.data.canonical import normalize
from model_export.data.catalog import build_catalog
from model_export.training.protocols import time_cutoff
from model_export.training.replay import feature_matrix, replay, to_ms
from model_export.training.user_replay import ReplaySpec, cutoff_seq, replay_users
from personalization.features import CatalogFeatures
from tests.helpers.data import rees46_sample

BASE = normalize(rees46_sample()).head(600)


@settings(max_examples=15, deadline=None)
@given(
    partition=st.integers(1, 700),
    fraction=st.floats(0.05, 0.95),
    bad=st.lists(st.integers(0, len(BASE) - 1), max_size=5),
)
def test_user_by_user_equals_the_whole_frame_replay(partition: int, fraction: float, bad: list[int]) -> None:
    frame = BASE.copy()
    # A few rows the event schema refuses (a quantity over its cap), wherever they fall.
    frame.loc[bad, "quantity"] = 10**9
    catalog = build_catalog(frame)
    cutoff = time_cutoff(frame, fraction)
    now_ms = to_ms(frame["timestamp"].max()) + 1
    facts = CatalogFeatures(catalog.relative_prices, catalog.category_axes)
    spec = ReplaySpec(cutoff_seq(frame, cutoff), now_ms, facts, keep_early=None, keep_final=None)

    found = replay_users(frame, spec, rows_per_partition=partition)

    early = replay(frame, cutoff)
    final = replay(frame, start=early)
    users, features = feature_matrix(final, now_ms, catalog)
    assert found.users == users
    np.testing.assert_array_equal(found.features, features)
    assert found.early == early
    assert found.final == final
    assert sum(found.refused.values()) == len(set(bad))
    assert found.kept.tolist() == sorted(set(frame.index) - set(bad))


def test_only_the_asked_profiles_are_kept() -> None:
    catalog = build_catalog(BASE)
    users = list(pd.unique(BASE["user_id"]))
    spec = ReplaySpec(
        cutoff_seq(BASE, time_cutoff(BASE, 0.3)),
        to_ms(BASE["timestamp"].max()) + 1,
        CatalogFeatures(catalog.relative_prices, catalog.category_axes),
        keep_early=frozenset(users[:3]),
        keep_final=frozenset(users[-2:]),
    )
    found = replay_users(BASE, spec, rows_per_partition=50)
    assert set(found.early) <= set(users[:3])
    assert set(found.final) == set(users[-2:])
    assert len(found.users) == len(users)
