"""Erasure reaches the event archive: every archived object that names an erased person is rewritten without them.

Run on a schedule (the purge function, every ArchivePurgeIntervalHours). Who is erased comes from the tombstones
(pseudonyms only, listed through the profiles table's sparse `erased` index); the archive is read object by
object, and an object is rewritten only if it names one of them (a line goes if the pseudonym appears anywhere in
it), or deleted if nothing else is left. Every run considers every live tombstone and every object, so a run that
fails half-way, or an event of an erased person that reaches the archive after a run (Firehose buffers up to five
minutes; a batch read before the erasure may archive after it), is handled by the next run: each run converges on
an archive that names no erased person, and running it twice changes nothing. Plain Python: the stores are
protocols here; `store/` implements them, the purge function wires them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
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
    objects: int
    rewritten: int
    deleted: int
    events: int


class Tombstones(Protocol):
    def erased_ids(self) -> Iterable[str]: ...


class ArchiveObjects(Protocol):
    def keys(self) -> Iterable[str]: ...

    def read(self, key: str) -> bytes: ...

    def replace(self, key: str, body: bytes) -> None: ...

    def delete(self, key: str) -> None: ...


class PurgeLog(Protocol):
    def record_purge(self, entry: PurgeRecord) -> None: ...


def purge_archive(
    *,
    tombstones: Tombstones,
    archive: ArchiveObjects,
    log: PurgeLog,
    now: datetime,
    new_id: Callable[[], str] = new_erasure_id,
) -> PurgeRecord:
    """Rewrite every archived object without the lines of everyone erased; log and return the counts."""
    people = frozenset(tombstones.erased_ids())
    objects = rewritten = deleted = events = 0
    if people:
        # Listed before anything is rewritten: a rewrite keeps its key, so it is never read twice in one run.
        for key in list(archive.keys()):
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
        objects=objects,
        rewritten=rewritten,
        deleted=deleted,
        events=events,
    )
    log.record_purge(record)
    return record
