"""Raw ids never reach a stored item, and an erasure finds every quarantined record of its person, through the
real ingest handler (behind the event-source poller), the erase function and the loopback tables."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalization.events import Consent, Event, EventType
from personalization.identity import pseudonymize
from tests.helpers.hostile_ids import HostileRecord, hostile_records, leaked
from tests.helpers.privacy import Privacy

CONSENTED = {"analytics": True, "personalization": True}
NOW = datetime.now(UTC)


def archived(privacy: Privacy) -> bytes:
    """Every object in the event archive (what ingest delivered through Firehose), gzip inflated."""
    import gzip

    stack = privacy.ingest.stack
    s3 = stack.client("s3")
    bucket = stack.physical_names["ArchiveBucket"]
    blobs = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            blob = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            blobs.append(gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob)
    return b"\n".join(blobs)


def put(privacy: Privacy, data: bytes, partition: str = "p") -> None:
    privacy.ingest.stack.client("kinesis").put_record(
        StreamName=privacy.ingest.stream, Data=data, PartitionKey=partition
    )


def view(raw_user: str) -> Event:
    return Event(
        event_id=uuid.uuid4().hex,
        user_id=raw_user,
        type=EventType.VIEW_PRODUCT,
        ts=datetime.now(UTC),
        item_id="i-1",
        consent=Consent(analytics=True, personalization=True),
    )


def test_a_record_the_collector_admitted_and_ingest_quarantined_is_found_by_its_persons_erasure(
    privacy: Privacy,
) -> None:
    # Given an event as our collector writes it (the visitor's pseudonym, flagged), arriving past the retention
    pseudonym = uuid.uuid4().hex * 2
    stale = Event(
        event_id=uuid.uuid4().hex,
        pseudonymous=True,
        user_id=pseudonym,
        type=EventType.PAGE_VIEW,
        ts=datetime.now(UTC) - timedelta(days=400),
        consent=Consent(analytics=True, personalization=True),
    )
    put(privacy, stale.to_json_bytes(), pseudonym)
    privacy.ingest.poller().drain()
    [kept] = privacy.ingest.quarantine.all()
    assert (kept.reason, kept.user) == ("stale_timestamp", pseudonym)

    # When the person erases their data (their token names that pseudonym)
    receipt = privacy.client.delete("/v1/profile", headers={"x-pz-token": privacy.token_for_pseudonym(pseudonym)})

    # Then the quarantined record is found and gone
    assert receipt.status_code == 200
    assert receipt.json()["quarantined"] == 1
    assert privacy.ingest.quarantine.all() == []


def test_a_raw_id_the_producers_encoder_escaped_is_found_by_an_erasure_by_raw_id(privacy: Privacy) -> None:
    # Given bad records whose raw ids the producer's encoder escaped (ensure_ascii, "\/")
    raw_ids = ["zoë.müller@example", "shop/customer/541312140", "客户-77"]
    for raw in raw_ids:
        record = {"event_id": uuid.uuid4().hex, "user_id": raw, "type": "teleport", "ts": NOW.isoformat()}
        text = json.dumps({**record, "consent": CONSENTED}, ensure_ascii=True).replace("/", "\\/")
        put(privacy, text.encode())
        put(privacy, text.encode()[: text.index('"type"')])  # and cut short
    privacy.ingest.poller().drain()
    assert len(privacy.ingest.quarantine.all()) == 2 * len(raw_ids)

    # When an operator erases each by the raw id, as the shop knows it
    receipts = [privacy.erase_admin({"user_id": raw}) for raw in raw_ids]

    # Then each erasure found both of its person's records, and none is left
    assert [receipt["quarantined"] for receipt in receipts] == [2, 2, 2]
    assert privacy.ingest.quarantine.all() == []


@given(st.lists(hostile_records(NOW), min_size=1, max_size=6))
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_property_no_stored_item_holds_a_raw_id_however_a_record_carried_it(
    privacy: Privacy, records: list[HostileRecord]
) -> None:
    # Given hostile records among valid events of the same people, through the stream and the real handler
    raw_ids = sorted({record.raw_id for record in records})
    privacy.ingest.publish(view(raw) for raw in raw_ids)
    for record in records:
        put(privacy, record.data)
    privacy.ingest.poller().drain()
    stored = privacy.ingest.everything_stored().encode("utf-8", errors="replace") + archived(privacy)
    assert not [raw for raw in raw_ids if leaked(raw, stored)]
    # (and the audit saw the archive: the people's valid events are there, pseudonymous)
    assert archived(privacy).count(b'"view_product"') >= len(raw_ids)

    # When an operator erases each person by raw id
    for raw in raw_ids:
        privacy.erase_admin({"user_id": raw})

    # Then every record filed under their user id is gone, and still no stored item (profiles, tombstones,
    # quarantine, erasure log, archive) holds a raw id
    filed = {pseudonymize(privacy.pepper, record.raw_id) for record in records if record.filed}
    assert not [r for r in privacy.ingest.quarantine.all() if r.user in filed]
    stored = privacy.ingest.everything_stored().encode("utf-8", errors="replace") + archived(privacy)
    assert not [raw for raw in raw_ids if leaked(raw, stored)]
