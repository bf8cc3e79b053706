"""Lambda handler for the purge schedule (EventBridge): rewrite the archive without erased people's events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from observability import count, logger, metrics
from purge.usecase import purge
from purge.wiring import purge_deps


# The scheduled event carries nothing the purge needs (it reads the tombstones); it is not logged.
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    record = purge(purge_deps(), datetime.now(UTC))
    count("ArchiveEventsPurged", record.events)
    count("ArchiveObjectsRewritten", record.rewritten + record.deleted)
    answer = record.model_dump(mode="json")
    logger.info("archive purged", extra=answer)
    return answer
