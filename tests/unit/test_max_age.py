"""store.max_age: a value is read again only once it is max_age_s old by the clock given; a clock set back, or a
read that fails, keeps nothing stale."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.max_age import MaxAge


class Reads:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        self.count += 1
        return self.count


@given(ages=st.lists(st.floats(-1_000, 1_000, allow_nan=False), max_size=20), max_age=st.floats(0, 100))
def test_a_value_is_read_again_exactly_when_it_is_not_younger_than_the_max_age(
    ages: list[float], max_age: float
) -> None:
    cache: MaxAge[str, int] = MaxAge(max_age)
    read, kept_at, now = Reads(), None, 0.0
    for step in ages:
        now += step
        before = read.count
        value = cache.get("k", now, read)
        fresh = kept_at is not None and 0 <= now - kept_at < max_age
        assert read.count == (before if fresh else before + 1)
        assert value == read.count
        if not fresh:
            kept_at = now


def test_keys_are_kept_apart_and_a_failed_read_keeps_nothing() -> None:
    cache: MaxAge[str, int] = MaxAge(60)
    assert cache.get("a", 0, lambda: 1) == 1
    assert cache.get("b", 0, lambda: 2) == 2
    assert cache.get("a", 59, lambda: 3) == 1

    def failing() -> int:
        raise LookupError("empty")

    with pytest.raises(LookupError):
        cache.get("c", 0, failing)
    assert cache.get("c", 1, lambda: 4) == 4
    cache.clear()
    assert cache.get("a", 1, lambda: 5) == 5
