"""The archive purge's use case over in-memory stores: what a run reads, rewrites, logs and remembers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from personalization.archive import object_body, object_lines
from personalization.identity import pseudonymize
from personalization.purge import CLOCK_MARGIN, PurgeRecord, PurgeState, purge_archive

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
ALICE, BOB, CAROL = (pseudonymize(b"p", name) for name in ("alice", "bob", "carol"))


def line(event_id: str, user: str) -> bytes:
    return json.dumps({"event_id": event_id, "user_id": user}).encode() + b"\n"


@dataclass
class Bucket:
    """Objects with the time each was last written; `reads` records what a run read."""

    objects: dict[str, tuple[bytes, datetime]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    clock: datetime = T0

    def put(self, key: str, body: bytes, at: datetime) -> None:
        self.objects[key] = (body, at)

    def keys(self, modified_since: datetime | None = None) -> Iterable[str]:
        return [k for k, (_, at) in self.objects.items() if modified_since is None or at >= modified_since]

    def read(self, key: str) -> bytes:
        self.reads.append(key)
        return self.objects[key][0]

    def replace(self, key: str, body: bytes) -> None:
        self.objects[key] = (body, self.clock)

    def delete(self, key: str) -> None:
        del self.objects[key]


@dataclass
class Stores:
    erased: set[str] = field(default_factory=set)
    bucket: Bucket = field(default_factory=Bucket)
    logged: list[PurgeRecord] = field(default_factory=list)
    state: PurgeState | None = None

    def erased_ids(self) -> Iterable[str]:
        return sorted(self.erased)

    def record_purge(self, entry: PurgeRecord) -> None:
        self.logged.append(entry)

    def load(self) -> PurgeState | None:
        return self.state

    def save(self, state: PurgeState) -> None:
        self.state = state

    def run(self, now: datetime) -> PurgeRecord:
        self.bucket.reads.clear()
        self.bucket.clock = now
        return purge_archive(tombstones=self, archive=self.bucket, log=self, state=self, now=now, new_id=lambda: "id")


def test_a_new_erasure_reads_everything_and_later_runs_only_what_was_written_since() -> None:
    # Given an archive of three old objects, one naming Alice, and Alice just erased
    stores = Stores(erased={ALICE})
    old = T0 - timedelta(days=40)
    stores.bucket.put("events/a", object_body([line("1", ALICE), line("2", BOB)]), old)
    stores.bucket.put("events/b", line("3", BOB), old)
    stores.bucket.put("events/c", line("4", CAROL), old)

    # When the purge runs, Then it reads every object and removes her line
    first = stores.run(T0)
    assert sorted(stores.bucket.reads) == ["events/a", "events/b", "events/c"]
    assert (first.full, first.objects, first.rewritten, first.events) == (True, 3, 1, 1)
    assert [json.loads(x)["event_id"] for x in object_lines(stores.bucket.objects["events/a"][0])] == ["2"]

    # Given one of her events archived after that run started (Firehose's buffer)
    stores.bucket.put("events/d", line("5", ALICE), T0 + timedelta(minutes=4))
    # When the next run comes with nobody newly erased, Then it reads only what was written since the last started
    second = stores.run(T0 + timedelta(days=1))
    assert sorted(stores.bucket.reads) == ["events/a", "events/d"]  # a: rewritten by the first run
    assert (second.full, second.events, second.deleted) == (False, 1, 1)
    assert "events/d" not in stores.bucket.objects

    # When Bob is erased, Then the next run reads everything again
    stores.erased.add(BOB)
    third = stores.run(T0 + timedelta(days=2))
    assert third.full
    assert sorted(stores.bucket.reads) == ["events/a", "events/b", "events/c"]
    assert sorted(stores.bucket.objects) == ["events/c"]
    assert third.events == 2


def test_a_run_that_fails_leaves_the_state_so_the_next_reads_everything() -> None:
    stores = Stores(erased={ALICE})
    stores.bucket.put("events/a", line("1", ALICE), T0 - timedelta(days=3))
    stores.state = PurgeState(T0 - timedelta(days=1), frozenset())

    class Failing(Bucket):
        def read(self, key: str) -> bytes:
            raise OSError("S3 is down")

    failing = Failing(objects=dict(stores.bucket.objects))
    with pytest.raises(OSError, match="S3 is down"):
        purge_archive(tombstones=stores, archive=failing, log=stores, state=stores, now=T0)
    assert stores.state == PurgeState(T0 - timedelta(days=1), frozenset())
    assert stores.logged == []
    assert stores.run(T0 + timedelta(hours=1)).events == 1


def test_objects_written_just_before_the_last_run_started_are_read_again() -> None:
    stores = Stores(erased={ALICE})
    stores.run(T0)
    stores.bucket.put("events/late", line("9", ALICE), T0 - CLOCK_MARGIN + timedelta(seconds=1))
    assert stores.run(T0 + timedelta(hours=1)).events == 1


def test_with_nobody_erased_nothing_is_read_and_the_run_is_still_logged() -> None:
    stores = Stores()
    stores.bucket.put("events/a", line("1", ALICE), T0)
    record = stores.run(T0)
    assert stores.bucket.reads == []
    assert (record.people, record.objects, record.events) == (0, 0, 0)
    assert stores.logged == [record]
