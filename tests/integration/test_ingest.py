"""The ingest handler against the loopback stack: real Kinesis records in, real DynamoDB items out."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.wiring import ingest_deps
from personalization.identity import pseudonymize
from personalization.profile import Profile
from store.profiles import ProfileStore
from tests.helpers.events import load_event, restamp_kinesis
from tests.helpers.ingest import Ingest, real_events
from tests.helpers.privacy import NOTHING, CapturedLogs, Privacy, personal_data


def test_the_sample_batch_applies_the_valid_record_and_quarantines_the_invalid_one(ingest: Ingest) -> None:
    # Given the sample Kinesis event from events/ (one valid record, one with an unknown type)
    event = restamp_kinesis(load_event("ingest_kinesis_batch.json"))

    # When Lambda would invoke the handler with it
    response = ingest.handler(event)

    # Then nothing is reported failed, the valid event is in a profile keyed by the pseudonym,
    # and the invalid one is quarantined with its reason, shard and sequence number
    assert response == {"batchItemFailures": []}
    stored = ingest.profiles.get(pseudonymize(ingest.pepper, "541312140"))
    assert stored is not None
    assert stored.profile.counts == {"view_product": 1}
    assert stored.profile.recent[0][0] == "44600062"
    [bad] = ingest.quarantine.all()
    assert bad.reason == "unknown_type"
    assert "teleport" in bad.message
    assert bad.shard == "shardId-000000000000"
    assert bad.seq == event["Records"][1]["kinesis"]["sequenceNumber"]
    assert bad.user == pseudonymize(ingest.pepper, "541312140")
    assert b"541312140" not in bad.raw


def test_a_real_batch_replayed_five_times_leaves_profiles_byte_identical(ingest: Ingest) -> None:
    # Given 1,000 real events in the stream, delivered once
    ingest.publish(real_events(1000))
    first = ingest.poller(batch_size=1000).drain()
    once = ingest.snapshot()
    assert first.records == 1000
    assert len(once) > 100

    # When the whole stream is delivered again, five times, from the trim horizon
    for _ in range(5):
        ingest.poller(batch_size=1000).drain()

    # Then every stored item, version included, is exactly what one delivery left
    assert ingest.snapshot() == once


class FlakyProfiles(ProfileStore):
    """The real store, except that the first save of one user fails as a throttled write would."""

    def __init__(self, inner: ProfileStore, victim: str) -> None:
        self.__dict__.update(inner.__dict__)
        self.victim = victim
        self.failed = False

    def save(self, profile: Profile, expected_version: int | None, expires_at: Any) -> int:
        if profile.user_id == self.victim and not self.failed:
            self.failed = True
            raise RuntimeError("ProvisionedThroughputExceededException (injected)")
        return super().save(profile, expected_version, expires_at)


def test_a_failed_write_is_reported_redelivered_and_ends_as_one_clean_run(ingest: Ingest, clean_stack: Any) -> None:
    events = real_events(600)
    # Given the end state of a clean single run
    ingest.publish(events)
    ingest.poller(batch_size=600).drain()
    clean = {pk: item["d"] for pk, item in ingest.snapshot().items()}

    # And a fresh stack where one user's first write will fail
    clean_stack.reset()
    ingest_deps.cache_clear()
    victim_raw = events[len(events) // 2].user_id
    victim = pseudonymize(ingest.pepper, victim_raw)
    deps = ingest_deps()
    deps.writer.profiles = FlakyProfiles(deps.writer.profiles, victim)
    ingest.publish(events)

    # When the batch is delivered, the handler reports the victim's records
    poller = ingest.poller(batch_size=600)
    stats = poller.drain()

    # Then Lambda's redelivery (from the lowest reported sequence number) completes the profile,
    # and every profile equals the clean run's
    victim_events = sum(1 for e in events if e.user_id == victim_raw)
    assert stats.reported_failures == victim_events
    assert stats.records == len(events)
    assert {pk: item["d"] for pk, item in ingest.snapshot().items()} == clean


def test_nothing_stored_or_logged_contains_a_raw_user_id_an_email_or_an_ip_address(
    privacy: Privacy, captured_logs: CapturedLogs
) -> None:
    # Given real events, events of a person the shop knows by e-mail address, malformed records that name their
    # users (one with IP addresses in its referrer and in a stray field), an erasure, and a replay after it
    ingest = privacy.ingest
    events = real_events(400)
    by_email = "dana.lee@example.com"
    ingest.publish(
        [*events, *(e.model_copy(update={"user_id": by_email, "event_id": f"dana-{i}"}) for i, e in enumerate(events))]
    )
    bad = restamp_kinesis(load_event("ingest_kinesis_batch.json"))
    ingest.handler(bad)
    broken = (
        b'{"user_id":"%s","type":"view_product","ts":"not a time","client_ip":"198.51.100.23",'
        b'"context":{"referrer":"http://[2001:db8::7]/p"},"consent":{"analytics":true,"personalization":true}}'
    )
    ingest.stack.client("kinesis").put_record(
        StreamName=ingest.stream, Data=broken % by_email.encode(), PartitionKey=privacy.pseudonym(by_email)
    )
    ingest.poller().drain()
    privacy.erase_admin({"user_id": events[0].user_id})
    ingest.poller().drain()

    # Then no raw id, e-mail or IP address appears in any stored item of any table (profiles, quarantine,
    # erasure log), nor in anything the functions logged
    stored = ingest.everything_stored()
    raw_ids = {e.user_id for e in events} | {"541312140", by_email}
    assert sorted(raw for raw in raw_ids if raw in stored) == []
    assert personal_data(stored, raw_ids) == NOTHING
    assert personal_data(captured_logs.text(), raw_ids) == NOTHING
    # (and the audit had something to look at: the masked bad records and the erasure are in there)
    [masked] = [r for r in ingest.quarantine.all() if r.user == privacy.pseudonym(by_email)]
    # (the referrer's address masked in place; the stray client_ip field is not in the schema: no value kept)
    assert masked.raw.count(b"<ip>") == 1
    assert b'"client_ip":"<redacted>"' in masked.raw
    assert stored.count('"admin"') == 1


@pytest.mark.parametrize("analytics", [False])
def test_events_without_analytics_consent_leave_no_trace(ingest: Ingest, analytics: bool) -> None:
    [event] = real_events(1)
    refused = event.model_copy(update={"consent": event.consent.model_copy(update={"analytics": analytics})})
    ingest.publish([refused])
    ingest.poller().drain()
    assert ingest.snapshot() == {}
    assert ingest.quarantine.all() == []
