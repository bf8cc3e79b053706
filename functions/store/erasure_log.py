"""The erasure log: when an erasure happened, by which path, and how much it removed. No personal data.

Neither the raw id nor the pseudonym is written: the log proves that erasures are carried out, and must not
become a list of the people who asked (the pseudonym would link the entry to the person's other records).
The archive purge's runs are logged here too (path `archive_purge`): how many erased people, objects and
archived events each run covered and removed.
"""

from __future__ import annotations

from datetime import timedelta

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.models import Model

from personalization.privacy import ErasurePath, ErasureRecord
from personalization.purge import PurgeRecord
from store.tables import bind

ARCHIVE_PURGE = "archive_purge"


class ErasureLogItem(Model):
    class Meta:
        table_name = "erasure-log"

    # A random id, also handed to whoever asked, so an entry can be quoted without naming anyone.
    pk = UnicodeAttribute(hash_key=True)
    at = UTCDateTimeAttribute()
    path = UnicodeAttribute()
    profiles = NumberAttribute()
    quarantined = NumberAttribute()
    # An erasure's; a purge run has none.
    tombstone_until = UTCDateTimeAttribute(null=True)
    ttl = TTLAttribute()
    # A purge run's counts (PurgeRecord); an erasure has none.
    people = NumberAttribute(null=True)
    full_scan = BooleanAttribute(null=True)
    archived_objects = NumberAttribute(null=True)
    rewritten_objects = NumberAttribute(null=True)
    deleted_objects = NumberAttribute(null=True)
    archived_events = NumberAttribute(null=True)


class ErasureLogStore:
    def __init__(self, table_name: str, region: str, retention: timedelta) -> None:
        self._model = bind(ErasureLogItem, table_name, region)
        self._retention = retention

    def record(self, entry: ErasureRecord) -> None:
        self._model(
            pk=entry.erasure_id,
            at=entry.at,
            path=entry.path.value,
            profiles=entry.profiles,
            quarantined=entry.quarantined,
            tombstone_until=entry.tombstone_until,
            ttl=entry.at + self._retention,
        ).save()

    def record_purge(self, entry: PurgeRecord) -> None:
        self._model(
            pk=entry.purge_id,
            at=entry.at,
            path=ARCHIVE_PURGE,
            profiles=0,
            quarantined=0,
            people=entry.people,
            full_scan=entry.full,
            archived_objects=entry.objects,
            rewritten_objects=entry.rewritten,
            deleted_objects=entry.deleted,
            archived_events=entry.events,
            ttl=entry.at + self._retention,
        ).save()

    def all(self) -> list[ErasureRecord]:
        """Every erasure logged (purge runs left out: see `purges`)."""
        return [
            ErasureRecord(
                erasure_id=item.pk,
                at=item.at,
                path=ErasurePath(item.path),
                profiles=int(item.profiles),
                quarantined=int(item.quarantined),
                tombstone_until=item.tombstone_until,
            )
            for item in self._model.scan()
            if item.path != ARCHIVE_PURGE and item.tombstone_until is not None
        ]

    def purges(self) -> list[PurgeRecord]:
        """Every archive purge run logged, oldest first."""
        runs = [
            PurgeRecord(
                purge_id=item.pk,
                at=item.at,
                people=int(item.people or 0),
                full=bool(item.full_scan),
                objects=int(item.archived_objects or 0),
                rewritten=int(item.rewritten_objects or 0),
                deleted=int(item.deleted_objects or 0),
                events=int(item.archived_events or 0),
            )
            for item in self._model.scan()
            if item.path == ARCHIVE_PURGE
        ]
        return sorted(runs, key=lambda run: run.at)
