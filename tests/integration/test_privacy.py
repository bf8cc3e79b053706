"""Privacy end to end on the loopback stack: consent, access, erasure that sticks, training without the erased,
and nothing personal in any log or table.

Ingest runs as Lambda would run it (the real handler behind the event-source poller), the erase function as
its handler and its CLI, serve as its ASGI app in-process. Every test's logs are checked for raw ids, e-mail
and IP addresses at the end (the `no_personal_data_in_logs` fixture).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from erase.__main__ import main as erase_cli
from ingest.wiring import ingest_deps
from model_export import cli as model_cli
from model_export.data.canonical import data_hash, normalize
from model_export.publishing import folder as version_folder
from model_export.training.training import train_models
from personalization.events import Consent, Event, EventType
from personalization.privacy import ErasurePath, ProfileView, describe
from personalization.profile import FoldSettings
from store import codec
from store.profiles import Erased, ProfileStore, StoredProfile
from tests.helpers.data import rees46_sample
from tests.helpers.events import load_event, restamp_kinesis
from tests.helpers.ingest import real_events, stored_text
from tests.helpers.privacy import NOTHING, CapturedLogs, Privacy, personal_data

ALICE = "alice@example.com"
BOB = "bob.jones+shop@example.org"
CONSENTED = Consent(analytics=True, personalization=True)
ANALYTICS_ONLY = Consent(analytics=True, personalization=False)
REFUSED = Consent(analytics=False, personalization=False)

# Raw ids every test here may have sent, for the log audit (the real sample's ids are added per test).
RAW_IDS: set[str] = {ALICE, BOB}


@pytest.fixture(autouse=True)
def no_personal_data_in_logs(captured_logs: CapturedLogs) -> Iterator[None]:
    """After each test: nothing the functions logged or printed holds a raw id, an e-mail or an IP address."""
    yield
    assert personal_data(captured_logs.text(), RAW_IDS) == NOTHING


def as_user(events: Iterable[Event], raw_user: str, consent: Consent = CONSENTED) -> list[Event]:
    """The sample's events, as if `raw_user` had sent them (fresh event ids, so none is taken for a duplicate)."""
    return [
        e.model_copy(update={"user_id": raw_user, "event_id": uuid.uuid4().hex, "consent": consent}) for e in events
    ]


def consent_event(raw_user: str, consent: Consent) -> Event:
    return Event(
        event_id=uuid.uuid4().hex, user_id=raw_user, type=EventType.CONSENT, ts=datetime.now(UTC), consent=consent
    )


def bad_record(raw_user: str) -> bytes:
    """A record ingest must quarantine (unknown type), naming its user, with an IP in the referrer."""
    return json.dumps(
        {
            "event_id": uuid.uuid4().hex,
            "user_id": raw_user,
            "type": "teleport",
            "ts": datetime.now(UTC).isoformat(),
            "context": {"referrer": "http://203.0.113.9/landing"},
            "consent": {"analytics": True, "personalization": True},
        }
    ).encode()


def put_raw(privacy: Privacy, data: bytes, raw_user: str) -> None:
    stack = privacy.ingest.stack
    stack.client("kinesis").put_record(
        StreamName=privacy.ingest.stream, Data=data, PartitionKey=privacy.pseudonym(raw_user)
    )


def most_active(events: list[Event]) -> str:
    return Counter(e.user_id for e in events).most_common(1)[0][0]


def stored_item(privacy: Privacy, raw_user: str) -> dict[str, Any] | None:
    return privacy.ingest.snapshot().get(privacy.pseudonym(raw_user))


def from_now(events: list[Event]) -> list[Event]:
    """The events stamped from now on, a millisecond apart (the sample's stamps lie in the past)."""
    now = datetime.now(UTC)
    return [e.model_copy(update={"ts": now + timedelta(milliseconds=i)}) for i, e in enumerate(events)]


def quarantined_users(privacy: Privacy) -> list[str | None]:
    return [record.user for record in privacy.ingest.quarantine.all()]


def test_the_log_audit_sees_what_it_looks_for(captured_logs: CapturedLogs) -> None:
    # A leak logged the way the functions log, through the powertools logger: the audit must find each kind
    from observability import logger

    logger.info("leak", extra={"who": ALICE, "from": "203.0.113.5", "via": "2001:db8::1", "id": "541312140"})
    found = personal_data(captured_logs.text(), {"541312140"})
    assert found == {"raw_ids": ["541312140"], "emails": [ALICE], "ips": ["2001:db8::1", "203.0.113.5"]}
    # Times, versions and loopback are not addresses of anyone
    assert personal_data("at 12:30:45.123 v1.2.300.4 from 127.0.0.1 ::1", set()) == NOTHING
    captured_logs.clear()  # so the fixture's own audit of this test passes


# -- consent -----------------------------------------------------------------------------------------------


def test_withdrawing_consent_wipes_the_history_and_no_history_grows_until_consent_is_given_again(
    privacy: Privacy,
) -> None:
    sample = real_events(60)
    # Given Bob's history, folded by ingest
    privacy.ingest.publish(as_user(sample[:20], BOB))
    privacy.ingest.poller().drain()
    before = privacy.client.get("/v1/profile", headers={"x-pz-token": privacy.token(BOB)}).json()
    assert sum(before["counts"].values()) == 20

    # When he withdraws personalization consent, then keeps browsing with analytics consent only (and once
    # with no consent at all, which ingest drops before it reaches anything)
    withdrawal = consent_event(BOB, ANALYTICS_ONLY)
    privacy.ingest.publish(
        [
            withdrawal,
            *as_user(sample[20:40], BOB, ANALYTICS_ONLY),
            *as_user(sample[40:41], BOB, REFUSED),
        ]
    )
    privacy.ingest.poller().drain()

    # Then the stored profile holds his consent state and exactly-once bookkeeping, and no history at all
    item = stored_item(privacy, BOB)
    assert item is not None
    profile = codec.decode(privacy.pseudonym(BOB), item["d"]["B"])
    assert not profile.has_history
    assert (profile.analytics, profile.personalization) == (True, False)
    view = privacy.client.get("/v1/profile", headers={"x-pz-token": privacy.token(BOB)}).json()
    assert view["consent"]["personalization"] is False
    assert (view["counts"], view["recent"], view["cart"], view["purchased"]) == ({}, [], [], [])
    assert (view["first_seen"], view["session"], view["rfm"]["events"]) == (None, None, 0)
    assert view["affinities"]["stored_scores"] == {}

    # And when he opts in again, history grows from then on only: events stamped before his withdrawal that
    # arrive late are not kept, the ones after it are
    late = as_user(sample[41:43], BOB)
    assert all(e.ts < withdrawal.ts for e in late)
    privacy.ingest.publish([consent_event(BOB, CONSENTED), *late, *from_now(as_user(sample[43:46], BOB))])
    privacy.ingest.poller().drain()
    again = privacy.client.get("/v1/profile", headers={"x-pz-token": privacy.token(BOB)}).json()
    assert again["consent"]["personalization"] is True
    assert sum(again["counts"].values()) == 3


# -- access ------------------------------------------------------------------------------------------------


def test_an_access_request_returns_exactly_what_is_stored_and_only_to_its_owner(privacy: Privacy) -> None:
    events = real_events(300)
    privacy.ingest.publish([*events, *as_user(events[:15], ALICE)])
    privacy.ingest.poller().drain()
    other = most_active(events)
    RAW_IDS.update(e.user_id for e in events)

    for raw_user in (ALICE, other):
        # When the person asks with their own token
        response = privacy.client.get("/v1/profile", headers={"x-pz-token": privacy.token(raw_user)})

        # Then the answer is private, never stored by any cache, and is the stored item decoded, field by field
        assert response.status_code == 200
        assert response.headers["cache-control"] == "private, no-store"
        view = ProfileView.model_validate(response.json())
        item = stored_item(privacy, raw_user)
        assert item is not None
        decoded = codec.decode(privacy.pseudonym(raw_user), item["d"]["B"])
        expires = datetime.fromtimestamp(int(item["ttl"]["N"]), UTC)
        as_of_ms = int(view.affinities.as_of.timestamp() * 1000)
        expected = describe(decoded, int(item["v"]["N"]), expires, as_of_ms, FoldSettings())
        assert view == expected
        assert view.pseudonymous_id == privacy.pseudonym(raw_user)

    # And a token only ever shows its own holder's data (Alice's token: Alice's pseudonym and her 15 events)
    privacy.client.cookies.set("pz_id", privacy.token(ALICE))
    alice = privacy.client.get("/v1/profile").json()
    privacy.client.cookies.clear()
    assert alice["pseudonymous_id"] == privacy.pseudonym(ALICE)
    assert sum(alice["counts"].values()) == 15


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_no_or_an_invalid_token_gets_401_and_changes_nothing(privacy: Privacy, method: str) -> None:
    privacy.ingest.publish(as_user(real_events(5), ALICE))
    privacy.ingest.poller().drain()
    before = privacy.ingest.snapshot()
    forged = privacy.token(ALICE)[:-4] + "AAAA"
    expired = privacy.token(ALICE, ttl=-10)
    for headers in ({}, {"x-pz-token": forged}, {"x-pz-token": expired}, {"x-pz-token": "x" * 5000}):
        response = privacy.client.request(method, "/v1/profile", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["cache-control"] == "private, no-store"
    assert privacy.ingest.snapshot() == before


# -- erasure -----------------------------------------------------------------------------------------------


def test_self_service_erasure_then_access_finds_nothing_and_other_people_are_untouched(privacy: Privacy) -> None:
    # Given Alice and Bob, each with a profile, and Alice with a quarantined record
    sample = real_events(40)
    privacy.ingest.publish([*as_user(sample[:20], ALICE), *as_user(sample[20:], BOB)])
    put_raw(privacy, bad_record(ALICE), ALICE)
    privacy.ingest.poller().drain()
    assert quarantined_users(privacy) == [privacy.pseudonym(ALICE)]
    bob_before = stored_item(privacy, BOB)

    # When Alice erases her data
    response = privacy.client.delete("/v1/profile", headers={"x-pz-token": privacy.token(ALICE)})

    # Then the receipt says what was removed and names no one, and the identity and segment cookies are dropped
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    assert sorted(cookie.split(";")[0] for cookie in response.headers.get_list("set-cookie")) == ["pz_id=", "pz_seg="]
    receipt = response.json()
    assert (receipt["path"], receipt["profiles"], receipt["quarantined"]) == ("self_service", 1, 1)
    assert privacy.pseudonym(ALICE) not in response.text

    # And her profile is gone (a tombstone in its place), her quarantined record too, Bob's profile untouched
    assert privacy.client.get("/v1/profile", headers={"x-pz-token": privacy.token(ALICE)}).status_code == 404
    assert isinstance(privacy.ingest.profiles.read(privacy.pseudonym(ALICE)), Erased)
    assert quarantined_users(privacy) == []
    assert stored_item(privacy, BOB) == bob_before
    assert privacy.client.get("/v1/profile", headers={"x-pz-token": privacy.token(BOB)}).status_code == 200

    # And the erasure log holds when, how and how much, without the pseudonym
    [logged] = privacy.erasure_log.all()
    assert logged.model_dump(mode="json") == receipt
    log_items = privacy.ingest._raw_items(privacy.env["ERASURE_LOG_TABLE"])
    assert len(log_items) == 1
    assert privacy.pseudonym(ALICE) not in stored_text(log_items)


def test_an_admin_erasure_sticks_through_a_replay_of_the_whole_stream(
    privacy: Privacy, captured_logs: CapturedLogs
) -> None:
    # Given real events and a quarantined record of their most active user, all folded once
    events = real_events(400)
    victim = most_active(events)
    RAW_IDS.update(e.user_id for e in events)
    privacy.ingest.publish(events)
    put_raw(privacy, bad_record(victim), victim)
    assert privacy.ingest.poller().drain().records == len(events) + 1
    assert isinstance(privacy.ingest.profiles.read(privacy.pseudonym(victim)), StoredProfile)
    others = {pk: item for pk, item in privacy.ingest.snapshot().items() if pk != privacy.pseudonym(victim)}

    # When an operator erases them through the erase function, by raw id
    receipt = privacy.erase_admin({"user_id": victim})

    # Then profile and quarantined record are gone, and the log records the admin erasure
    assert (receipt["path"], receipt["profiles"], receipt["quarantined"]) == ("admin", 1, 1)
    assert isinstance(privacy.ingest.profiles.read(privacy.pseudonym(victim)), Erased)
    assert quarantined_users(privacy) == []
    assert [entry.path for entry in privacy.erasure_log.all()] == [ErasurePath.ADMIN]

    # When the whole stream is delivered again from the trim horizon through the real handler
    ingest_deps.cache_clear()  # a new container, as after a deployment
    replay = privacy.ingest.poller().drain()

    # Then the person stays erased, their events and bad record are dropped and counted, everyone else is
    # byte-identical, and serve has nothing for them
    assert replay.records == len(events) + 1
    assert isinstance(privacy.ingest.profiles.read(privacy.pseudonym(victim)), Erased)
    assert quarantined_users(privacy) == []
    after = {pk: item for pk, item in privacy.ingest.snapshot().items() if pk != privacy.pseudonym(victim)}
    assert after == others
    dropped = sum(line["dropped_erased"] for line in captured_logs.lines("batch folded"))
    assert dropped == sum(1 for e in events if e.user_id == victim) + 1
    assert privacy.client.get("/v1/profile", headers={"x-pz-token": privacy.token(victim)}).status_code == 404

    # And nothing stored in any table holds a raw id, an e-mail or an IP address
    assert personal_data(privacy.ingest.everything_stored(), RAW_IDS) == NOTHING


def test_the_sample_erase_event_erases_the_person_of_the_sample_ingest_batch(privacy: Privacy) -> None:
    # Given the sample Kinesis batch from events/ (one valid event and one bad record of user 541312140)
    RAW_IDS.add("541312140")
    privacy.ingest.handler(restamp_kinesis(load_event("ingest_kinesis_batch.json")))
    assert quarantined_users(privacy) == [privacy.pseudonym("541312140")]

    # When the erase function gets its sample event, as `sam local invoke` would send it
    receipt = privacy.erase_admin(load_event("erase_admin_request.json"))

    # Then both are gone
    assert (receipt["profiles"], receipt["quarantined"]) == (1, 1)
    assert isinstance(privacy.ingest.profiles.read(privacy.pseudonym("541312140")), Erased)
    assert quarantined_users(privacy) == []


class EraseAfterRead(ProfileStore):
    """The real store; an erasure of `victim` lands right after ingest's batch read, before its write."""

    def __init__(self, inner: ProfileStore, victim: str) -> None:
        self.__dict__.update(inner.__dict__)
        self.victim = victim

    def read_many(self, user_ids: Iterable[str]) -> dict[str, StoredProfile | Erased]:
        found = super().read_many(user_ids)
        self.erase(self.victim, datetime.now(UTC) + timedelta(days=30))
        return found


def test_an_erasure_wins_the_race_against_an_ingest_write(privacy: Privacy) -> None:
    # Given Alice's profile, and a batch of hers that ingest reads before an erasure and writes after it
    sample = real_events(10)
    privacy.ingest.publish(as_user(sample[:5], ALICE))
    privacy.ingest.poller().drain()
    poller = privacy.ingest.poller()
    poller.drain()  # positions at the end of the stream
    privacy.ingest.publish(as_user(sample[5:], ALICE))
    deps = ingest_deps()
    deps.writer.profiles = EraseAfterRead(deps.writer.profiles, privacy.pseudonym(ALICE))

    # When the batch is delivered
    stats = poller.drain()

    # Then the conditional write lost to the tombstone, the re-read found it, and nothing was re-created
    assert (stats.records, stats.reported_failures) == (5, 0)
    assert isinstance(privacy.ingest.profiles.read(privacy.pseudonym(ALICE)), Erased)


def test_the_erase_cli_and_the_next_training_leave_the_erased_person_out(
    privacy: Privacy, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a canonical event file with raw ids, and one of its people erased through the CLI
    frame = rees46_sample()
    victim = frame["user_id"].value_counts().index[0]
    RAW_IDS.update(frame["user_id"])
    events_file = tmp_path / "events.csv"
    frame.to_csv(events_file, index=False)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(f"{victim}\n"))
    assert erase_cli(["--user-id", "-"]) == 0
    receipt = json.loads(capsys.readouterr().out)
    assert receipt["path"] == "admin"

    # When the model is trained with --exclude-erased (the frame reaching the trainer is recorded)
    seen: list[pd.DataFrame] = []
    real_train = train_models

    def recording(frame: pd.DataFrame, progress: bool = False, **options: Any) -> Any:
        seen.append(frame)
        return real_train(frame, progress=progress, **options)

    monkeypatch.setattr(version_folder, "train_models", recording)
    out = tmp_path / "models"
    assert model_cli.main(["train", "--events", str(events_file), "--out", str(out), "--exclude-erased"]) == 0

    # Then none of the person's events reached the trainer, and the version's manifest hashes exactly the rest
    [trained_on] = seen
    assert victim not in set(trained_on["user_id"])
    expected = normalize(frame[frame["user_id"] != victim])
    assert len(trained_on) == len(expected) == len(frame) - int((frame["user_id"] == victim).sum())
    [version] = list(out.iterdir())
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["data_hash"] == data_hash(expected)
    assert manifest["metrics"]["events"] == len(expected)
