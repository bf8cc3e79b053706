"""Trending now, from ingest: each batch's newly applied item events merged into its shard's row, one write.

A batch's events are summed in memory (personalization.trending.activity), then merged into the row of the
shard the batch came from with one conditional put. The bound: one write per shard per batch (a Lambda batch
holds one shard), plus one re-read and write per conflict with a concurrent batch of the same shard
(parallelization factor), at most MAX_CONFLICTS. The row last written is kept per container, so the usual
batch writes without reading first. Trending is best effort: a failed write is counted and logged, and never
holds back the shard (the profiles it was counted from are written already).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from observability import logger
from personalization.profile import PositionedEvent
from personalization.trending import TREND_WEIGHTS, merge
from store.trending import StoredTrend, TrendConflict, TrendingStore

MAX_CONFLICTS = 5


def batch_activity(events: Iterable[PositionedEvent], now_ms: int, half_life_ms: int) -> dict[str, dict[str, float]]:
    """Per shard, the events' decayed scores per item as of `now_ms` (shards without item activity left out):
    personalization.trending.activity's sum, in one pass over the batch with no list per shard, as it runs for
    every event ingest applies (bench.ingest counts it)."""
    by_shard: dict[str, dict[str, float]] = {}
    weights = TREND_WEIGHTS
    anchor_s = now_ms / 1000
    per_s = 1000 / half_life_ms
    for event, shard, _ in events:
        weight = weights.get(event.type)
        item = event.item_id
        if weight is None or item is None:
            continue
        scores = by_shard.get(shard)
        if scores is None:
            scores = by_shard[shard] = {}
        scores[item] = scores.get(item, 0.0) + weight * 2.0 ** ((event.ts.timestamp() - anchor_s) * per_s)
    return by_shard


@dataclass(slots=True)
class TrendOutcome:
    writes: int = 0
    conflicts: int = 0
    failed: int = 0


@dataclass
class TrendingWriter:
    store: TrendingStore
    half_life_ms: int
    # Per shard, the row as this container last wrote it: the next batch of the shard usually lands here.
    _written: dict[str, StoredTrend] = field(default_factory=dict)

    def add(self, events: Iterable[PositionedEvent], now: datetime) -> TrendOutcome:
        """Merge the events (applied for the first time) into their shards' rows."""
        now_ms = int(now.timestamp() * 1000)
        outcome = TrendOutcome()
        for shard, added in batch_activity(events, now_ms, self.half_life_ms).items():
            try:
                self._write(shard, added, now_ms, now, outcome)
            except Exception as exc:
                self._written.pop(shard, None)
                outcome.failed += 1
                logger.warning("trending not written", extra={"shard": shard, "error": type(exc).__name__})
        return outcome

    def _write(self, shard: str, added: dict[str, float], now_ms: int, now: datetime, outcome: TrendOutcome) -> None:
        stored = self._written.get(shard)
        if stored is None:
            stored = self.store.read(shard, consistent=True)
        for _ in range(MAX_CONFLICTS + 1):
            trend = merge(stored.trend if stored else None, added, now_ms, self.half_life_ms)
            try:
                version = self.store.save(shard, trend, stored.version if stored else None, now)
            except TrendConflict:
                outcome.conflicts += 1
                stored = self.store.read(shard, consistent=True)
                continue
            outcome.writes += 1
            self._written[shard] = StoredTrend(trend, version)
            return
        raise TrendConflict(f"{shard}: gave up after {MAX_CONFLICTS} conflicting writes")
