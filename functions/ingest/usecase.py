"""The ingest use case: one Kinesis batch's records -> profiles, quarantine and archive; what must come back.

`ingest.batch` says what each failure means for the shard; the handler turns `IngestResult.failures` into
batchItemFailures. Nothing here knows Lambda: records arrive as `RawRecord` values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest.batch import BatchWriter, Classified, Classifier, IngestResult, RawRecord, RecordFailure, cyclic_gc_paused

__all__ = ["IngestDeps", "IngestResult", "RawRecord", "RecordFailure", "ingest_batch"]


@dataclass(frozen=True)
class IngestDeps:
    writer: BatchWriter
    # Read through the powertools cache on every batch, so a rotated pepper is picked up within its TTL.
    pepper: Callable[[], bytes]
    # How long an event may be old (and a profile idle) before it is refused (and expires).
    retention: timedelta


def ingest_batch(records: Sequence[RawRecord], now: datetime, deps: IngestDeps) -> IngestResult:
    """Fold one batch, received at `now` (the clock window every record is checked against)."""
    classifier = Classifier(deps.pepper(), now, deps.retention)
    classified: list[Classified] = []
    unreadable: list[RecordFailure] = []
    with cyclic_gc_paused():
        for record in records:
            try:
                classified.append(classifier.classify(record))
            except Exception as exc:  # a bug, not bad input (that is quarantined): report it, so it comes back
                unreadable.append(RecordFailure(record.seq, exc))
        result = deps.writer.write(classified)
    result.failures[:0] = unreadable
    return result
