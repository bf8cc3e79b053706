import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalization.events import MAX_RECORD_BYTES, Event, EventType, NoConsent, Reason, Rejected, parse_record

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=180)


def good(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "event_id": "e-1",
        "user_id": "u-1",
        "type": "add_to_cart",
        "ts": NOW.isoformat(),
        "item_id": "i-1",
        "category": "shoes",
        "price": 12.5,
        "quantity": 2,
        "consent": {"analytics": True, "personalization": True},
    }
    body.update(overrides)
    return body


def parse(body: object) -> object:
    return parse_record(json.dumps(body).encode(), NOW, RETENTION)


def test_a_valid_event_parses_with_utc_time() -> None:
    event = parse(good(ts="2026-11-24T13:00:00+01:00"))
    assert isinstance(event, Event)
    assert event.type is EventType.ADD_TO_CART
    assert event.ts == NOW
    assert event.ts.tzinfo == UTC


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", Reason.EMPTY),
        (b"x" * (MAX_RECORD_BYTES + 1), Reason.TOO_LARGE),
        (b'{"event_id": "\xff"}', Reason.NOT_UTF8),
        (b'{"event_id": "e-1", "user_', Reason.NOT_JSON),
        (b"[1, 2]", Reason.NOT_OBJECT),
        (b"[" * 5000 + b"]" * 5000, Reason.NOT_JSON),
    ],
)
def test_unreadable_records_are_rejected_with_a_reason(data: bytes, reason: Reason) -> None:
    result = parse_record(data, NOW, RETENTION)
    assert isinstance(result, Rejected)
    assert result.reason is reason
    assert result.message


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"type": "teleport"}, Reason.UNKNOWN_TYPE),
        ({"price": -1}, Reason.INVALID_FIELD),
        ({"price": 1e12}, Reason.INVALID_FIELD),
        ({"price": "cheap"}, Reason.INVALID_FIELD),
        ({"quantity": 0}, Reason.INVALID_FIELD),
        ({"quantity": 1.5}, Reason.INVALID_FIELD),
        ({"item_id": None}, Reason.INVALID_FIELD),
        ({"user_id": 12345}, Reason.INVALID_FIELD),
        ({"user_id": "u" * 500}, Reason.INVALID_FIELD),
        ({"ts": "2026-11-24T12:00:00"}, Reason.INVALID_FIELD),
        ({"ts": (NOW + timedelta(minutes=6)).isoformat()}, Reason.FUTURE_TIMESTAMP),
        ({"ts": (NOW - timedelta(days=181)).isoformat()}, Reason.STALE_TIMESTAMP),
        ({"schema_version": 2}, Reason.UNSUPPORTED_VERSION),
        ({"surprise": 1}, Reason.INVALID_FIELD),
    ],
)
def test_invalid_fields_are_rejected_with_a_reason_naming_the_field(
    overrides: dict[str, object], reason: Reason
) -> None:
    result = parse(good(**overrides))
    assert isinstance(result, Rejected), result
    assert result.reason is reason


def test_a_missing_field_is_named() -> None:
    body = good()
    del body["event_id"]
    result = parse(body)
    assert isinstance(result, Rejected)
    assert result.reason is Reason.MISSING_FIELD
    assert "event_id" in result.message


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_are_rejected(token: bytes) -> None:
    data = json.dumps(good(price=1.0)).encode().replace(b"1.0", token)
    result = parse_record(data, NOW, RETENTION)
    assert isinstance(result, Rejected)


def test_overflowing_price_is_rejected() -> None:
    data = json.dumps(good(price=1.0)).encode().replace(b"1.0", b"1e999")
    result = parse_record(data, NOW, RETENTION)
    assert isinstance(result, Rejected)
    assert result.reason is Reason.INVALID_FIELD


@pytest.mark.parametrize("consent", [None, {"analytics": False, "personalization": True}, {"analytics": "yes"}, "all"])
def test_without_analytics_consent_the_record_is_dropped_even_if_malformed(consent: object) -> None:
    body = good(type="teleport")
    body["consent"] = consent
    assert isinstance(parse(body), NoConsent)


def test_search_and_page_view_need_no_item() -> None:
    for kind in ("search", "page_view"):
        assert isinstance(parse(good(type=kind, item_id=None)), Event)


@given(st.binary(max_size=2048))
def test_parsing_arbitrary_bytes_never_raises(data: bytes) -> None:
    assert isinstance(parse_record(data, NOW, RETENTION), Event | Rejected | NoConsent)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*good(), "context", "session_id", "x"]), json_values))
def test_any_json_object_gives_an_event_or_a_reason(fields: dict[str, object]) -> None:
    body = {**good(), **fields}
    result = parse_record(json.dumps(body).encode(), NOW, RETENTION)
    if isinstance(result, Event):
        assert result.price is None or (result.price >= 0 and math.isfinite(result.price))
        assert result.quantity >= 1
    else:
        assert isinstance(result, Rejected | NoConsent)


PEPPER = b"p" * 32
PSEUDONYM = "ab" * 32


def test_a_pseudonymous_id_from_our_own_producers_is_kept_not_hashed_again() -> None:
    event = parse_record(json.dumps(good(user_id=PSEUDONYM, pseudonymous=True)).encode(), NOW, RETENTION, PEPPER)
    assert isinstance(event, Event)
    assert event.user_id == PSEUDONYM
    raw = parse_record(json.dumps(good(user_id=PSEUDONYM)).encode(), NOW, RETENTION, PEPPER)
    assert isinstance(raw, Event)
    assert raw.user_id != PSEUDONYM  # without the flag, it is a raw id like any other


@pytest.mark.parametrize("user_id", ["u-1", "AB" * 32, "ab" * 31, "someone@example.com"])
def test_a_pseudonymous_flag_on_something_not_a_pseudonym_is_refused(user_id: str) -> None:
    result = parse_record(json.dumps(good(user_id=user_id, pseudonymous=True)).encode(), NOW, RETENTION, PEPPER)
    assert isinstance(result, Rejected)
    assert result.reason is Reason.INVALID_FIELD
    assert user_id not in result.message


def test_an_impression_carries_what_was_shown() -> None:
    shown = {"slot": "for-you", "items": ["i-1", "i-2"], "experiment": "x", "variant": "b",
             "model_version": "v1", "rules_version": "r1"}  # fmt: skip
    event = parse(good(type="impression", item_id=None, impression=shown))
    assert isinstance(event, Event)
    assert event.impression is not None
    assert event.impression.items == ["i-1", "i-2"]
    missing = parse(good(type="impression", item_id=None))
    assert isinstance(missing, Rejected)
    assert "impression" in missing.message
    stray = parse(good(impression=shown))
    assert isinstance(stray, Rejected)


def test_a_consent_withdrawal_is_heard_although_it_withdraws_analytics_consent() -> None:
    withdrawal = parse(good(type="consent", item_id=None, consent={"analytics": False, "personalization": False}))
    assert isinstance(withdrawal, Event)
    assert withdrawal.type is EventType.CONSENT
    # Any other event without analytics consent is still dropped.
    assert isinstance(parse(good(consent={"analytics": False, "personalization": False})), NoConsent)
