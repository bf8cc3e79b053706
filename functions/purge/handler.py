"""Lambda handler for the purge schedule (EventBridge): rewrite the archive without erased people's events."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from observability import logger, metrics
from purge.service import purge_service


# The scheduled event carries nothing the purge needs (it reads the tombstones); it is not logged.
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    record = purge_service().purge()
    metrics.add_metric(name="ArchiveEventsPurged", unit=MetricUnit.Count, value=record.events)
    metrics.add_metric(name="ArchiveObjectsRewritten", unit=MetricUnit.Count, value=record.rewritten + record.deleted)
    answer = record.model_dump(mode="json")
    logger.info("archive purged", extra=answer)
    return answer
