"""Wiring for the collect function (config, stream, identity key, built once per container) and the one use
case: admit a request's events and write the admitted ones to the stream."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from collect.config import CollectConfig
from collect.intake import Refusal, Visitor, admit
from collect.models import AcceptedRecord, CollectResponse, FailedRecord, RejectedRecord
from personalization.context import UNKNOWN, RequestContext
from personalization.events import Event
from store.parameters import get_secret
from store.stream import EventStream, PutResult, Written


class EventSink(Protocol):
    def put_events(self, events: Sequence[Event], partition_key: str) -> PutResult: ...


@dataclass
class Collector:
    config: CollectConfig
    stream: EventSink

    def identity_key(self) -> bytes:
        # Through the powertools cache on every request, so a rotated key is picked up within its max age.
        return get_secret(self.config.identity_key_parameter)


@lru_cache(maxsize=1)
def collector() -> Collector:
    config = CollectConfig.from_env()
    return Collector(config, EventStream.connect(config.stream_settings))


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
