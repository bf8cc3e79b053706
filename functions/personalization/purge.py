"""Erasure reaches the event archive: every archived object that names an erased person is rewritten without them.

Run on a schedule (the purge function, every ArchivePurgeIntervalHours). Who is erased comes from the tombstones
(pseudonyms only, listed through the profiles table's sparse `erased` index); the archive is read object by
object, and an object is rewritten only if it names one of them (a line goes if the pseudonym appears anywhere in
it), or deleted if nothing else is left. Running it twice changes nothing.

Which objects a run reads: all of them when someone was erased since the last completed run (their events may be
anywhere); otherwise only the objects written since that run started (minus a margin for clocks), where events that
reached the archive after it (Firehose buffers up to five minutes; a batch read before an erasure may archive
after it) can be. A run that fails records nothing, so the next one reads everything again. What a completed run
covered is kept as a `PurgeState`: the time it started, and a digest of each pseudonym it purged (so the state is
not one more list of the people who asked). Plain Python: the stores are protocols here; `store/` implements them,
the purge function wires them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from personalization.archive import without_people
from personalization.privacy import new_erasure_id


class PurgeRecord(BaseModel):
    """What one purge run did; counts only, like every entry of the erasure log (no pseudonym, no key)."""

    model_config = ConfigDict(frozen=True)

    purge_id: str
    at: datetime
    # Live tombstones considered (erased people), archived objects read, rewritten and deleted, lines removed.
    people: int
    # Whether every object was read (someone erased since the last completed run), or only the newer ones.
    full: bool = True
    objects: int
    rewritten: int
    deleted: int
    events: int


class Tombstones(Protocol):
    def erased_ids(self) -> Iterable[str]: ...


# Objects written this long before a completed run started are read again by the next one: S3's and Lambda's clocks
# may disagree by that much, and an object listed as written later than it was is merely read once more.
CLOCK_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class PurgeState:
    """What the last completed run covered: when it started, and a digest of each pseudonym it purged."""

    started: datetime
    purged: frozenset[str]


def digest(pseudonym: str) -> str:
    return hashlib.sha256(pseudonym.encode()).hexdigest()


class ArchiveObjects(Protocol):
    def keys(self, modified_since: datetime | None = None) -> Iterable[str]: ...

    def read(self, key: str) -> bytes: ...

    def replace(self, key: str, body: bytes) -> None: ...

    def delete(self, key: str) -> None: ...


class PurgeLog(Protocol):
    def record_purge(self, entry: PurgeRecord) -> None: ...


class PurgeStateStore(Protocol):
    def load(self) -> PurgeState | None: ...

    def save(self, state: PurgeState) -> None: ...


def purge_archive(
    *,
    tombstones: Tombstones,
    archive: ArchiveObjects,
    log: PurgeLog,
    state: PurgeStateStore,
    now: datetime,
    new_id: Callable[[], str] = new_erasure_id,
) -> PurgeRecord:
    """Rewrite the archived objects that name anyone erased without their lines; log and return the counts."""
    people = frozenset(tombstones.erased_ids())
    digests = frozenset(digest(person) for person in people)
    last = state.load()
    full = last is None or not digests <= last.purged
    objects = rewritten = deleted = events = 0
    if people:
        since = None if full or last is None else last.started - CLOCK_MARGIN
        # Listed before anything is rewritten: a rewrite keeps its key, so it is never read twice in one run.
        for key in list(archive.keys(modified_since=since)):
            objects += 1
            purged = without_people(archive.read(key), people)
            if purged is None:
                continue
            body, removed = purged
            if body:
                archive.replace(key, body)
                rewritten += 1
            else:
                archive.delete(key)
                deleted += 1
            events += removed
    record = PurgeRecord(
        purge_id=new_id(),
        at=now,
        people=len(people),
        full=full,
        objects=objects,
        rewritten=rewritten,
        deleted=deleted,
        events=events,
    )
    log.record_purge(record)
    # Only now: a run that failed before this point leaves the last state, and the next run reads everything.
    state.save(PurgeState(started=now, purged=digests))
    return record
