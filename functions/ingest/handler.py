"""Lambda handler for the Kinesis event source: parse records, fold them into profiles, report failures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest.batch import BatchResult, Classified, Classifier, RawRecord, cyclic_gc_paused
from ingest.service import ingest_service
from observability import logger, metrics

processor = BatchProcessor(event_type=EventType.KinesisDataStreams)


def _raw(record: KinesisStreamRecord) -> RawRecord:
    return RawRecord(
        data=record.kinesis.data_as_bytes(),
        shard=record.event_id.split(":", 1)[0],
        seq=record.kinesis.sequence_number,
        arrived=datetime.fromtimestamp(record.kinesis.approximate_arrival_timestamp, UTC),
    )


def _publish(received: int, result: BatchResult) -> None:
    metrics.add_metric(name="RecordsReceived", unit=MetricUnit.Count, value=received)
    metrics.add_metric(name="EventsApplied", unit=MetricUnit.Count, value=result.applied)
    metrics.add_metric(name="EventsSkippedAsDuplicate", unit=MetricUnit.Count, value=result.skipped)
    metrics.add_metric(name="EventsDroppedNoConsent", unit=MetricUnit.Count, value=result.dropped_no_consent)
    metrics.add_metric(name="EventsDroppedErased", unit=MetricUnit.Count, value=result.dropped_erased)
    metrics.add_metric(name="ImpressionsSeen", unit=MetricUnit.Count, value=result.impressions)
    metrics.add_metric(name="ProfileWrites", unit=MetricUnit.Count, value=result.writes)
    metrics.add_metric(name="VersionConflicts", unit=MetricUnit.Count, value=result.conflicts)
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=len(result.failed_seqs))
    metrics.add_metric(name="RecordsQuarantined", unit=MetricUnit.Count, value=sum(result.quarantined.values()))
    archive = result.archive
    metrics.add_metric(name="EventsArchived", unit=MetricUnit.Count, value=archive.delivered)
    metrics.add_metric(name="ArchiveRecordsResent", unit=MetricUnit.Count, value=archive.retried)
    metrics.add_metric(name="ArchiveFallbackEvents", unit=MetricUnit.Count, value=archive.fallback_events)
    metrics.add_metric(name="ArchiveFailedEvents", unit=MetricUnit.Count, value=len(archive.failed))
    for reason, count in result.quarantined.items():
        metrics.add_metric(name=f"Quarantined_{reason.value}", unit=MetricUnit.Count, value=count)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service = ingest_service()
    classifier = Classifier(service.pepper, datetime.now(UTC), service.config.retention)
    records = event["Records"]
    by_seq = {raw["kinesis"]["sequenceNumber"]: raw for raw in records}

    def handle(record: KinesisStreamRecord) -> Classified:
        return classifier.classify(_raw(record))

    def report(failed: RawRecord, exc: Exception) -> None:
        processor.failure_handler(KinesisStreamRecord(by_seq[failed.seq]), (type(exc), exc, exc.__traceback__))

    with cyclic_gc_paused(), processor(records=records, handler=handle, lambda_context=context):
        outcomes = processor.process()
        classified = [result for status, result, _ in outcomes if status == "success"]
        service.writer.on_failure = report
        result = service.writer.write(classified)
    _publish(len(records), result)
    logger.info(
        "batch folded",
        extra={
            "records": len(records),
            "users": result.users,
            "applied": result.applied,
            "skipped": result.skipped,
            "quarantined": {r.value: n for r, n in result.quarantined.items()},
            "dropped_no_consent": result.dropped_no_consent,
            "dropped_erased": result.dropped_erased,
            "failed": len(result.failed_seqs),
            "archived": result.archive.delivered,
            "archive_fallback": result.archive.fallback_events,
            "archive_failed": len(result.archive.failed),
            "archive_error": result.archive.error,
        },
    )
    return dict(processor.response())
