"""Batched writes that may partly fail: Kinesis PutRecords and Firehose PutRecordBatch share this loop.

Both APIs take a bounded number of items and bytes per call and answer per item, so a call can take some items and
refuse others. Items are split into calls within the limits, in order; each call is resent, only for the items still
unwritten, with a jittered exponential backoff under a time budget counted from the first attempt. What a response
means (which items were refused, whether another attempt may help) is the caller's: it passes one attempt as a
function. botocore's retries would resend a whole call, so the loop is ours (each client makes one attempt per call).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# An item with its index in the caller's sequence, so outcomes map back whatever calls it went in.
Indexed = tuple[int, T]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per call and the backoff between them: 50, 100, 200 ms (each jittered down to half)."""

    max_attempts: int = 4
    base_delay_s: float = 0.05
    # No retry starts once this much time has passed since the first attempt.
    budget_s: float = 1.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """The pause before retry number `retry` (1-based): equal jitter, so writers do not retry in step."""
        ceiling = self.base_delay_s * 2 ** (retry - 1)
        return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class CallLimits:
    max_items: int
    max_bytes: int


def split_calls(
    indexed: Sequence[Indexed[T]], size: Callable[[T], int], limits: CallLimits
) -> Iterator[list[Indexed[T]]]:
    """Split items into calls within the count and byte limits, keeping their order."""
    call: list[Indexed[T]] = []
    total = 0
    for item in indexed:
        item_size = size(item[1])
        if call and (len(call) == limits.max_items or total + item_size > limits.max_bytes):
            yield call
            call, total = [], 0
        call.append(item)
        total += item_size
    if call:
        yield call


@dataclass(frozen=True, slots=True)
class Attempt(Generic[T]):
    """One call's answer: the items it did not write, whether another attempt may, and the last error code."""

    unwritten: list[Indexed[T]]
    retry: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery(Generic[T]):
    # Items still unwritten when their call ran out of attempts or budget, in order.
    unwritten: list[Indexed[T]]
    # Item sends beyond each item's first.
    retried: int
    # The error of the last call that ended with one (None if every call ended cleanly).
    last_error: str | None


class BatchSender:
    """The retry loop over calls, with the clock, sleep and randomness injectable for tests."""

    def __init__(
        self,
        retry: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    def send(
        self,
        indexed: Sequence[Indexed[T]],
        attempt: Callable[[list[Indexed[T]]], Attempt[T]],
        size: Callable[[T], int],
        limits: CallLimits,
    ) -> Delivery[T]:
        deadline = self._clock() + self._retry.budget_s
        unwritten: list[Indexed[T]] = []
        retried = 0
        last_error: str | None = None
        for call in split_calls(indexed, size, limits):
            left, resent, error = self._send_call(call, attempt, deadline)
            unwritten.extend(left)
            retried += resent
            last_error = error or last_error
        return Delivery(unwritten, retried, last_error)

    def _send_call(
        self, pending: list[Indexed[T]], attempt: Callable[[list[Indexed[T]]], Attempt[T]], deadline: float
    ) -> tuple[list[Indexed[T]], int, str | None]:
        """Send one call's items until each is written or out of attempts: what is left, resends, last error."""
        retried = 0
        error: str | None = None
        for number in range(1, self._retry.max_attempts + 1):
            if number > 1:
                pause = self._retry.delay(number - 1, self._rng)
                if self._clock() + pause > deadline:
                    break
                self._sleep(pause)
                retried += len(pending)
            answer = attempt(pending)
            pending, error = answer.unwritten, answer.error
            if not pending or not answer.retry:
                break
        return pending, retried, error
