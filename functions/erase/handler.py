"""Lambda handler for erasure requests made by an operator: {"user_id": RAW} or {"pseudonym": HEX}."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from erase.service import erase_service, parse_request
from observability import logger, metrics
from personalization.privacy import ErasurePath


# log_event stays off: the event is the raw id this function exists to make disappear.
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    record = erase_service().erase(parse_request(event), ErasurePath.ADMIN)
    metrics.add_metric(name="Erasures", unit=MetricUnit.Count, value=1)
    answer = record.model_dump(mode="json")
    logger.info("erased", extra=answer)
    return answer
