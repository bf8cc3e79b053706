"""Ingest archives every accepted event through Firehose (moto's writes straight to the loopback S3), and keeps every
one of them through a Firehose outage, and through a Firehose and S3 outage, against a failing endpoint on loopback."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from infra.local.poller import lambda_kinesis_record
from ingest.wiring import ingest_deps
from personalization.events import Consent, Event, EventType, Impression
from personalization.identity import pseudonymize
from tests.helpers.archive_bucket import FaultyAws, archived
from tests.helpers.ingest import Ingest, real_events

PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
FALLBACK_KEY = re.compile(r"^events/dt=\d{4}-\d{2}-\d{2}/ingest-[0-9a-f]{32}\.gz$")


def put_raw(ingest: Ingest, data: bytes, key: str = "k") -> None:
    ingest.stack.client("kinesis").put_record(StreamName=ingest.stream, Data=data, PartitionKey=key)


def shard_batches(ingest: Ingest) -> list[dict[str, Any]]:
    """Everything in the stream as Lambda would deliver it: one event per shard, all its records."""
    kinesis = ingest.stack.client("kinesis")
    description = kinesis.describe_stream(StreamName=ingest.stream)["StreamDescription"]
    batches = []
    for shard in description["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=ingest.stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
        if records:
            arn = description["StreamARN"]
            wrapped = [lambda_kinesis_record(dict(r), shard["ShardId"], arn, ingest.stack.region) for r in records]
            batches.append({"Records": wrapped})
    return batches


def through(ingest: Ingest, faulty: FaultyAws, monkeypatch: pytest.MonkeyPatch, s3: bool = False) -> None:
    """Ingest, as a fresh container, reaches Firehose (and S3, if asked) through the faulty endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_FIREHOSE", faulty.url)
    if s3:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", faulty.url)
    ingest_deps.cache_clear()


def test_every_accepted_event_is_archived_once_under_its_pseudonym_and_nothing_else(ingest: Ingest) -> None:
    # Given real events with raw ids, plus what the collector and serve send (pseudonymous views, an impression,
    # a consent withdrawal without analytics consent), an event without consent, and a malformed record
    events = real_events(300)
    now = datetime.now(UTC)
    visitor = pseudonymize(b"other", "visitor")
    consent = Consent(analytics=True, personalization=True)
    own = [
        Event(event_id="own-view", pseudonymous=True, user_id=visitor, type=EventType.VIEW_PRODUCT, ts=now,
              item_id="i1", consent=consent),
        Event(event_id="own-impression", pseudonymous=True, user_id=visitor, type=EventType.IMPRESSION, ts=now,
              impression=Impression(slot="home", items=["i1", "i2"], model_version="m1", rules_version="r1"),
              consent=consent),
        Event(event_id="own-withdrawal", pseudonymous=True, user_id=visitor, type=EventType.CONSENT, ts=now,
              consent=Consent(analytics=False, personalization=False)),
    ]  # fmt: skip
    ingest.publish(events + own)
    no_consent = {"event_id": "no-consent", "user_id": "raw-7", "type": "view_product", "ts": now.isoformat(),
                  "item_id": "i9", "consent": {"analytics": False, "personalization": False}}  # fmt: skip
    put_raw(ingest, json.dumps(no_consent).encode())
    put_raw(ingest, b'{"event_id": "broken", "user_id": "raw-8", "type": "teleport"}')

    # When ingest folds the stream
    ingest.poller(batch_size=500).drain()

    # Then the archive holds every accepted event exactly once, and neither the refused nor the quarantined one
    archive = archived(ingest.stack)
    accepted = [e.event_id for e in events + own]
    assert sorted(archive.event_ids) == sorted(accepted)
    # under pseudonyms only, each line the event ingest accepted (raw ids replaced by what the profiles are keyed by)
    assert all(PSEUDONYM.match(line["user_id"]) for line in archive.events)
    by_id = {line["event_id"]: line for line in archive.events}
    for event in events[:50]:
        archived_event = Event.model_validate(by_id[event.event_id])
        expected = event.model_copy(update={"user_id": pseudonymize(ingest.pepper, event.user_id)})
        assert archived_event.model_copy(update={"pseudonymous": False}) == expected
        assert archived_event.pseudonymous
    text = archive.text()
    assert not [e.user_id for e in events if f'"{e.user_id}"'.encode() in text]
    # in moto's layout, as its Firehose writes (CONTRACTS.md); every object newline-delimited JSON
    assert all(re.match(r"^events/\d{4}/\d{2}/\d{2}/\d{2}/", key) for key in archive.objects)


def test_records_firehose_refuses_are_resent_alone_and_archived_once(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Firehose refusing two records of the first call
    events = real_events(120)
    ingest.publish(events)
    with FaultyAws(ingest.stack.endpoint_url, refuse=[[1, 5]]) as faulty:
        through(ingest, faulty, monkeypatch)

        # When ingest folds the stream
        stats = ingest.poller(batch_size=500).drain()

    # Then the next call carried exactly those two, no record was reported failed, and each event is archived once
    assert stats.reported_failures == 0
    assert len(faulty.refused[0]) == 2
    assert faulty.calls[1] == faulty.refused[0]
    assert sorted(archived(ingest.stack).event_ids) == sorted(e.event_id for e in events)


def test_with_firehose_down_profiles_update_and_events_go_to_the_bucket_in_the_same_format(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Firehose answering every call with 503
    events = real_events(200)
    ingest.publish(events)
    with FaultyAws(ingest.stack.endpoint_url, firehose_down=1000) as faulty:
        through(ingest, faulty, monkeypatch)

        # When ingest folds the stream
        batches = shard_batches(ingest)
        responses = [ingest.handler(batch) for batch in batches]

    # Then no record is reported, every profile is written, and every event sits in an object of ingest's own:
    # gzip, newline-delimited JSON, under its event date
    assert responses == [{"batchItemFailures": []}] * len(batches)
    assert len(faulty.calls) >= 2 * len(batches)  # each call was retried before falling back
    users = {pseudonymize(ingest.pepper, e.user_id) for e in events}
    assert set(ingest.snapshot()) == users
    archive = archived(ingest.stack)
    assert sorted(archive.event_ids) == sorted(e.event_id for e in events)
    assert all(FALLBACK_KEY.match(key) for key in archive.objects)
    assert all(archive.gzipped.values())
    for key, lines in archive.objects.items():
        day = key.split("/")[1].removeprefix("dt=")
        assert {Event.model_validate_json(line).ts.strftime("%Y-%m-%d") for line in lines} == {day}


def test_with_firehose_and_s3_down_records_are_reported_and_the_redelivery_archives_them(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Firehose down throughout, and S3 refusing every write of the first invocation's fallback
    events = real_events(200)
    ingest.publish(events)
    [first, *rest] = shard_batches(ingest)
    with FaultyAws(ingest.stack.endpoint_url, firehose_down=1000, s3_down=True) as faulty:
        through(ingest, faulty, monkeypatch, s3=True)

        # When Lambda invokes ingest with one shard's batch, then, S3 back, redelivers it after the failure
        with pytest.raises(BatchProcessingError) as failed:
            ingest.handler(first)
        profiles_then = ingest.snapshot()
        faulty.s3_down = False
        again = ingest.handler(first)

    # Then the first invocation fails every record it could archive nowhere (all of them here: powertools then
    # fails the invocation, and Lambda retries the whole batch), yet the profiles were written; the redelivery
    # changes no profile, reports nothing, and archives every event
    assert faulty.s3_puts_failed >= 3  # botocore's three attempts per object
    assert f"{len(first['Records'])} individual errors" in str(failed.value)
    ids = {json.loads(_data(r))["event_id"] for r in first["Records"]}
    assert profiles_then
    assert {pseudonymize(ingest.pepper, e.user_id) for e in events if e.event_id in ids} == set(profiles_then)
    assert again == {"batchItemFailures": []}
    assert ingest.snapshot() == profiles_then
    assert sorted(archived(ingest.stack).event_ids) == sorted(ids)
    assert rest  # the other shard is not needed here


def _data(record: dict[str, Any]) -> bytes:
    import base64

    return base64.b64decode(record["kinesis"]["data"])
