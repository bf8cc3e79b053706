"""The collector's decisions without any server: body parsing, identity, and each event's admission."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collect.intake import (
    MAX_BODY_BYTES,
    MAX_EVENTS,
    NO_CONSENT,
    BodyTooLarge,
    MalformedBody,
    Refusal,
    TooManyEvents,
    admit,
    identify,
    read_events,
)
from personalization.events import Event, EventType, parse_record
from personalization.identity import sign_token, verify_token

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=180)
KEY = b"k" * 32
PSEUDONYM = "a" * 64
TTL = 180 * 86400


def client_event(**overrides: Any) -> dict[str, Any]:
    """What a tracker sends: no user_id, no event_id."""
    body: dict[str, Any] = {
        "type": "add_to_cart",
        "ts": NOW.isoformat(),
        "item_id": "i-1",
        "price": 12.5,
        "consent": {"analytics": True, "personalization": True},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


# -- the body ---------------------------------------------------------------------------------------


def test_one_event_object_is_a_batch_of_one() -> None:
    assert read_events(json.dumps(client_event()).encode()) == [client_event()]


def test_a_batch_is_the_events_array() -> None:
    events = [client_event(item_id=f"i-{n}") for n in range(3)]
    assert read_events(json.dumps({"events": events}).encode()) == events


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "got a JSON array"),
        (b'"an event"', "got a JSON string"),
        (b"null", "got a JSON null"),
        (b'{"events": {}}', "events must be an array"),
        (b'{"events": []}', "events is empty"),
        (b'{"events": [], "user_id": "x"}', "unexpected: user_id"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_a_malformed_body_is_refused_with_a_message(body: bytes, needle: str) -> None:
    with pytest.raises(MalformedBody, match=re.escape(needle)):
        read_events(body)


def test_more_than_500_events_are_too_many() -> None:
    body = json.dumps({"events": [{}] * (MAX_EVENTS + 1)}).encode()
    with pytest.raises(TooManyEvents, match="501 events"):
        read_events(body)
    assert len(read_events(json.dumps({"events": [{}] * MAX_EVENTS}).encode())) == MAX_EVENTS


def test_more_than_a_megabyte_is_too_large() -> None:
    with pytest.raises(BodyTooLarge):
        read_events(b" " * (MAX_BODY_BYTES + 1))


# -- identity ---------------------------------------------------------------------------------------


def test_a_valid_token_names_its_pseudonym_and_mints_nothing() -> None:
    token = sign_token(KEY, PSEUDONYM, 2_000)
    assert identify(KEY, token, 1_000, TTL).pseudonym == PSEUDONYM
    assert identify(KEY, token, 1_000, TTL).new_token is None


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "garbage",
        sign_token(KEY, PSEUDONYM, 999),  # expired
        sign_token(b"another key" * 3, PSEUDONYM, 2_000),  # forged
        sign_token(KEY, PSEUDONYM, 2_000)[:-2] + "AA",  # tampered signature
        sign_token(KEY, PSEUDONYM, 2_000).replace("aaaa", "bbbb", 1),  # tampered id
    ],
)
def test_without_a_valid_token_a_new_anonymous_id_is_minted_and_signed(token: str | None) -> None:
    visitor = identify(KEY, token, 1_000, TTL)
    assert re.fullmatch(r"[0-9a-f]{64}", visitor.pseudonym)
    assert visitor.pseudonym != PSEUDONYM
    assert visitor.new_token is not None
    assert verify_token(KEY, visitor.new_token, 1_000 + TTL - 1) == visitor.pseudonym
    assert verify_token(KEY, visitor.new_token, 1_000 + TTL) is None  # expires with the cookie's Max-Age


def test_anonymous_ids_are_random() -> None:
    assert len({identify(KEY, None, 1_000, TTL).pseudonym for _ in range(50)}) == 50


# -- one event ---------------------------------------------------------------------------------------


def test_an_admitted_event_carries_the_pseudonym_whatever_user_id_was_sent() -> None:
    event = admit(client_event(user_id="alice@example.com", pseudonymous=False), PSEUDONYM, NOW, RETENTION)
    assert isinstance(event, Event)
    assert event.user_id == PSEUDONYM
    assert event.pseudonymous is True
    assert event.type is EventType.ADD_TO_CART
    assert b"alice" not in event.to_json_bytes()


def test_event_id_and_ts_are_filled_when_missing_and_kept_when_sent() -> None:
    filled = admit(client_event(ts=None), PSEUDONYM, NOW, RETENTION)
    assert isinstance(filled, Event)
    assert re.fullmatch(r"[0-9a-f]{32}", filled.event_id)
    assert filled.ts == NOW
    other = admit(client_event(), PSEUDONYM, NOW, RETENTION)
    assert isinstance(other, Event)
    assert other.event_id != filled.event_id
    kept = admit(client_event(event_id="client-1", ts="2026-11-24T12:59:00+01:00"), PSEUDONYM, NOW, RETENTION)
    assert isinstance(kept, Event)
    assert kept.event_id == "client-1"
    assert kept.ts == datetime(2026, 11, 24, 11, 59, tzinfo=UTC)


def test_what_is_admitted_is_exactly_what_ingest_folds() -> None:
    # Given an admitted event, when ingest parses the bytes the stream carries, it gets the same event back
    event = admit(client_event(), PSEUDONYM, NOW, RETENTION)
    assert isinstance(event, Event)
    assert parse_record(event.to_json_bytes(), NOW, RETENTION, pepper=b"pepper") == event


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"price": -1}, "price", "invalid_field"),
        ({"price": "cheap"}, "price", "invalid_field"),
        ({"type": "teleport"}, "type", "unknown_type"),
        ({"type": None}, "type", "missing_field"),
        ({"quantity": 0}, "quantity", "invalid_field"),
        ({"colour": "red"}, "colour", "invalid_field"),
        ({"schema_version": 2}, "schema_version", "unsupported_version"),
        ({"ts": "yesterday"}, "ts", "invalid_field"),
        ({"ts": "2026-11-24T12:00:00"}, "ts", "invalid_field"),  # no offset
        ({"ts": "2026-11-24T12:06:00+00:00"}, "ts", "future_timestamp"),
        ({"ts": "2026-01-01T00:00:00+00:00"}, "ts", "stale_timestamp"),
        ({"item_id": None}, "event", "invalid_field"),  # an add_to_cart names its item
        ({"context": {"device": "x" * 300}}, "context.device", "invalid_field"),
        ({"category": "x" * 40_000}, "category", "invalid_field"),
    ],
)
def test_an_invalid_event_is_refused_naming_the_field(overrides: dict[str, Any], field: str, reason: str) -> None:
    refusal = admit(client_event(**overrides), PSEUDONYM, NOW, RETENTION)
    assert isinstance(refusal, Refusal)
    assert (refusal.field, refusal.reason) == (field, reason)
    assert refusal.message


def test_an_impression_ingest_would_find_too_large_is_refused_for_its_type_and_a_non_object_too() -> None:
    # Within every field's own limit (counted in characters), but over ingest's 32 KB record limit in UTF-8:
    # only an impression could be, and a browser may not send one at all
    wide = "\N{GRINNING FACE}"  # 4 bytes
    impression = {
        "slot": "s",
        "items": [wide * 128] * 50,
        "model_version": wide * 256,
        "rules_version": wide * 256,
        "experiment": wide * 128,
        "variant": wide * 128,
    }
    context = {"page": wide * 256, "referrer": wide * 256, "device": wide * 256}
    big = client_event(type="impression", item_id=None, impression=impression, context=context, category=wide * 256)
    refusal = admit(big, PSEUDONYM, NOW, RETENTION)
    assert isinstance(refusal, Refusal)
    assert (refusal.field, refusal.reason) == ("type", "not_allowed")
    refusal = admit(["not", "an", "object"], PSEUDONYM, NOW, RETENTION)
    assert isinstance(refusal, Refusal)
    assert (refusal.field, refusal.reason) == ("event", "not_object")


@pytest.mark.parametrize(
    "consent",
    [
        {"analytics": False, "personalization": True},
        {"analytics": "true", "personalization": True},  # never coerced
        None,
    ],
)
def test_without_analytics_consent_an_event_is_refused(consent: dict[str, Any] | None) -> None:
    refusal = admit(client_event(consent=consent), PSEUDONYM, NOW, RETENTION)
    assert isinstance(refusal, Refusal)
    assert (refusal.field, refusal.reason) == ("consent.analytics", NO_CONSENT)


def test_a_malformed_event_without_consent_is_refused_for_consent_as_ingest_would_drop_it() -> None:
    refusal = admit(
        client_event(price=-1, consent={"analytics": False, "personalization": False}), PSEUDONYM, NOW, RETENTION
    )
    assert isinstance(refusal, Refusal)
    assert refusal.reason == NO_CONSENT


def test_a_consent_withdrawal_is_admitted() -> None:
    withdrawal = client_event(
        type="consent", item_id=None, price=None, consent={"analytics": False, "personalization": False}
    )
    event = admit(withdrawal, PSEUDONYM, NOW, RETENTION)
    assert isinstance(event, Event)
    assert event.type is EventType.CONSENT
    assert event.consent.analytics is False


@pytest.mark.parametrize("consent", [{"analytics": True, "personalization": True}, {"analytics": False}])
def test_a_browser_may_not_send_an_impression_whatever_else_it_says(consent: dict[str, bool]) -> None:
    # Serve logs what it showed; an impression from a browser could write its own experiment results
    shown = {"slot": "for-you", "items": ["i-1"], "experiment": "e", "variant": "control", "model_version": "v"}
    forged = client_event(type="impression", item_id=None, impression={**shown, "rules_version": "r"}, consent=consent)
    refusal = admit(forged, PSEUDONYM, NOW, RETENTION)
    assert isinstance(refusal, Refusal)
    assert (refusal.field, refusal.reason) == ("type", "not_allowed")


def test_a_consent_answer_travels_with_its_consent_event_and_only_with_one() -> None:
    decision = {"action": "save_choices", "decided_at": NOW.isoformat()}
    answer = client_event(type="consent", decision=decision)
    answer.pop("item_id", None)
    answer.pop("price", None)
    admitted = admit(answer, PSEUDONYM, NOW, RETENTION)
    assert not isinstance(admitted, Refusal)
    assert admitted.decision is not None
    assert (admitted.decision.action, admitted.decision.decided_at) == ("save_choices", NOW)
    refused = admit(client_event(decision=decision), PSEUDONYM, NOW, RETENTION)
    assert isinstance(refused, Refusal)
    assert refused.reason == "invalid_field"
    assert "decision is allowed only on a consent event" in refused.message
