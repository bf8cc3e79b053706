"""The collect use case: identify the visitor, admit a request's events and write the admitted ones to the stream.

Statuses and cookies are the handler's (collect.app); this says what was written, and whether a new anonymous
identity may be set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from collect.config import CollectConfig
from collect.intake import Refusal, Visitor, admit, identify
from collect.models import AcceptedRecord, CollectResponse, FailedRecord, RejectedRecord
from observability import logger
from personalization.context import UNKNOWN, RequestContext
from personalization.events import Event
from store.stream import PutResult, Written


class EventSink(Protocol):
    def put_events(self, events: Sequence[Event], partition_key: str) -> PutResult: ...


@dataclass(frozen=True)
class CollectDeps:
    config: CollectConfig
    stream: EventSink
    # Read through the powertools cache on every request, so a rotated key is picked up within its max age.
    identity_key: Callable[[], bytes]


@dataclass(frozen=True, slots=True)
class Collected:
    response: CollectResponse
    # Record sends beyond the first (throttling or transient failures that were retried).
    retried: int
    # Whether some admitted event carries analytics consent: only then may a new identity cookie be set.
    consented: bool


def collect(
    items: list[Any],
    visitor: Visitor,
    now: datetime,
    retention: timedelta,
    sink: EventSink,
    context: RequestContext = UNKNOWN,
) -> Collected:
    """Admit each item under the visitor's pseudonym, stamped with the request's viewer context, write the
    admitted ones in one go, answer per item."""
    results: list[AcceptedRecord | RejectedRecord | FailedRecord | None] = [None] * len(items)
    admitted: list[tuple[int, Event]] = []
    for index, item in enumerate(items):
        decision = admit(item, visitor.pseudonym, now, retention, context)
        if isinstance(decision, Refusal):
            results[index] = RejectedRecord(
                index=index, field=decision.field, reason=decision.reason, message=decision.message
            )
        else:
            admitted.append((index, decision))
    retried = 0
    if admitted:
        put = sink.put_events([event for _, event in admitted], visitor.pseudonym)
        retried = put.retried
        for (index, event), outcome in zip(admitted, put.outcomes, strict=True):
            if isinstance(outcome, Written):
                results[index] = AcceptedRecord(index=index, event_id=event.event_id)
            else:
                results[index] = FailedRecord(index=index, reason=outcome.reason, event_id=event.event_id)
    consented = any(event.consent.analytics for _, event in admitted)
    return Collected(CollectResponse.of([r for r in results if r is not None]), retried, consented)


def unavailable(items: list[Any]) -> CollectResponse:
    """Every item failed before admission (no identity key to sign or verify with): all may be sent again."""
    return CollectResponse.of([FailedRecord(index=index, reason="unavailable") for index in range(len(items))])


def collect_request(
    items: list[Any], token: str | None, now: float, deps: CollectDeps, context: RequestContext = UNKNOWN
) -> tuple[Collected, str | None]:
    """The collected events, and the new identity token to set as a cookie, if any."""
    try:
        key = deps.identity_key()
    except Exception:
        # Without the key no token can be checked or signed; accepting events under an unproven id would be
        # worse than asking the client to send them again.
        logger.exception("identity key unavailable; refusing events for now")
        return Collected(unavailable(items), retried=0, consented=False), None
    config = deps.config
    visitor = identify(key, token, int(now), config.anonymous_id_ttl_s)
    try:
        collected = collect(items, visitor, datetime.fromtimestamp(now, UTC), config.retention, deps.stream, context)
    except Exception:
        logger.exception("collecting failed; reporting every event failed")
        return Collected(unavailable(items), retried=0, consented=False), None
    # A new anonymous id is set only for a visitor who consented to analytics in this request: an identifier
    # cookie needs consent. It is set on a 503 too, so that the client's retry lands under the same id.
    return collected, (visitor.new_token if collected.consented else None)
