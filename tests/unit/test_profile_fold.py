import itertools
import json
import random
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.events import Consent, Event, EventType
from personalization.profile import (
    AFFINITY_WEIGHTS,
    EVENT_ID_LIMIT,
    HISTORY_LIMIT,
    FoldSettings,
    PositionedEvent,
    Profile,
    affinities_at,
    decay_factor,
    event_id_digest,
    fold,
    to_ms,
)
from store import codec

T0 = datetime(2026, 11, 1, tzinfo=UTC)
USER = "a" * 64
CONSENT = Consent(analytics=True, personalization=True)


def event(
    n: int, kind: EventType = EventType.VIEW_PRODUCT, item: str = "i1", minutes: float = 0, **kw: object
) -> Event:
    return Event(
        event_id=f"e{n}",
        user_id=USER,
        type=kind,
        ts=T0 + timedelta(minutes=minutes),
        item_id=item,
        category=kw.pop("category", "shoes"),  # type: ignore[arg-type]
        consent=kw.pop("consent", CONSENT),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def at(e: Event, seq: int, shard: str = "shardId-000") -> PositionedEvent:
    return PositionedEvent(e, shard, seq)


def stored(profile: Profile) -> bytes:
    return codec.encode(profile)


def through_store(profile: Profile) -> Profile:
    # What the next batch sees: the profile as written and read back.
    return codec.decode(profile.user_id, codec.encode(profile))


events_strategy = st.lists(
    st.tuples(
        st.sampled_from([kind for kind in EventType if kind is not EventType.IMPRESSION]),
        st.sampled_from(["i1", "i2", "i3", "i4"]),
        st.sampled_from(["shoes", "hats", None]),
        st.floats(min_value=0, max_value=60 * 24 * 30),
        st.integers(min_value=1, max_value=3),
    ),
    min_size=1,
    max_size=40,
)


def build(spec: list[tuple[EventType, str, str | None, float, int]]) -> list[PositionedEvent]:
    return [
        at(event(n, kind, item, minutes, category=category, quantity=qty), seq=100 + n)
        for n, (kind, item, category, minutes, qty) in enumerate(spec)
    ]


@settings(max_examples=150, deadline=None)
@given(spec=events_strategy, data=st.data())
def test_any_redelivery_pattern_equals_one_clean_run(
    spec: list[tuple[EventType, str, str | None, float, int]], data: st.DataObject
) -> None:
    batch = build(spec)
    clean, applied = fold(None, USER, batch)
    assert applied == len(batch)

    # Given a delivery history: prefixes (Lambda restarting a shard), whole replays, and producer retries
    # (the same event id arriving again with a new, higher sequence number).
    deliveries: list[list[PositionedEvent]] = []
    for _ in range(data.draw(st.integers(min_value=1, max_value=5))):
        cut = data.draw(st.integers(min_value=0, max_value=len(batch)))
        deliveries.append(batch[:cut])
    deliveries.append(batch)
    retries = data.draw(st.lists(st.sampled_from(batch), max_size=5))
    deliveries.append([at(p.event, seq=10_000 + i) for i, p in enumerate(retries)])
    deliveries.append(batch)

    # When each delivery is folded into the stored profile in turn
    profile: Profile | None = None
    for delivery in deliveries:
        profile, _ = fold(profile, USER, delivery)
        profile = through_store(profile)

    # Then the stored bytes are those of the clean run
    assert profile is not None
    assert stored(profile) == stored(clean)


@given(spec=events_strategy)
def test_fold_never_mutates_its_input(spec: list[tuple[EventType, str, str | None, float, int]]) -> None:
    batch = build(spec)
    first, _ = fold(None, USER, batch[: len(batch) // 2])
    before = stored(first)
    fold(first, USER, batch)
    assert stored(first) == before


@settings(max_examples=150, deadline=None)
@given(spec=events_strategy, order=st.randoms(use_true_random=False))
def test_affinities_are_every_event_weight_decayed_to_the_reading_time_whatever_the_arrival_order(
    spec: list[tuple[EventType, str, str | None, float, int]], order: random.Random
) -> None:
    # A short half-life, so that 30 days of events move the anchor many times
    settings_ = FoldSettings(affinity_half_life_ms=3 * 24 * 3600 * 1000)
    batch = build(spec)
    # Given the events in any sequence order (late events arriving after later ones)
    shuffled = [at(p.event, seq=1 + i) for i, p in enumerate(order.sample(batch, len(batch)))]
    profile, _ = fold(None, USER, shuffled, settings_)

    # Then each category's affinity, read at any later time, is the sum of its events' weights decayed to it
    # (a dismissal's weight is negative), where that sum is above zero
    now = int((T0 + timedelta(days=40)).timestamp() * 1000)
    sums: dict[str, float] = {}
    for p in batch:
        weight = AFFINITY_WEIGHTS.get(p.event.type, 0.0)
        if p.event.category and weight:
            decayed = weight * 0.5 ** ((now - p.ts_ms) / settings_.affinity_half_life_ms)
            sums[p.event.category] = sums.get(p.event.category, 0.0) + decayed
    read = affinities_at(profile, now, settings_)
    assert set(read) <= set(sums)
    assert read == pytest.approx({c: s for c, s in sums.items() if c in read}, rel=1e-9)
    # A sum well above zero is read; one well below is not (near zero, rounding may say either)
    assert {c for c, s in sums.items() if s > 1e-9} <= set(read)
    assert not {c for c, s in sums.items() if s < -1e-9} & set(read)


@given(spec=events_strategy)
def test_folding_in_place_equals_the_pure_fold(spec: list[tuple[EventType, str, str | None, float, int]]) -> None:
    batch = build(spec)
    first, _ = fold(None, USER, batch[: len(batch) // 2])
    pure, _ = fold(first, USER, batch)
    owned = through_store(first)
    in_place, _ = fold(owned, USER, batch, in_place=True)
    assert in_place is owned
    assert stored(in_place) == stored(pure)


@given(
    st.lists(st.floats(min_value=0, max_value=1e10), min_size=2, max_size=10),
    st.integers(min_value=1, max_value=10**10),
)
def test_decay_is_monotone_and_never_negative(elapsed: list[float], half_life: int) -> None:
    factors = [decay_factor(e, half_life) for e in sorted(elapsed)]
    assert all(0.0 <= f <= 1.0 for f in factors)
    assert all(a >= b for a, b in itertools.pairwise(factors))


@settings(deadline=None)
@given(spec=events_strategy, later=st.lists(st.floats(min_value=0, max_value=1e11), min_size=2, max_size=8))
def test_stored_affinities_read_later_only_decay_and_never_go_negative(
    spec: list[tuple[EventType, str, str | None, float, int]], later: list[float]
) -> None:
    profile, _ = fold(None, USER, build(spec))
    newest = max(p.ts_ms for p in build(spec))
    readings = [affinities_at(profile, newest + int(ms), FoldSettings()) for ms in sorted(later)]
    for earlier, then in itertools.pairwise(readings):
        assert set(then) == set(earlier)
        assert all(0.0 <= then[c] <= earlier[c] for c in then)


@given(spec=events_strategy)
def test_the_fold_keeps_event_ids_and_times_as_the_shared_helpers_compute_them(
    spec: list[tuple[EventType, str, str | None, float, int]],
) -> None:
    # The fold inlines event_id_digest and to_ms for speed; bench.load audits stored event ids with the
    # former, and ingest sets a profile's expiry with the latter: the stored values must be exactly theirs.
    batch = build(spec)
    profile, _ = fold(None, USER, batch)
    assert profile.event_ids == [event_id_digest(p.event.event_id) for p in batch][-EVENT_ID_LIMIT:]
    assert (
        sorted(ts for _, _, ts in profile.recent)
        == sorted(
            to_ms(p.event)
            for p in batch
            if p.event.item_id and p.event.type not in (EventType.CONSENT, EventType.DISMISS)
        )[-HISTORY_LIMIT:]
    )


def test_affinity_decays_with_the_configured_half_life() -> None:
    settings_ = FoldSettings(affinity_half_life_ms=3600_000)
    profile, _ = fold(None, USER, [at(event(1, minutes=0), 1)], settings_)
    now = int((T0 + timedelta(hours=2)).timestamp() * 1000)
    assert affinities_at(profile, now, settings_)["shoes"] == pytest.approx(0.25)


def test_purchase_outweighs_views_and_late_events_count_decayed() -> None:
    batch = [
        at(event(1, EventType.VIEW_PRODUCT, category="hats", minutes=10), 1),
        at(event(2, EventType.PURCHASE, category="shoes", minutes=10, price=10.0), 2),
        at(event(3, EventType.VIEW_PRODUCT, category="hats", minutes=5), 3),  # arrives late
    ]
    profile, _ = fold(None, USER, batch)
    assert profile.affinity["shoes"] > profile.affinity["hats"] > 1.0
    assert profile.monetary == 10.0


def test_cart_follows_adds_removes_and_purchases() -> None:
    batch = [
        at(event(1, EventType.ADD_TO_CART, "i1", quantity=2), 1),
        at(event(2, EventType.ADD_TO_CART, "i2"), 2),
        at(event(3, EventType.REMOVE_FROM_CART, "i1"), 3),
        at(event(4, EventType.PURCHASE, "i2", price=5.0, minutes=1), 4),
    ]
    profile, _ = fold(None, USER, batch)
    assert profile.cart == {"i1": 1}
    assert set(profile.purchased) == {"i2"}
    assert profile.counts == {"add_to_cart": 2, "remove_from_cart": 1, "purchase": 1}


def test_sessions_split_after_thirty_minutes_of_inactivity() -> None:
    batch = [at(event(n, item=f"i{n}", minutes=m), n) for n, m in enumerate([0, 10, 25, 70, 71])]
    profile, _ = fold(None, USER, batch)
    assert profile.session is not None
    assert profile.session.events == 2
    assert profile.session.items == ["i3", "i4"]
    assert profile.session.start_ms == int((T0 + timedelta(minutes=70)).timestamp() * 1000)


def test_history_is_bounded_and_in_event_time_order() -> None:
    batch = [at(event(n, item=f"i{n}", minutes=(n * 7) % 100), n) for n in range(120)]
    profile, _ = fold(None, USER, batch)
    assert len(profile.recent) == HISTORY_LIMIT
    times = [ts for _, _, ts in profile.recent]
    assert times == sorted(times)


def test_an_event_of_another_user_is_refused() -> None:
    other = event(1).model_copy(update={"user_id": "b" * 64})
    with pytest.raises(ValueError, match="another user"):
        fold(None, USER, [at(other, 1)])


def test_watermarks_compare_sequence_numbers_as_integers() -> None:
    # Kinesis sequence numbers are decimal strings of varying length: "9" < "10" as text, not as numbers.
    profile, _ = fold(None, USER, [at(event(1), 9)])
    profile, applied = fold(profile, USER, [at(event(2), 10)])
    assert applied == 1


# -- consent -----------------------------------------------------------------------------------------------

WITHDRAWN = Consent(analytics=True, personalization=False)
NO_ANALYTICS = Consent(analytics=False, personalization=False)


def consent_event(n: int, consent: Consent, minutes: float = 0) -> Event:
    return Event(
        event_id=f"c{n}", user_id=USER, type=EventType.CONSENT, ts=T0 + timedelta(minutes=minutes), consent=consent
    )


def rich_history() -> list[PositionedEvent]:
    return [
        at(event(1, EventType.VIEW_PRODUCT, "i1", minutes=1), 1),
        at(event(2, EventType.ADD_TO_CART, "i2", minutes=2), 2),
        at(event(3, EventType.PURCHASE, "i3", minutes=3, price=9.5), 3),
        at(event(4, EventType.SEARCH, "i4", minutes=4), 4),
    ]


@pytest.mark.parametrize("withdrawal", [WITHDRAWN, NO_ANALYTICS])
def test_a_consent_withdrawal_wipes_the_history_at_once_and_keeps_the_bookkeeping(withdrawal: Consent) -> None:
    # Given a profile with every kind of history
    profile, _ = fold(None, USER, rich_history())
    assert profile.has_history

    # When a consent event withdraws personalization (or analytics)
    after, applied = fold(profile, USER, [at(consent_event(9, withdrawal, minutes=10), 5)])

    # Then nothing about the person's behaviour is left, only consent state and exactly-once bookkeeping
    assert applied == 1
    assert not after.has_history
    assert after == Profile(
        user_id=USER,
        personalization=False,
        analytics=withdrawal.analytics,
        withdrawn_ms=int((T0 + timedelta(minutes=10)).timestamp() * 1000),
        watermarks=after.watermarks,
        event_ids=after.event_ids,
    )
    assert after.watermarks == {"shardId-000": 5}
    assert len(after.event_ids) == 5
    assert not through_store(after).has_history


def test_events_without_personalization_consent_add_nothing_but_are_not_applied_twice() -> None:
    # Given a person who gives analytics consent only
    batch = [at(event(n, minutes=n, consent=WITHDRAWN), n) for n in range(1, 6)]

    # When their events are folded, and delivered again
    profile, applied = fold(None, USER, batch)
    _again, reapplied = fold(through_store(profile), USER, batch)

    # Then the profile holds no history and says so; the redelivery is recognized
    assert applied == 5
    assert reapplied == 0
    assert not profile.has_history
    assert profile.personalization is False
    assert profile.analytics is True


def test_opting_in_again_re_enables_history_from_then_on_but_not_for_late_events_from_before() -> None:
    # Given a person who withdrew at minute 10
    profile, _ = fold(None, USER, [*rich_history(), at(consent_event(9, WITHDRAWN, minutes=10), 5)])

    # When a late event from before the withdrawal arrives, then events with consent again after it
    late = at(event(20, EventType.VIEW_PRODUCT, "late", minutes=5), 6)
    opted_in = [at(event(21, EventType.VIEW_PRODUCT, "new", minutes=11), 7)]
    profile, applied = fold(profile, USER, [late, *opted_in])

    # Then only what came after the opt-in is history; the late event is counted as seen, not kept
    assert applied == 2
    assert profile.personalization is True
    assert [item for item, _, _ in profile.recent] == ["new"]
    assert profile.counts == {"view_product": 1}
    assert profile.first_seen_ms == int((T0 + timedelta(minutes=11)).timestamp() * 1000)


def test_a_consent_event_that_grants_personalization_keeps_the_history() -> None:
    profile, _ = fold(None, USER, rich_history())
    after, _ = fold(profile, USER, [at(consent_event(9, CONSENT, minutes=10), 5)])
    assert stored(after) != stored(profile)  # watermark and event id moved on
    assert (after.recent, after.counts, after.affinity) == (profile.recent, profile.counts, profile.affinity)


def test_profiles_stored_before_consent_fields_existed_decode_with_consent_given() -> None:
    # Given the bytes an older version wrote (no "an" and no "wd" keys)
    profile, _ = fold(None, USER, rich_history())
    data = codec.profile_to_dict(profile)
    assert "an" not in data
    assert "wd" not in data
    legacy = zlib.compress(json.dumps(data, sort_keys=True, separators=(",", ":")).encode(), 9)

    # Then they decode to the same profile, consent given and never withdrawn, and re-encode identically
    decoded = codec.decode(USER, legacy)
    assert decoded == profile
    assert (decoded.analytics, decoded.withdrawn_ms) == (True, None)
    assert codec.encode(decoded) == legacy


withdrawals = st.sampled_from([WITHDRAWN, NO_ANALYTICS])
without_personalization = st.lists(
    st.tuples(
        st.sampled_from([kind for kind in EventType if kind is not EventType.IMPRESSION]),
        st.sampled_from(["i1", "i2", "i3"]),
        st.floats(min_value=-60 * 24, max_value=60 * 24),
        st.sampled_from([WITHDRAWN, NO_ANALYTICS, "late-with-consent"]),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(history=events_strategy, withdrawal=withdrawals, following=without_personalization, data=st.data())
def test_after_a_withdrawal_no_history_grows_whatever_follows_without_personalization_consent(
    history: list[tuple[EventType, str, str | None, float, int]],
    withdrawal: Consent,
    following: list[tuple[EventType, str, float, object]],
    data: st.DataObject,
) -> None:
    # Given any history, then a consent event withdrawing personalization at minute W (after all of it)
    batch = build(history)
    withdrawn_at = 60 * 24 * 31
    seq = 1_000
    batch.append(at(consent_event(0, withdrawal, minutes=withdrawn_at), seq))

    # And then any events at all that lack personalization consent: of any type, at any time, in any order,
    # including late ones that claim consent but were stamped before the withdrawal
    for n, (kind, item, offset, consent) in enumerate(following, start=1):
        if consent == "late-with-consent":
            evt = event(500 + n, kind, item, minutes=withdrawn_at - abs(offset))
        elif kind is EventType.CONSENT:
            evt = consent_event(500 + n, consent, minutes=withdrawn_at + offset)  # type: ignore[arg-type]
        else:
            # Without analytics consent parse_record drops the event before the fold; with analytics only it
            # reaches the fold. Both are folded here, so the fold alone is shown to keep nothing.
            evt = event(500 + n, kind, item, minutes=withdrawn_at + offset, consent=consent)
        batch.append(at(evt, seq + n))

    # When it is all folded, in any number of deliveries, through the store in between
    cuts = sorted(data.draw(st.lists(st.integers(0, len(batch)), max_size=3)))
    profile: Profile | None = None
    for cut in [*cuts, len(batch)]:
        profile, _ = fold(profile, USER, batch[:cut])
        profile = through_store(profile)

    # Then the profile holds no history, and never says the person may be personalized
    assert profile is not None
    assert not profile.has_history
    assert profile.personalization is False
    assert profile.recent == []
    assert profile.counts == {}
    assert profile.first_seen_ms is None


# -- the consent banner's answer, kept as an auditable record (issue 21, finding 8) ------------------------


def consent_answer(n: int, analytics: bool, personalization: bool, action: str, decided_min: float) -> Event:
    from personalization.events import ConsentDecision

    return Event(
        event_id=f"c{n}",
        user_id=USER,
        type=EventType.CONSENT,
        ts=T0 + timedelta(minutes=decided_min, seconds=1),
        consent=Consent(analytics=analytics, personalization=personalization),
        decision=ConsentDecision(action=action, decided_at=T0 + timedelta(minutes=decided_min)),  # type: ignore[arg-type]
    )


def test_the_latest_banner_answer_is_the_profiles_consent_record_whatever_the_order_of_arrival() -> None:
    accepted = consent_answer(1, True, True, "accept_all", 0)
    narrowed = consent_answer(2, True, False, "save_choices", 10)
    ms = int((T0 + timedelta(minutes=10)).timestamp() * 1000)
    for order in ([accepted, narrowed], [narrowed, accepted]):
        profile, _ = fold(None, USER, [at(e, n) for n, e in enumerate(order)], FoldSettings())
        assert profile.consent_record == (True, False, ms, "save_choices")
        # And it survives the store, as one short entry
        assert through_store(profile) == profile
        assert b'"cr":[true,false,' in zlib.decompress(stored(profile))
    # Ordinary events, consent events without an answer, and a withdrawal of everything leave it the latest answer
    withdrawn = consent_answer(3, False, False, "decline_all", 20)
    later = [at(event(4, minutes=30), 3), at(withdrawn, 4)]
    profile, _ = fold(profile, USER, later, FoldSettings())
    assert profile.consent_record == (False, False, ms + 10 * 60_000, "decline_all")
    assert not profile.has_history


def test_a_decision_is_refused_on_any_event_but_a_consent_event() -> None:
    from pydantic import ValidationError

    from personalization.events import ConsentDecision

    with pytest.raises(ValidationError, match="decision is allowed only on a consent event"):
        event(1, decision=ConsentDecision(action="accept_all", decided_at=T0))


def test_a_profile_without_a_record_stores_no_byte_for_it() -> None:
    profile, _ = fold(None, USER, [at(event(1), 1)], FoldSettings())
    assert profile.consent_record is None
    assert b'"cr"' not in zlib.decompress(stored(profile))
