"""The demo's tracker: publishes events to the stream with put_records, as a shop's collector would."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from personalization.events import Event
from personalization.identity import pseudonymize

PUT_RECORDS_LIMIT = 500


@dataclass
class PutStats:
    sent: int = 0
    retried: int = 0


def _chunks(events: Iterable[Event], size: int) -> Iterator[list[Event]]:
    iterator = iter(events)
    while chunk := list(islice(iterator, size)):
        yield chunk


def put_events(
    kinesis: Any,
    stream_name: str,
    events: Iterable[Event],
    pepper: bytes,
    on_chunk: Callable[[int], None] = lambda n: None,
    max_attempts: int = 5,
) -> PutStats:
    """put_records in chunks of 500, partitioned by pseudonymous id; re-sends only the records that failed."""
    stats = PutStats()
    for chunk in _chunks(events, PUT_RECORDS_LIMIT):
        entries = [
            {"Data": event.to_json_bytes(), "PartitionKey": pseudonymize(pepper, event.user_id)} for event in chunk
        ]
        for _attempt in range(max_attempts):
            response = kinesis.put_records(StreamName=stream_name, Records=entries)
            if not response.get("FailedRecordCount"):
                break
            entries = [e for e, r in zip(entries, response["Records"], strict=True) if "ErrorCode" in r]
            stats.retried += len(entries)
        else:
            raise RuntimeError(f"{len(entries)} records still failing after {max_attempts} attempts")
        stats.sent += len(chunk)
        on_chunk(len(chunk))
    return stats
