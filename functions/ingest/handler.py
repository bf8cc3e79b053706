"""Lambda handler for the Kinesis event source: parse the records, call `ingest_batch`, report what failed.

The response is the partial batch response of ReportBatchItemFailures. When every record failed, the invocation
fails instead (as powertools' BatchProcessor does), and Lambda retries the whole batch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest.usecase import IngestResult, RawRecord, ingest_batch
from ingest.wiring import ingest_deps
from observability import count, logger, metrics


def _raw(record: KinesisStreamRecord) -> RawRecord:
    return RawRecord(
        data=record.kinesis.data_as_bytes(),
        shard=record.event_id.split(":", 1)[0],
        seq=record.kinesis.sequence_number,
        arrived=datetime.fromtimestamp(record.kinesis.approximate_arrival_timestamp, UTC),
    )


def batch_response(received: int, result: IngestResult) -> dict[str, Any]:
    """`batchItemFailures` naming every failed record; raises when all of them failed."""
    if result.failures and len(result.failures) == received:
        raise BatchProcessingError(
            msg=f"All records failed processing. {received} individual errors logged separately below.",
            child_exceptions=[(type(f.error), f.error, f.error.__traceback__) for f in result.failures],
        )
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in result.failed_seqs]}


def _publish(received: int, result: IngestResult) -> None:
    count("RecordsReceived", received)
    count("EventsApplied", result.applied)
    count("EventsSkippedAsDuplicate", result.skipped)
    count("EventsDroppedNoConsent", result.dropped_no_consent)
    count("EventsDroppedErased", result.dropped_erased)
    count("ImpressionsSeen", result.impressions)
    count("ProfileWrites", result.writes)
    count("VersionConflicts", result.conflicts)
    count("RecordsFailed", len(result.failures))
    count("RecordsQuarantined", sum(result.quarantined.values()))
    archive = result.archive
    count("EventsArchived", archive.delivered)
    count("ArchiveRecordsResent", archive.retried)
    count("ArchiveFallbackEvents", archive.fallback_events)
    count("ArchiveFailedEvents", len(archive.failed))
    count("TrendingWrites", result.trending.writes)
    count("TrendingConflicts", result.trending.conflicts)
    count("TrendingWritesFailed", result.trending.failed)
    for reason, quarantined in result.quarantined.items():
        count(f"Quarantined_{reason.value}", quarantined)


def _log(received: int, result: IngestResult) -> None:
    for failure in result.failures:
        logger.debug("record reported for redelivery", extra={"seq": failure.seq, "error": repr(failure.error)})
    logger.info(
        "batch folded",
        extra={
            "records": received,
            "users": result.users,
            "applied": result.applied,
            "skipped": result.skipped,
            "quarantined": {r.value: n for r, n in result.quarantined.items()},
            "dropped_no_consent": result.dropped_no_consent,
            "dropped_erased": result.dropped_erased,
            "failed": len(result.failures),
            "archived": result.archive.delivered,
            "archive_fallback": result.archive.fallback_events,
            "archive_failed": len(result.archive.failed),
            "archive_error": result.archive.error,
        },
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = [_raw(record) for record in KinesisStreamEvent(event).records]
    result = ingest_batch(records, datetime.now(UTC), ingest_deps())
    _publish(len(records), result)
    _log(len(records), result)
    return batch_response(len(records), result)
