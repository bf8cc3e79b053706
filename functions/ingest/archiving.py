"""A batch's accepted events -> the archive, with the order of fallbacks that keeps every one of them.

What is archived: every event ingest accepted (validated, consented, pseudonymized; impressions and consent events
included), never a quarantined or consent-less record, never an event of an erased person (their tombstone was
read with the batch), and not the events of a person whose profile write failed this time: those records are
reported, come back, and are archived then.

What a Firehose outage does (decided here, and tested against a failing endpoint on loopback):
1. Profiles are written first, so the archive never holds back personalization: with Firehose down, profiles
   still update on every batch.
2. One PutRecordBatch per 500 records / 4 MiB carries the batch; only the records Firehose refuses are sent again,
   under a time budget of 3 s (store.archive).
3. What Firehose still has not taken is written by ingest itself, straight to the archive bucket, as one gzip
   object of newline-delimited JSON per event date under the same `events/dt=YYYY-MM-DD/` prefix Firehose writes:
   the same format, so readers and the erasure purge need not know. It is counted (ArchiveFallbackEvents), and
   an alarm watches it.
4. Only if that write fails as well are those events' records reported as batchItemFailures. Lambda redelivers
   the shard from the lowest of them; the fold skips what it already applied (per-shard watermarks and event ids,
   so profiles are unchanged), and the events are archived again. The archive is at-least-once: a redelivery may
   archive an event twice, and its readers de-duplicate by event_id.
No accepted event is lost unless the stream's retention (24 h) runs out while both Firehose and S3 are down; then
the records go to the failure queue (the event source's on-failure destination) like any other given up on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from personalization.archive import archive_line, day_of, object_body
from personalization.events import Event
from store.archive import PutOutcome


class ArchiveUnavailable(Exception):
    """Neither Firehose nor the archive bucket took these events: their records are reported, to come back."""


class DeliveryStream(Protocol):
    def put(self, lines: Sequence[bytes]) -> PutOutcome: ...


class FallbackBucket(Protocol):
    def put_day(self, day: str, body: bytes) -> str: ...


@dataclass(slots=True)
class ArchiveOutcome:
    # Lines taken by Firehose, and sends beyond each line's first.
    delivered: int = 0
    retried: int = 0
    # Lines written straight to the bucket while Firehose refused them, and the objects that took them.
    fallback_events: int = 0
    fallback_objects: int = 0
    # Indexes (into the events given) of those neither took: their records must be reported.
    failed: tuple[int, ...] = ()
    error: str | None = None


@dataclass
class Archiver:
    stream: DeliveryStream
    fallback: FallbackBucket

    def archive(self, items: Sequence[tuple[bytes, Event]]) -> ArchiveOutcome:
        """Archive accepted events (each with the record bytes it was parsed from), in the order given."""
        if not items:
            return ArchiveOutcome()
        lines = [archive_line(data, event) for data, event in items]
        sent = self.stream.put(lines)
        outcome = ArchiveOutcome(delivered=len(lines) - len(sent.refused), retried=sent.retried, error=sent.last_error)
        if not sent.refused:
            return outcome
        by_day: dict[str, list[int]] = defaultdict(list)
        for index in sent.refused:
            by_day[day_of(items[index][1])].append(index)
        failed: list[int] = []
        for day, indexes in by_day.items():
            try:
                self.fallback.put_day(day, object_body(lines[index] for index in indexes))
            except Exception as exc:  # any store failure: report these, so they come back
                failed.extend(indexes)
                outcome.error = f"{outcome.error}; fallback: {type(exc).__name__}"
                continue
            outcome.fallback_events += len(indexes)
            outcome.fallback_objects += 1
        outcome.failed = tuple(sorted(failed))
        return outcome
