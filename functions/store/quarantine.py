"""The quarantine table: rejected records, kept with their reason for 14 days (configurable)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pynamodb.attributes import BinaryAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from store.tables import bind

QUARANTINE_RETENTION = timedelta(days=14)
# How much of a rejected record is kept. Kinesis takes records up to 1 MiB, a DynamoDB item only 400 KB, and
# one item too large would fail the whole quarantine write, so the batch would be retried until it expired.
# A few KB show what went wrong; every further KB would cost one more write unit per bad record.
RAW_BYTES_KEPT = 4 * 1024


# pynamodb's Index.__init_subclass__ is untyped.
class UserIndex(GlobalSecondaryIndex["QuarantineItem"]):  # type: ignore[no-untyped-call]
    """A person's quarantined records, for erasure. Sparse: records with no readable user are not in it."""

    class Meta:
        index_name = "user"
        projection = KeysOnlyProjection()

    user = UnicodeAttribute(hash_key=True)


class QuarantineItem(Model):
    class Meta:
        table_name = "quarantine"

    # shard id + sequence number: a redelivered bad record overwrites its own entry instead of duplicating it.
    pk = UnicodeAttribute(hash_key=True)
    reason = UnicodeAttribute()
    message = UnicodeAttribute()
    raw = BinaryAttribute(legacy_encoding=False)
    shard = UnicodeAttribute()
    seq = UnicodeAttribute()
    arrived = UTCDateTimeAttribute()
    # The pseudonymous id, when one could be read, so erasure can find a person's quarantined records.
    user = UnicodeAttribute(null=True)
    ttl = TTLAttribute()
    user_index = UserIndex()


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    reason: str
    message: str
    raw: bytes
    shard: str
    seq: str
    arrived: datetime
    user: str | None


class QuarantineStore:
    def __init__(self, table_name: str, region: str, retention: timedelta = QUARANTINE_RETENTION) -> None:
        self._model = bind(QuarantineItem, table_name, region)
        self._retention = retention

    def put_many(self, records: Iterable[QuarantinedRecord]) -> None:
        with self._model.batch_write() as batch:
            for record in records:
                batch.save(
                    self._model(
                        pk=f"{record.shard}#{record.seq}",
                        reason=record.reason,
                        message=record.message,
                        raw=record.raw[:RAW_BYTES_KEPT],
                        shard=record.shard,
                        seq=record.seq,
                        arrived=record.arrived,
                        user=record.user,
                        ttl=record.arrived + self._retention,
                    )
                )

    def delete_user(self, user: str) -> int:
        """Delete every quarantined record of one pseudonymous user; how many were deleted.

        The index is eventually consistent: a record quarantined a moment ago may not be listed yet (ingest
        stops quarantining an erased person's records once the tombstone is written, so none follow).
        """
        keys = [item.pk for item in self._model.user_index.query(user)]
        with self._model.batch_write() as batch:
            for pk in keys:
                batch.delete(self._model(pk=pk))
        return len(keys)

    def all(self) -> list[QuarantinedRecord]:
        return [
            QuarantinedRecord(i.reason, i.message, i.raw, i.shard, i.seq, i.arrived, i.user) for i in self._model.scan()
        ]
