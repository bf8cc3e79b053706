"""Rules and experiments scoped to the viewer's context: devices, countries, dayparts, channels."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.context import Channel, Device, RequestContext
from personalization.rules import RuleEngine, RulesError, parse_document
from tests.helpers.rules import CATALOG, by_popularity, ids, request

DAYPARTS = {"morning": {"start": 6, "end": 12}, "evening": {"start": 18, "end": 24}, "night": {"start": 0, "end": 6}}


def document(*rules: dict[str, Any], experiments: list[dict[str, Any]] | None = None, **extra: Any) -> Any:
    return parse_document(
        {"version": "ctx", "dayparts": DAYPARTS, "rules": list(rules), "experiments": experiments or [], **extra}
    )


def pin(rule_id: str, item: str, **when: Any) -> dict[str, Any]:
    return {"id": rule_id, "kind": "pin", "items": [item], "position": 1, "when": when}


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_document({"version": "ctx", "rules": [], **raw})
    return caught.value.problems


def test_every_context_field_is_validated_naming_the_rule_and_the_field() -> None:
    found = problems(
        {
            "dayparts": DAYPARTS,
            "rules": [
                pin("phones", "p1", devices=["phone"]),
                pin("spain", "p1", countries=["es"]),
                pin("tv", "p1", channels=["tv"]),
                pin("empty", "p1", devices=[]),
            ],
        }
    )
    assert found == [
        "rule 'phones' (rules[0]) when.devices[0]: Input should be 'mobile', 'tablet', 'desktop' or 'other'",
        "rule 'spain' (rules[1]) when.countries[0]: String should match pattern '^[A-Z]{2}$'",
        "rule 'tv' (rules[2]) when.channels[0]: Input should be 'search', 'social', 'email', 'campaign', "
        "'referral' or 'direct'",
        "rule 'empty' (rules[3]) when.devices: List should have at least 1 item after validation, not 0",
    ]
    assert problems({"dayparts": DAYPARTS, "rules": [pin("ok", "p1"), pin("brunch", "p1", dayparts=["brunch"])]}) == [
        "rule 'brunch' (rules[1]) when.dayparts[0]: 'brunch' names no daypart of the document "
        "(defined: morning, evening, night)"
    ]


def test_dayparts_are_validated_and_an_hour_belongs_to_one_at_most() -> None:
    assert problems({"dayparts": {"a": {"start": 6, "end": 12}, "b": {"start": 11, "end": 13}}}) == [
        "dayparts.b: overlaps a (an hour belongs to one daypart at most)"
    ]
    assert problems({"dayparts": {"c": {"start": 5, "end": 5}, "d": {"start": 0, "end": 24}}}) == [
        f"dayparts.{name}: start and end must differ (a daypart of no hours, or of the whole day, scopes nothing)"
        for name in "cd"
    ]
    assert problems({"dayparts": {"x": {"start": 1}}}) == ["dayparts.x.end: Field required"]


def test_an_experiment_may_target_a_context_and_its_dayparts_are_checked_too() -> None:
    experiment = {
        "id": "e",
        "dayparts": ["lunch"],
        "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}],
    }
    found = problems({"dayparts": DAYPARTS, "experiments": [experiment]})
    assert found == [
        "experiment 'e' (experiments[0]) dayparts[0]: 'lunch' names no daypart of the document "
        "(defined: morning, evening, night)"
    ]
    doc = document(experiments=[{**experiment, "dayparts": ["morning"], "devices": ["mobile"]}])
    [parsed] = doc.experiments
    mobile_morning = RequestContext(device=Device.MOBILE, local_hour=8)
    assert parsed.covers("any", 0, mobile_morning, doc.daypart_at(8))
    assert not parsed.covers("any", 0, replace(mobile_morning, device=Device.DESKTOP), doc.daypart_at(8))
    assert not parsed.covers("any", 0, mobile_morning, doc.daypart_at(13))


def test_the_document_says_which_cache_key_dimensions_its_rules_use() -> None:
    assert document().context_dimensions() == frozenset()
    both = document(pin("m", "p1", devices=["mobile"]), pin("e", "p2", dayparts=["evening"]))
    assert both.context_dimensions() == {"device", "timezone"}
    disabled = {**pin("c", "p1", countries=["DE"]), "enabled": False}
    assert document(disabled).context_dimensions() == frozenset()
    # A context experiment answers known visitors only, whose fragments are private: not in the shared key
    experiment = {
        "id": "e",
        "channels": ["email"],
        "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}],
    }
    assert document(experiments=[experiment]).context_dimensions() == frozenset()


def test_a_wrapping_daypart_covers_the_hours_past_midnight() -> None:
    doc = document(dayparts={"late": {"start": 22, "end": 3}})
    assert [doc.daypart_at(hour) for hour in (21, 22, 23, 0, 2, 3)] == [None, "late", "late", "late", "late", None]
    assert doc.daypart_at(None) is None


CONTEXTS = st.builds(
    RequestContext,
    device=st.sampled_from([None, *Device]),
    country=st.sampled_from([None, "DE", "ES", "US"]),
    local_hour=st.one_of(st.none(), st.integers(0, 23)),
    channel=st.sampled_from(list(Channel)),
)
WHEN = st.fixed_dictionaries(
    {},
    optional={
        "devices": st.lists(st.sampled_from([d.value for d in Device]), min_size=1, unique=True),
        "countries": st.lists(st.sampled_from(["DE", "ES", "FR"]), min_size=1, unique=True),
        "dayparts": st.lists(st.sampled_from(list(DAYPARTS)), min_size=1, unique=True),
        "channels": st.lists(st.sampled_from([c.value for c in Channel]), min_size=1, unique=True),
        "slots": st.just(["for-you"]),
    },
)


@settings(max_examples=150, deadline=None)
@given(st.lists(WHEN, min_size=1, max_size=4), st.lists(CONTEXTS, min_size=1, max_size=8))
def test_a_context_rule_is_active_exactly_when_the_context_is_in_scope_whatever_the_cache_holds(
    scopes: list[dict[str, Any]], contexts: list[RequestContext]
) -> None:
    items = ["p1", "p2", "p3", "p4"]
    doc = document(*(pin(f"r{n}", items[n], **when) for n, when in enumerate(scopes)))
    cached = RuleEngine(doc, CATALOG)
    for context in contexts:
        daypart = doc.daypart_at(context.local_hour)
        expected = [rule.id for rule in doc.rules if rule.when.admits_context(context, daypart)]
        plan = cached.plan(request(context=context))
        fresh = RuleEngine(doc, CATALOG, cache_size=0).plan(request(context=context))
        ruled = plan.apply(by_popularity(), 4)
        assert [rule_id for rule_id in ruled.applied if rule_id in expected] == ruled.applied
        first_active = next((n for n, rule in enumerate(doc.rules) if rule.id in expected), None)
        if first_active is not None:
            assert ids(ruled.items)[0] == items[first_active]
        assert ids(ruled.items) == ids(fresh.apply(by_popularity(), 4).items)
