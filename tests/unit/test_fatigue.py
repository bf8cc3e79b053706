"""Seen-item fatigue and "not interested": impressions, clicks and dismissals folded, then read by the rules."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.catalog import Catalog, CatalogItem
from personalization.events import Consent, Event, EventType, Impression
from personalization.experiments import to_ms
from personalization.fatigue import DISMISSED_LIMIT, SEEN_LIMIT, SEEN_SHOWS
from personalization.profile import FoldSettings, PositionedEvent, Profile, affinities_at, fold
from personalization.ranking import Scored
from personalization.rules import RuleEngine, RuleRequest, RulesError, parse_document
from store import codec

T0 = datetime(2026, 11, 2, tzinfo=UTC)
USER = "c" * 64
CONSENT = Consent(analytics=True, personalization=True)
WITHDRAWN = Consent(analytics=True, personalization=False)
ITEMS = ["i1", "i2", "i3", "i4"]
CATALOG = Catalog([CatalogItem(item, "shoes", 10.0, 100.0 - n) for n, item in enumerate(ITEMS)])
DAY_MS = 24 * 3600 * 1000


def shown(n: int, minutes: float, *items: str) -> PositionedEvent:
    event = Event(
        event_id=f"imp{n}",
        pseudonymous=True,
        user_id=USER,
        type=EventType.IMPRESSION,
        ts=T0 + timedelta(minutes=minutes),
        consent=CONSENT,
        impression=Impression(slot="for-you", items=list(items), model_version="m", rules_version="r"),
    )
    return PositionedEvent(event, "shard", n)


def acted(n: int, minutes: float, item: str, kind: EventType = EventType.VIEW_PRODUCT, **kw: object) -> PositionedEvent:
    event = Event(
        event_id=f"e{n}",
        user_id=USER,
        type=kind,
        ts=T0 + timedelta(minutes=minutes),
        item_id=item,
        category="shoes",
        consent=kw.pop("consent", CONSENT),  # type: ignore[arg-type]
    )
    return PositionedEvent(event, "shard", n)


def rules(*extra: dict[str, object], times: int = 3, days: int = 7) -> RuleEngine:
    document = {"version": "t", "rules": [{"id": "fatigue", "kind": "exclude_seen", "times": times, "days": days}]}
    document["rules"] += list(extra)  # type: ignore[operator]
    return RuleEngine(parse_document(document), CATALOG)


def shown_list(profile: Profile, engine: RuleEngine, now_ms: int, dismissed: frozenset[str] = frozenset()) -> list[str]:
    plan = engine.plan(
        RuleRequest(
            "for-you",
            None,
            None,
            None,
            frozenset(),
            now_ms,
            profile.purchased,
            (),
            seen=profile.seen,
            dismissed=dismissed,
        )
    )
    candidates = [Scored(item, item.popularity) for item in CATALOG.items if item.id not in plan.excluded]
    return [scored.item.id for scored in plan.apply(candidates, 10).items]


# Sequences of (what, item, minutes): an impression of the item, a click (view) on it, or a dismissal.
steps = st.lists(
    st.tuples(st.sampled_from(["shown", "click", "dismiss"]), st.sampled_from(ITEMS), st.integers(0, 60 * 24 * 3)),
    max_size=40,
)


def folded(spec: list[tuple[str, str, int]], in_time_order: bool = True) -> tuple[Profile, list[PositionedEvent]]:
    ordered = sorted(spec, key=lambda s: s[2]) if in_time_order else spec
    events = []
    for n, (what, item, minutes) in enumerate(ordered):
        if what == "shown":
            events.append(shown(n, minutes, item))
        else:
            kind = EventType.VIEW_PRODUCT if what == "click" else EventType.DISMISS
            events.append(acted(n, minutes, item, kind))
    profile, _ = fold(None, USER, events)
    return profile, events


@settings(max_examples=200, deadline=None)
@given(spec=steps, times=st.integers(1, SEEN_SHOWS))
def test_an_item_shown_n_times_since_its_last_click_is_excluded_and_only_then(
    spec: list[tuple[str, str, int]], times: int
) -> None:
    profile, _ = folded(spec)
    now_ms = to_ms(T0) + 4 * DAY_MS
    excluded = (
        rules(times=times, days=7)
        .plan(RuleRequest("for-you", None, None, None, frozenset(), now_ms, {}, (), seen=profile.seen))
        .excluded
    )
    # The model's reading: per item, the showings after the last click or dismissal (both are touches)
    for item in ITEMS:
        touched = max((m for what, i, m in spec if i == item and what != "shown"), default=-1)
        # Showings at the same moment are one (a re-sent impression, or two slots of one page)
        ignored = len({m for what, i, m in spec if i == item and what == "shown" and m > touched})
        assert (item in excluded) == (min(ignored, SEEN_SHOWS) >= times), item


@settings(max_examples=100, deadline=None)
@given(spec=steps)
def test_the_record_survives_the_store_and_any_redelivery(spec: list[tuple[str, str, int]]) -> None:
    profile, events = folded(spec)
    assert codec.decode(USER, codec.encode(profile)) == profile
    again, applied = fold(codec.decode(USER, codec.encode(profile)), USER, events)
    assert applied == 0
    assert again == profile


def test_a_click_resets_the_count_and_later_showings_count_afresh() -> None:
    engine = rules(times=2)
    now_ms = to_ms(T0) + DAY_MS
    profile, _ = fold(None, USER, [shown(1, 0, "i1", "i2"), shown(2, 5, "i1", "i2")])
    assert shown_list(profile, engine, now_ms) == ["i3", "i4"]
    profile, _ = fold(profile, USER, [acted(3, 6, "i1")])
    assert shown_list(profile, engine, now_ms) == ["i1", "i3", "i4"]
    profile, _ = fold(profile, USER, [shown(4, 7, "i1"), shown(5, 8, "i1")])
    assert shown_list(profile, engine, now_ms) == ["i3", "i4"]


def test_showings_older_than_the_window_do_not_count() -> None:
    profile, _ = fold(None, USER, [shown(1, 0, "i1"), shown(2, 1, "i1"), shown(3, 60 * 24 * 10, "i1")])
    now_ms = to_ms(T0) + 11 * DAY_MS
    assert "i1" in shown_list(profile, rules(times=2, days=7), now_ms)
    assert "i1" not in shown_list(profile, rules(times=2, days=30), now_ms)


def test_a_late_impression_from_before_the_click_does_not_count() -> None:
    profile, _ = fold(None, USER, [shown(1, 0, "i1"), acted(2, 10, "i1"), shown(3, 5, "i1"), shown(4, 20, "i1")])
    assert profile.seen["i1"] == (to_ms(T0 + timedelta(minutes=10)), to_ms(T0 + timedelta(minutes=20)))


def test_without_the_rule_nothing_is_excluded_for_having_been_seen() -> None:
    profile, _ = fold(None, USER, [shown(n, n, "i1") for n in range(1, 6)])
    engine = RuleEngine(parse_document({"version": "t", "rules": []}), CATALOG)
    assert shown_list(profile, engine, to_ms(T0) + DAY_MS) == ITEMS


def test_the_seen_record_is_bounded() -> None:
    many = [f"x{n}" for n in range(200)]
    events = [shown(n, n, *many[5 * n : 5 * n + 5]) for n in range(40)] + [shown(50, 50, "i1")]
    events += [shown(60 + n, 60 + n, "i1") for n in range(SEEN_SHOWS + 4)]
    profile, _ = fold(None, USER, events)
    assert len(profile.seen) <= SEEN_LIMIT
    assert len(profile.seen["i1"]) == 1 + SEEN_SHOWS
    # The least recently shown went first
    assert "x1" not in profile.seen
    assert "x199" in profile.seen


def test_impressions_change_no_consent_and_are_not_kept_without_it() -> None:
    withdrawn, _ = fold(None, USER, [acted(1, 0, "i1", consent=WITHDRAWN)])
    after, _ = fold(withdrawn, USER, [shown(2, 1, "i1")])
    assert not after.personalization
    assert after.seen == {}
    assert not after.has_history


def test_a_withdrawal_forgets_what_was_shown_and_dismissed() -> None:
    profile, _ = fold(None, USER, [shown(1, 0, "i1"), acted(2, 1, "i2", EventType.DISMISS)])
    assert profile.seen
    assert profile.dismissed
    after, _ = fold(profile, USER, [acted(3, 2, "i3", consent=WITHDRAWN)])
    assert (after.seen, after.dismissed) == ({}, {})


def test_a_dismissed_item_is_left_out_and_is_negative_feedback() -> None:
    settings_ = FoldSettings()
    profile, _ = fold(None, USER, [acted(1, 0, "i1"), acted(2, 1, "i2")], settings_)
    before = affinities_at(profile, to_ms(T0) + 60_000, settings_)["shoes"]
    profile, _ = fold(profile, USER, [acted(3, 1, "i2", EventType.DISMISS)], settings_)
    assert profile.dismissed == {"i2": to_ms(T0 + timedelta(minutes=1))}
    assert affinities_at(profile, to_ms(T0) + 60_000, settings_).get("shoes", 0.0) < before
    # Not a history entry the model would recommend from
    assert [item for item, _, _ in profile.recent] == ["i1", "i2"]
    engine = RuleEngine(parse_document({"version": "t", "rules": []}), CATALOG)
    assert "i2" not in shown_list(profile, engine, to_ms(T0) + DAY_MS, frozenset(profile.dismissed))


def test_a_dismissed_pin_is_dropped_with_a_note() -> None:
    engine = RuleEngine(
        parse_document({"version": "t", "rules": [{"id": "pin", "kind": "pin", "items": ["i4"], "position": 1}]}),
        CATALOG,
    )
    plan = engine.plan(RuleRequest("for-you", None, None, None, frozenset(), 0, {}, (), dismissed=frozenset({"i4"})))
    ruled = plan.apply([Scored(item, 1.0) for item in CATALOG.items if item.id not in plan.excluded], 4)
    assert "i4" not in [s.item.id for s in ruled.items]
    assert ruled.notes == ["pin 'pin' item i4 dropped: excluded by 'dismissed by the person'"]


def test_dismissals_are_bounded_oldest_first() -> None:
    events = [acted(n, n, f"d{n}", EventType.DISMISS) for n in range(1, DISMISSED_LIMIT + 6)]
    profile, _ = fold(None, USER, events)
    assert len(profile.dismissed) == DISMISSED_LIMIT
    assert "d1" not in profile.dismissed
    assert f"d{DISMISSED_LIMIT + 5}" in profile.dismissed


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"times": 0, "days": 7}, "rule 'f' (rules[0]) times: Input should be greater than or equal to 1"),
        (
            {"times": SEEN_SHOWS + 1, "days": 7},
            f"rule 'f' (rules[0]) times: Input should be less than or equal to {SEEN_SHOWS}",
        ),
        ({"times": 2}, "rule 'f' (rules[0]) days: Field required"),
    ],
)
def test_an_exclude_seen_rule_is_checked_naming_rule_and_field(fields: dict[str, int], message: str) -> None:
    with pytest.raises(RulesError) as error:
        parse_document({"version": "t", "rules": [{"id": "f", "kind": "exclude_seen", **fields}]})
    assert error.value.problems == [message]


def test_a_resent_impression_counts_once_and_keeps_the_event_ids_for_the_persons_own_events() -> None:
    profile, _ = fold(None, USER, [acted(1, 0, "i2"), shown(2, 1, "i1")])
    resent, applied = fold(profile, USER, [PositionedEvent(shown(2, 1, "i1").event, "shard", 3)])
    assert applied == 1
    assert resent.seen == profile.seen
    assert resent.event_ids == profile.event_ids == [profile.event_ids[0]]
