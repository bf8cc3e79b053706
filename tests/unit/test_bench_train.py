"""bench.train grows the bundled shop into a larger one over the same window, as its output says."""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.train import grow


def shop(users: int, items: int) -> pd.DataFrame:
    rows = [(f"u{i % users}", f"i{i % items}", f"s{i % users}") for i in range(max(users, items) * 2)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "session_id"])
    return frame.assign(timestamp=pd.date_range("2019-10-01", periods=len(frame), freq="min", tz="UTC"))


@settings(max_examples=25, deadline=None)
@given(copies=st.integers(1, 30), users=st.integers(1, 6), items=st.integers(1, 6))
def test_each_copy_has_its_own_users_and_items_are_shared_within_sqrt_groups(
    copies: int, users: int, items: int
) -> None:
    base = shop(users, items)
    grown = grow(base, copies)

    assert len(grown) == copies * len(base)
    assert grown["user_id"].nunique() == copies * users
    assert grown["session_id"].nunique() == copies * users
    assert grown["item_id"].nunique() == min(copies, math.ceil(math.sqrt(copies))) * items
    # A larger shop, not a longer one: the same window.
    assert grown["timestamp"].min() == base["timestamp"].min()
    assert grown["timestamp"].max() == base["timestamp"].max()
    # The first copy is the bundled shop itself.
    assert grown.head(len(base)).equals(base)
