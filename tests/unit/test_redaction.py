"""The one redaction rule: what the quarantine keeps of a rejected record holds no raw id of a person."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings

from ingest.batch import Classifier, RawRecord
from personalization.events import NoConsent
from personalization.identity import pseudonymize
from personalization.redaction import redact
from store.quarantine import QuarantinedRecord
from tests.helpers.hostile_ids import HostileRecord, hostile_records, leaked

T0 = datetime(2026, 11, 1, tzinfo=UTC)
PEPPER = b"p" * 32
RAW = "541312140"
CONSENT = {"analytics": True, "personalization": True}


def quarantined(data: bytes, now: datetime = T0) -> QuarantinedRecord:
    outcome = Classifier(PEPPER, now, timedelta(days=180)).classify(RawRecord(data, "shard-0", "1", now)).outcome
    assert isinstance(outcome, QuarantinedRecord)
    return outcome


def event(**fields: object) -> dict[str, object]:
    return {"event_id": "e", "type": "view_product", "ts": T0.isoformat(), "item_id": "i", "consent": CONSENT, **fields}


@pytest.mark.parametrize(
    "body",
    [
        event(user_id=RAW, userId=RAW),  # another spelling of the user id
        event(user_id=RAW, context={"user_id": RAW}),  # nested in context
        event(user_id=RAW, customer={"id": RAW, "tier": "gold"}),  # a customer object
        event(customer={"id": RAW}),  # no user_id at all
        event(user_id=RAW, session_id=f"s-{RAW}", context={"page": f"/u/{RAW}", "x": 1}),  # copied into fields
        event(user_id=RAW, price=f"{RAW}"),  # copied into a field whose value the message shows
        event(user_id=[RAW, "other"]),
        event(user_id=RAW, **{RAW: "a key spelled as the id"}),
    ],
)
def test_no_raw_id_reaches_the_quarantine_record_or_message(body: dict[str, object]) -> None:
    kept = quarantined(json.dumps(body).encode())
    assert RAW not in kept.message
    assert RAW.encode() not in kept.raw
    # The schema's own fields stay readable for whoever debugs it
    assert json.loads(kept.raw)["type"] == "view_product"


def test_an_id_under_a_key_spelled_with_json_escapes_is_not_kept() -> None:
    data = b'{"\\u0075ser_id":"541312140","us\\u0065rId":"541312140","type":"teleport","consent":{"analytics":true}}'
    kept = quarantined(data)
    assert RAW.encode() not in kept.raw
    assert RAW not in kept.message
    assert kept.user == pseudonymize(PEPPER, RAW)


def test_a_record_the_collector_admitted_is_filed_under_its_own_pseudonym() -> None:
    # Given an event our collector admitted (user_id is the pseudonym already), arriving after the retention
    pseudonym = pseudonymize(PEPPER, RAW)
    stale = event(user_id=pseudonym, pseudonymous=True, ts=(T0 - timedelta(days=400)).isoformat())

    # When ingest quarantines it as stale, it files it under that pseudonym, not a pseudonym of it
    kept = quarantined(json.dumps(stale).encode())
    assert kept.reason == "stale_timestamp"
    assert kept.user == pseudonym
    # And the same when the record is broken
    assert redact(PEPPER, json.dumps(stale).encode()[:-1]).user == pseudonym


@pytest.mark.parametrize("raw_id", ["zoë@example", "ünïcødé-42", "a/b/c", "中文-7", "x\\y"])
@pytest.mark.parametrize("cut", [False, True])
def test_an_id_the_producers_encoder_escaped_is_filed_under_the_pseudonym_of_the_id(raw_id: str, cut: bool) -> None:
    text = json.dumps({"user_id": raw_id, **event(type="teleport")}, ensure_ascii=True).replace("/", "\\/")
    data = text.encode()[: text.index('"type"')] if cut else text.encode()
    assert redact(PEPPER, data).user == pseudonymize(PEPPER, raw_id)


@given(hostile_records(T0))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_no_hostile_record_leaves_its_raw_id_in_what_the_quarantine_keeps(record: HostileRecord) -> None:
    outcome = Classifier(PEPPER, T0, timedelta(days=180)).classify(RawRecord(record.data, "s", "1", T0)).outcome
    # Every generated record is invalid: it is quarantined, or dropped for lack of consent (nothing kept)
    assert isinstance(outcome, QuarantinedRecord | NoConsent)
    if isinstance(outcome, QuarantinedRecord):
        assert not leaked(record.raw_id, outcome.raw), outcome.raw
        assert not leaked(record.raw_id, outcome.message.encode()), outcome.message
        if record.filed:
            assert outcome.user == pseudonymize(PEPPER, record.raw_id)
