"""Trending now: decayed per-item activity merged per batch into bounded rows, summed at read."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.trending import batch_activity
from personalization.events import Consent, Event, EventType
from personalization.profile import PositionedEvent
from personalization.trending import TREND_LIMIT, TREND_WEIGHTS, Trend, activity, combined, merge
from store.trending import decode, encode

T0 = datetime(2026, 12, 6, 12, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
HOUR_MS = 3600 * 1000
CONSENT = Consent(analytics=True, personalization=True)


def event(kind: EventType, item: str, minutes: float) -> tuple[Event, int]:
    e = Event(event_id="e", user_id="u", type=kind, ts=T0 + timedelta(minutes=minutes), item_id=item, consent=CONSENT)
    return e, int(e.ts.timestamp() * 1000)


kinds = st.sampled_from([EventType.VIEW_PRODUCT, EventType.ADD_TO_CART, EventType.PURCHASE, EventType.SEARCH])
batches = st.lists(
    st.lists(st.tuples(kinds, st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 180)), max_size=20),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(batches=batches, shards=st.integers(1, 3))
def test_rows_merged_batch_by_batch_read_as_every_event_decayed_to_the_reading_time(
    batches: list[list[tuple[EventType, str, int]]], shards: int
) -> None:
    # Given batches spread over shards, each merged into its shard's row at the time of its newest event
    rows: dict[int, Trend] = {}
    for n, batch in enumerate(batches):
        pairs = [event(kind, item, minutes) for kind, item, minutes in batch]
        anchor = T0_MS + max((m for _, _, m in batch), default=0) * 60_000
        row = rows.get(n % shards)
        rows[n % shards] = merge(row, activity(pairs, anchor, HOUR_MS), anchor, HOUR_MS)
    # When read later
    now = T0_MS + 4 * HOUR_MS
    read = dict(combined(rows.values(), now, HOUR_MS))
    # Then each item's score is the sum of its events' weights decayed to the reading time
    expected: dict[str, float] = {}
    for batch in batches:
        for kind, item, minutes in batch:
            if kind in TREND_WEIGHTS:
                decayed = TREND_WEIGHTS[kind] * 0.5 ** ((now - T0_MS - minutes * 60_000) / HOUR_MS)
                expected[item] = expected.get(item, 0.0) + decayed
    assert read == pytest.approx(expected, rel=1e-9)


def test_a_purchase_outweighs_a_cart_outweighs_a_view_and_recent_outweighs_old() -> None:
    pairs = [event(EventType.VIEW_PRODUCT, "v", 60), event(EventType.ADD_TO_CART, "c", 60)]
    pairs += [event(EventType.PURCHASE, "p", 60), event(EventType.PURCHASE, "old", 0)]
    row = merge(None, activity(pairs, T0_MS, HOUR_MS), T0_MS, HOUR_MS)
    assert [item for item, _ in combined([row], T0_MS + 2 * HOUR_MS, HOUR_MS)] == ["p", "c", "old", "v"]


def test_a_row_holds_at_most_the_limit_whatever_a_batch_touches() -> None:
    pairs = [event(EventType.VIEW_PRODUCT, f"i{n}", n % 60) for n in range(5 * TREND_LIMIT)]
    pairs += [event(EventType.PURCHASE, "hot", 59)] * 1000
    row = merge(None, activity(pairs, T0_MS, HOUR_MS), T0_MS, HOUR_MS)
    assert len(row.scores) == TREND_LIMIT
    assert next(iter(combined([row], T0_MS, HOUR_MS)))[0] == "hot"


def test_an_old_batch_never_moves_a_row_back() -> None:
    row = merge(None, {"a": 1.0}, T0_MS + HOUR_MS, HOUR_MS)
    older = merge(row, {"b": 1.0}, T0_MS, HOUR_MS)
    assert older.at_ms == T0_MS + HOUR_MS
    assert older.scores == pytest.approx({"a": 1.0, "b": 0.5})


@settings(deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), st.floats(1e-3, 1e6), max_size=TREND_LIMIT))
def test_the_stored_row_keeps_the_ranking(scores: dict[str, float]) -> None:
    row = Trend(T0_MS, scores)
    back = decode(encode(row))
    assert back.at_ms == T0_MS
    assert back.scores == pytest.approx(scores, rel=1e-5)


@given(
    batch=st.lists(st.tuples(kinds, st.sampled_from(["a", "b", "c"]), st.integers(0, 180), st.booleans()), max_size=30)
)
def test_ingest_sums_a_batch_per_shard_as_the_domain_does(batch: list[tuple[EventType, str, int, bool]]) -> None:
    anchor = T0_MS + 3 * HOUR_MS
    positioned = [
        PositionedEvent(event(kind, item, minutes)[0], "s1" if first else "s2", n)
        for n, (kind, item, minutes, first) in enumerate(batch)
    ]
    summed = batch_activity(positioned, anchor, HOUR_MS)
    for shard in ("s1", "s2"):
        pairs = [(p.event, p.ts_ms) for p in positioned if p.shard == shard]
        expected = activity(pairs, anchor, HOUR_MS)
        assert summed.get(shard, {}) == pytest.approx(expected, rel=1e-9)
