"""The erasure log: when an erasure happened, by which path, and how much it removed. No personal data.

Neither the raw id nor the pseudonym is written: the log proves that erasures are carried out, and must not
become a list of the people who asked (the pseudonym would link the entry to the person's other records).
"""

from __future__ import annotations

from datetime import timedelta

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from personalization.privacy import ErasurePath, ErasureRecord
from store.tables import bind


class ErasureLogItem(Model):
    class Meta:
        table_name = "erasure-log"

    # A random id, also handed to whoever asked, so an entry can be quoted without naming anyone.
    pk = UnicodeAttribute(hash_key=True)
    at = UTCDateTimeAttribute()
    path = UnicodeAttribute()
    profiles = NumberAttribute()
    quarantined = NumberAttribute()
    tombstone_until = UTCDateTimeAttribute()
    ttl = TTLAttribute()


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

    def all(self) -> list[ErasureRecord]:
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
        ]
