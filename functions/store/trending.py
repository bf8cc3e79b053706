"""The trending table: one row per writer (an ingest shard) under one partition key, each holding a bounded top
list of decayed item scores (personalization.trending), written under optimistic locking.

Rows share the partition key "trending", so serve reads them all with one Query. A row not written for a day
expires (a shard closed by resharding leaves nothing behind); its scores would be long decayed by then.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pynamodb.attributes import BinaryAttribute, TTLAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model

from personalization.trending import Trend
from store.tables import bind

PARTITION = "trending"
ROW_TTL = timedelta(days=1)


class TrendingItem(Model):
    class Meta:
        table_name = "trending"  # replaced per deployment

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    # {"t": anchor ms, "s": {item: score}}: JSON, compressed (a write unit per started KB).
    d = BinaryAttribute(legacy_encoding=False)
    v = VersionAttribute()
    ttl = TTLAttribute(null=True)


@dataclass(frozen=True, slots=True)
class StoredTrend:
    trend: Trend
    version: int | None


class TrendConflict(Exception):
    """Another batch wrote the row since it was read."""


def encode(trend: Trend) -> bytes:
    # Six significant digits: a ranking needs no more, and the row stays within two write units.
    scores = {item: float(f"{score:.6g}") for item, score in trend.scores.items()}
    return zlib.compress(json.dumps({"t": trend.at_ms, "s": scores}, separators=(",", ":")).encode(), 9)


def decode(blob: bytes) -> Trend:
    data = json.loads(zlib.decompress(blob))
    return Trend(int(data["t"]), {str(item): float(score) for item, score in data["s"].items()})


class TrendingStore:
    def __init__(self, table_name: str, region: str, connect_timeout_s: float = 2.0, read_timeout_s: float = 5.0):
        self._model = bind(
            TrendingItem,
            table_name,
            region,
            connect_timeout_seconds=connect_timeout_s,
            read_timeout_seconds=read_timeout_s,
            max_retry_attempts=1,
        )

    def read(self, writer: str, consistent: bool = False) -> StoredTrend | None:
        try:
            item = self._model.get(PARTITION, writer, consistent_read=consistent)
        except self._model.DoesNotExist:
            return None
        return StoredTrend(decode(item.d), None if item.v is None else int(item.v))

    def save(self, writer: str, trend: Trend, expected_version: int | None, now: datetime) -> int:
        """Conditional put: succeeds only if the row's version is still `expected_version`; returns the new one."""
        item = self._model(pk=PARTITION, sk=writer, d=encode(trend), ttl=(now + ROW_TTL).astimezone(UTC))
        if expected_version is not None:
            item.v = expected_version
        try:
            item.save()
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise TrendConflict(writer) from exc
            raise
        assert item.v is not None
        return int(item.v)

    def read_all(self) -> list[Trend]:
        """Every writer's row: one Query."""
        return [decode(item.d) for item in self._model.query(PARTITION)]
