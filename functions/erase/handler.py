"""Lambda handler for erasure requests made by an operator: {"user_id": RAW} or {"pseudonym": HEX}."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from erase.usecase import erase, parse_request
from erase.wiring import erase_deps
from observability import count, logger, metrics
from personalization.privacy import ErasurePath


# log_event stays off: the event is the raw id this function exists to make disappear.
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    record = erase(parse_request(event), ErasurePath.ADMIN, erase_deps(), datetime.now(UTC))
    count("Erasures")
    answer = record.model_dump(mode="json")
    logger.info("erased", extra=answer)
    return answer
