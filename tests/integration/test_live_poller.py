"""KinesisPoller.run_forever against the loopback stream: the event source mapping, live, as the demo runs it."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from infra.local.poller import KinesisPoller, PollStats
from infra.local.stack import LocalStack

WINDOW_S = 0.3


class Recorder:
    """A handler that records each batch's (shard, sequence, data) and answers as `fail` says."""

    def __init__(self, fail: Callable[[bytes], bool] = lambda data: False) -> None:
        self.batches: list[list[tuple[str, str, bytes]]] = []
        self._fail = fail

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        batch = []
        for record in event["Records"]:
            shard = record["eventID"].split(":", 1)[0]
            batch.append((shard, record["kinesis"]["sequenceNumber"], base64.b64decode(record["kinesis"]["data"])))
        self.batches.append(batch)
        failed = [seq for _, seq, data in batch if self._fail(data)]
        return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}

    @property
    def delivered(self) -> list[bytes]:
        return [data for batch in self.batches for _, _, data in batch]


def put(stack: LocalStack, payloads: list[bytes], key: str = "one-user") -> None:
    stream = stack.physical_names["EventStream"]
    stack.client("kinesis").put_records(
        StreamName=stream, Records=[{"Data": data, "PartitionKey": key} for data in payloads]
    )


@contextmanager
def running(poller: KinesisPoller, batch_size: int) -> Iterator[list[PollStats]]:
    stop = threading.Event()
    stats: list[PollStats] = []
    thread = threading.Thread(target=lambda: stats.append(poller.run_forever(stop, batch_size, WINDOW_S, 0.05)))
    thread.start()
    try:
        yield stats
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


def test_records_put_while_it_runs_are_delivered_once_in_order_in_batches_of_at_most_the_size(
    clean_stack: LocalStack,
) -> None:
    recorder = Recorder()
    poller = KinesisPoller(clean_stack.client("kinesis"), clean_stack.physical_names["EventStream"], recorder)
    payloads = [f"event-{i}".encode() for i in range(7)]
    with running(poller, batch_size=3) as stats:
        time.sleep(0.2)
        put(clean_stack, payloads)
        took = wait_for(lambda: len(recorder.delivered) >= len(payloads))
        time.sleep(3 * WINDOW_S)  # nothing more arrives: no record is delivered twice
    assert recorder.delivered == payloads
    assert all(len(batch) <= 3 for batch in recorder.batches)
    assert took < 3.0
    assert stats[0].records == len(payloads)


def test_a_lone_record_waits_at_most_the_batching_window(clean_stack: LocalStack) -> None:
    recorder = Recorder()
    poller = KinesisPoller(clean_stack.client("kinesis"), clean_stack.physical_names["EventStream"], recorder)
    with running(poller, batch_size=500):
        time.sleep(0.2)
        put(clean_stack, [b"alone"])
        took = wait_for(lambda: recorder.delivered == [b"alone"])
    assert took < WINDOW_S + 1.0


def test_a_reported_failure_is_redelivered_from_that_record_and_a_poison_record_is_given_up(
    clean_stack: LocalStack,
) -> None:
    attempts: dict[bytes, int] = {}

    def fail(data: bytes) -> bool:
        attempts[data] = attempts.get(data, 0) + 1
        return data == b"poison" or (data == b"flaky" and attempts[data] == 1)

    recorder = Recorder(fail)
    poller = KinesisPoller(
        clean_stack.client("kinesis"), clean_stack.physical_names["EventStream"], recorder, max_retries=2
    )
    with running(poller, batch_size=10) as stats:
        time.sleep(0.2)
        put(clean_stack, [b"first", b"flaky", b"second"])
        wait_for(lambda: recorder.delivered.count(b"second") == 2)
        put(clean_stack, [b"poison"])
        wait_for(lambda: attempts.get(b"poison", 0) == 3)
        put(clean_stack, [b"after"])
        wait_for(lambda: b"after" in recorder.delivered)
    # Lambda re-sends from the lowest failed record: "first" once, "flaky" and "second" again.
    assert recorder.delivered.count(b"first") == 1
    assert recorder.delivered.count(b"flaky") == 2
    assert attempts[b"poison"] == 3  # the first try and max_retries more, then the shard moves on
    assert stats[0].given_up == 1
    assert recorder.delivered.count(b"after") == 1
