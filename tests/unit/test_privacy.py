"""Privacy without AWS: the access view, the erasure steps, masking of contact data, erased people in ingest
batches and in training. No sockets: the stores here are in memory."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from erase.usecase import InvalidEraseRequest, parse_request
from ingest.batch import BatchWriter, Classifier, RawRecord
from model_export.training.privacy import drop_erased
from personalization.events import Consent, Event, EventType
from personalization.identity import pseudonymize
from personalization.privacy import ErasurePath, ErasureRecord, describe, erase_person
from personalization.profile import FoldSettings, PositionedEvent, Profile, fold
from personalization.scrub import scrub_bytes, scrub_text
from store.profiles import Erased, ProfileStore, StoredProfile, VersionConflict
from store.quarantine import QuarantinedRecord, QuarantineStore

T0 = datetime(2026, 11, 1, tzinfo=UTC)
USER = "a" * 64
OTHER = "b" * 64
PEPPER = b"p" * 32
CONSENT = Consent(analytics=True, personalization=True)


def event(n: int, user: str = USER, kind: EventType = EventType.VIEW_PRODUCT, minutes: float = 0) -> Event:
    return Event(
        event_id=f"e{n}",
        user_id=user,
        type=kind,
        ts=T0 + timedelta(minutes=minutes),
        item_id=f"i{n}",
        category="shoes",
        price=5.0,
        consent=CONSENT,
    )


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


# -- access ------------------------------------------------------------------------------------------------


def test_the_access_view_is_the_stored_profile_in_readable_form() -> None:
    # Given a profile with views, a cart, a purchase and a session
    batch = [
        PositionedEvent(event(1, minutes=1), "s", 1),
        PositionedEvent(event(2, kind=EventType.ADD_TO_CART, minutes=2), "s", 2),
        PositionedEvent(event(3, kind=EventType.PURCHASE, minutes=3), "s", 3),
    ]
    profile, _ = fold(None, USER, batch)
    now = T0 + timedelta(days=7)
    expires = T0 + timedelta(days=180)

    # When it is described for its owner
    view = describe(profile, 4, expires, ms(now), FoldSettings(affinity_half_life_ms=7 * 24 * 3600 * 1000))

    # Then every stored field is there, with type names and times instead of codes and epoch milliseconds
    assert view.pseudonymous_id == USER
    assert view.consent.model_dump() == {
        "analytics": True,
        "personalization": True,
        "withdrawn_at": None,
        "decision": None,
    }
    assert view.first_seen == T0 + timedelta(minutes=1)
    assert view.counts == {"view_product": 1, "add_to_cart": 1, "purchase": 1}
    assert view.last_seen["purchase"] == T0 + timedelta(minutes=3)
    assert [(r.item_id, r.event_type, r.at) for r in view.recent] == [
        ("i1", "view_product", T0 + timedelta(minutes=1)),
        ("i2", "add_to_cart", T0 + timedelta(minutes=2)),
        ("i3", "purchase", T0 + timedelta(minutes=3)),
    ]
    assert [(c.item_id, c.quantity) for c in view.cart] == [("i2", 1)]
    assert [(p.item_id, p.at) for p in view.purchased] == [("i3", T0 + timedelta(minutes=3))]
    assert view.rfm.model_dump() == {
        "last_event_at": T0 + timedelta(minutes=3),
        "events": 3,
        "monetary": 5.0,
        "visits": 1,
        "orders": 1,
        "cart_episodes": 1,
    }
    # T0 is midnight UTC and the events say no device nor country: three events in the night, no device mix
    assert view.mix.model_dump() == {
        "time_of_day": {"night": 3, "morning": 0, "afternoon": 0, "evening": 0},
        "devices": {},
        "last_country": None,
    }
    assert view.session is not None
    assert view.session.items == ["i1", "i2", "i3"]
    assert view.session.last_event_type == "purchase"
    # Affinities as stored, and decayed to now with the half-life serve uses (one half-life later: halved)
    assert view.affinities.stored_scores == profile.affinity
    assert view.affinities.scores["shoes"] == pytest.approx(profile.affinity["shoes"] / 2, rel=1e-3)
    assert view.technical.model_dump() == {
        "version": 4,
        "stream_positions": 1,
        "recent_event_ids": 3,
        "expires_at": expires,
    }
    # And ISO 8601 UTC on the wire
    assert view.model_dump(mode="json")["first_seen"] == "2026-11-01T00:01:00Z"


# -- erasure -----------------------------------------------------------------------------------------------


class Steps:
    """The three stores in memory, recording the order they were called in."""

    def __init__(self, had_profile: bool, quarantined: int) -> None:
        self.calls: list[str] = []
        self.had_profile = had_profile
        self.quarantined = quarantined
        self.logged: list[ErasureRecord] = []

    def erase(self, user_id: str, tombstone_until: datetime) -> bool:
        self.calls.append(f"tombstone {user_id} until {tombstone_until.isoformat()}")
        return self.had_profile

    def delete_user(self, user: str) -> int:
        self.calls.append(f"quarantine {user}")
        return self.quarantined

    def record(self, entry: ErasureRecord) -> None:
        self.calls.append("log")
        self.logged.append(entry)


def test_erasure_writes_the_tombstone_first_and_logs_counts_without_naming_anyone() -> None:
    steps = Steps(had_profile=True, quarantined=3)
    record = erase_person(
        USER,
        ErasurePath.SELF_SERVICE,
        profiles=steps,
        quarantine=steps,
        log=steps,
        now=T0,
        tombstone_for=timedelta(days=30),
        new_id=lambda: "e1",
    )
    assert steps.calls == [
        f"tombstone {USER} until {(T0 + timedelta(days=30)).isoformat()}",
        f"quarantine {USER}",
        "log",
    ]
    assert record == ErasureRecord(
        erasure_id="e1",
        at=T0,
        path=ErasurePath.SELF_SERVICE,
        profiles=1,
        quarantined=3,
        tombstone_until=T0 + timedelta(days=30),
    )
    assert steps.logged == [record]
    assert USER not in record.model_dump_json()


def test_an_erasure_request_names_exactly_one_person_and_errors_never_repeat_the_id() -> None:
    assert parse_request({"user_id": "alice@example.com"}).user_id == "alice@example.com"
    assert parse_request({"pseudonym": USER}).pseudonym == USER
    for bad in ({}, {"user_id": "alice@example.com", "pseudonym": USER}, {"pseudonym": "alice@example.com"}):
        with pytest.raises(InvalidEraseRequest) as caught:
            parse_request(bad)
        assert "alice" not in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__


# -- contact data ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"email":"alice.smith+shop@example.co.uk"}', b'{"email":"<email>"}'),
        (b'"referrer":"http://203.0.113.7:8080/p?x=1"', b'"referrer":"http://<ip>:8080/p?x=1"'),
        (b'"ip":"2001:db8::8a2e:370:7334"', b'"ip":"<ip>"'),
        (b'"ip":"::ffff:198.51.100.1"', b'"ip":"::ffff:<ip>"'),
        (b'"ip":"fe80::1"', b'"ip":"<ip>"'),
        (b"cut short: bob@exam", b"cut short: <email>"),
    ],
)
def test_e_mail_and_ip_addresses_are_masked(text: bytes, expected: bytes) -> None:
    assert scrub_bytes(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        b'{"ts":"2026-11-01T12:30:45.123+00:00"}',
        b'{"version":"1.2.300.4","price":19.99}',
        b'{"a":"b:c","list":[1,2,3]}',
        b'{"user_id":"' + b"f" * 64 + b'"}',
    ],
)
def test_times_versions_and_pseudonyms_are_left_alone(text: bytes) -> None:
    assert scrub_bytes(text) == text


def test_a_quarantined_record_keeps_no_raw_id_e_mail_or_ip() -> None:
    # Given a malformed record that names its user by e-mail and carries an IP in a stray field and the referrer
    data = (
        b'{"event_id":"x","user_id":"carol@example.org","type":"teleport","ts":"2026-11-01T00:00:00Z",'
        b'"context":{"referrer":"http://192.0.2.44/"},"client_ip":"2001:db8::1",'
        b'"consent":{"analytics":true,"personalization":true}}'
    )
    record = RawRecord(data, "shard-0", "7", T0)

    # When it is classified as ingest does
    outcome = Classifier(PEPPER, T0, timedelta(days=1)).classify(record).outcome

    # Then what would be stored names the person only by pseudonym, and no contact data is left
    assert isinstance(outcome, QuarantinedRecord)
    assert outcome.user == pseudonymize(PEPPER, "carol@example.org")
    stored = outcome.raw + outcome.message.encode()
    for secret in (b"carol", b"example.org", b"192.0.2.44", b"2001:db8::1"):
        assert secret not in stored
    assert scrub_text(outcome.message) == outcome.message


# -- ingest and tombstones ---------------------------------------------------------------------------------


class MemoryProfiles(ProfileStore):
    """ProfileStore's interface in memory; `erase_before_save` plays an erasure racing the batch."""

    def __init__(self, items: dict[str, StoredProfile | Erased]) -> None:
        self.items = items
        self.erase_before_save: str | None = None
        self.saves = 0

    def read(self, user_id: str, consistent: bool = False) -> StoredProfile | Erased | None:
        return self.items.get(user_id)

    def read_many(self, user_ids: Iterable[str]) -> dict[str, StoredProfile | Erased]:
        return {user: self.items[user] for user in user_ids if user in self.items}

    def save(self, profile: Profile, expected_version: int | None, expires_at: datetime) -> int:
        if profile.user_id == self.erase_before_save:
            self.erase(profile.user_id, T0 + timedelta(days=30))
        current = self.items.get(profile.user_id)
        if (current.version if current else None) != expected_version:
            raise VersionConflict(profile.user_id)
        version = (expected_version or 0) + 1
        self.items[profile.user_id] = StoredProfile(profile, version, expires_at)
        self.saves += 1
        return version

    def erase(self, user_id: str, tombstone_until: datetime) -> bool:
        current = self.items.get(user_id)
        self.items[user_id] = Erased(((current.version or 0) if current else 0) + 1, tombstone_until)
        return isinstance(current, StoredProfile)


class MemoryQuarantine(QuarantineStore):
    def __init__(self) -> None:
        self.records: list[QuarantinedRecord] = []

    def put_many(self, records: Iterable[QuarantinedRecord]) -> None:
        self.records.extend(records)


def writer(profiles: MemoryProfiles, quarantine: MemoryQuarantine) -> BatchWriter:
    return BatchWriter(profiles, quarantine, FoldSettings(), timedelta(days=180), max_conflict_retries=3)


def classified(events: list[tuple[Event, int]], bad: list[tuple[str, int]] = []) -> list[Any]:  # noqa: B006
    out = []
    for evt, seq in events:
        raw = RawRecord(evt.model_copy(update={"ts": datetime.now(UTC)}).to_json_bytes(), "s", str(seq), T0)
        out.append(Classifier(PEPPER, datetime.now(UTC), timedelta(days=1)).classify(raw))
    for user, seq in bad:
        body = b'{"user_id":"%s","type":"teleport","consent":{"analytics":true,"personalization":true}}'
        raw = RawRecord(body % user.encode(), "s", str(seq), T0)
        out.append(Classifier(PEPPER, datetime.now(UTC), timedelta(days=1)).classify(raw))
    return out


def pseudonymous(evt: Event) -> Event:
    return evt.model_copy(update={"pseudonymous": True})


def test_a_batch_drops_and_counts_the_events_and_bad_records_of_erased_people() -> None:
    # Given one erased person and one known person
    profiles = MemoryProfiles({USER: Erased(3, T0 + timedelta(days=30))})
    quarantine = MemoryQuarantine()
    # (bad records name users by raw id; ingest pseudonymizes them with the pepper)
    raw_user = "dave@example.net"
    profiles.items[pseudonymize(PEPPER, raw_user)] = Erased(1, T0 + timedelta(days=30))

    # When a batch holds events of both, and bad records of the erased raw user and of someone else
    batch = classified(
        [(pseudonymous(event(1)), 1), (pseudonymous(event(2)), 2), (pseudonymous(event(3, OTHER)), 3)],
        bad=[(raw_user, 4), ("erin", 5)],
    )
    result = writer(profiles, quarantine).write(batch)

    # Then the erased people's events and bad records are dropped and counted; nothing is written for them
    assert result.dropped_erased == 3
    assert isinstance(profiles.items[USER], Erased)
    assert isinstance(profiles.items[OTHER], StoredProfile)
    assert [r.user for r in quarantine.records] == [pseudonymize(PEPPER, "erin")]
    assert result.failed_seqs == []


def test_a_write_racing_an_erasure_loses_and_the_tombstone_stays() -> None:
    # Given a stored profile, read by ingest before an erasure lands
    profiles = MemoryProfiles({})
    first, _ = fold(None, USER, [PositionedEvent(event(1), "s", 1)])
    profiles.items[USER] = StoredProfile(first, 1, T0)
    profiles.erase_before_save = USER

    # When the batch's conditional write meets the tombstone
    result = writer(profiles, MemoryQuarantine()).write(classified([(pseudonymous(event(2)), 2)]))

    # Then the write fails its version condition, the re-read finds the tombstone, and the event is dropped
    assert result.conflicts == 1
    assert result.dropped_erased == 1
    assert result.failed_seqs == []
    assert isinstance(profiles.items[USER], Erased)


# -- training ----------------------------------------------------------------------------------------------


def test_training_leaves_out_erased_people_by_raw_id_or_by_pseudonym() -> None:
    frame = pd.DataFrame({"user_id": ["u1", "u2", "u1", "u3", USER], "item_id": ["a", "b", "c", "d", "e"]})
    erased = {pseudonymize(PEPPER, "u1"), USER}
    kept, excluded = drop_erased(frame, erased, PEPPER)
    assert kept["user_id"].tolist() == ["u2", "u3"]
    assert (excluded.people, excluded.events) == (2, 3)
