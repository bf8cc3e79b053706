"""The stream writer's retry rules, with a scripted stand-in for the Kinesis client (no sockets, no sleeping)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from store.stream import (
    MAX_BYTES_PER_CALL,
    MAX_RECORDS_PER_CALL,
    EventStream,
    NotWritten,
    RetryPolicy,
    StreamRecord,
    Written,
)

Answer = Callable[[list[dict[str, Any]]], dict[str, Any]]


def ok(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "FailedRecordCount": 0,
        "Records": [{"ShardId": "shardId-0", "SequenceNumber": str(n)} for n, _ in enumerate(entries)],
    }


def failing(*indexes: int, code: str = "ProvisionedThroughputExceededException") -> Answer:
    def answer(entries: list[dict[str, Any]]) -> dict[str, Any]:
        records = ok(entries)["Records"]
        for index in indexes:
            records[index] = {"ErrorCode": code, "ErrorMessage": "Rate exceeded for shard"}
        return {"FailedRecordCount": len(indexes), "Records": records}

    return answer


def raising(exc: Exception) -> Answer:
    def answer(entries: list[dict[str, Any]]) -> dict[str, Any]:
        raise exc

    return answer


def client_error(code: str, status: int = 400) -> ClientError:
    # What botocore parses from an error answer; the stubs want every metadata key a real answer has.
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutRecords")


class ScriptedKinesis:
    """Answers each put_records call with the next scripted answer (the last one repeats)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.calls: list[list[dict[str, Any]]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Records)
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return answer(Records)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def stream(kinesis: ScriptedKinesis, clock: Clock, retry: RetryPolicy | None = None) -> EventStream:
    return EventStream("events", cast(Any, kinesis), retry, sleep=clock.sleep, clock=clock, rng=random.Random(7))


def records(count: int, size: int = 10) -> list[StreamRecord]:
    return [StreamRecord(bytes([65 + n % 26]) * size, f"user-{n}") for n in range(count)]


def test_all_written_in_one_call_keeps_order() -> None:
    kinesis, clock = ScriptedKinesis(ok), Clock()
    result = stream(kinesis, clock).put(records(3))
    assert [type(o) for o in result.outcomes] == [Written] * 3
    assert [o.sequence_number for o in result.outcomes if isinstance(o, Written)] == ["0", "1", "2"]
    assert result.retried == 0
    assert len(kinesis.calls) == 1
    assert kinesis.calls[0][1] == {"Data": b"B" * 10, "PartitionKey": "user-1"}
    assert clock.sleeps == []


def test_only_the_throttled_record_is_sent_again() -> None:
    kinesis, clock = ScriptedKinesis(failing(1), ok), Clock()
    result = stream(kinesis, clock).put(records(3))
    assert all(isinstance(o, Written) for o in result.outcomes)
    assert result.retried == 1
    assert [len(call) for call in kinesis.calls] == [3, 1]
    assert kinesis.calls[1][0]["PartitionKey"] == "user-1"
    assert 0.025 <= clock.sleeps[0] <= 0.05


def test_backoff_doubles_and_gives_up_after_the_last_attempt() -> None:
    kinesis, clock = ScriptedKinesis(failing(0)), Clock()
    result = stream(kinesis, clock).put(records(2))
    assert result.outcomes[0] == NotWritten("throttled", "ProvisionedThroughputExceededException")
    assert isinstance(result.outcomes[1], Written)
    assert len(kinesis.calls) == RetryPolicy().max_attempts == 4
    assert result.retried == 3
    for sleep, ceiling in zip(clock.sleeps, (0.05, 0.1, 0.2), strict=True):
        assert ceiling / 2 <= sleep <= ceiling
    assert sum(clock.sleeps) < RetryPolicy().budget_s


def test_no_retry_starts_after_the_time_budget() -> None:
    kinesis, clock = ScriptedKinesis(failing(0)), Clock()
    slow = RetryPolicy(max_attempts=10, base_delay_s=0.3, budget_s=1.0)
    stream(kinesis, clock, slow).put(records(1))
    assert clock.now <= 1.0
    assert len(kinesis.calls) == 3  # sleeps of at most 0.3 and 0.6; the next (up to 1.2) would overrun


def test_an_internal_failure_per_record_is_retried_and_reported_unavailable() -> None:
    kinesis, clock = ScriptedKinesis(failing(0, code="InternalFailure")), Clock()
    result = stream(kinesis, clock).put(records(1))
    assert result.outcomes == [NotWritten("unavailable", "InternalFailure")]
    assert len(kinesis.calls) == 4


def test_an_unreachable_endpoint_is_retried_then_every_record_fails() -> None:
    kinesis, clock = ScriptedKinesis(raising(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))), Clock()
    result = stream(kinesis, clock).put(records(3))
    assert result.outcomes == [NotWritten("unavailable", "EndpointConnectionError")] * 3
    assert len(kinesis.calls) == 4
    assert result.retried == 9


def test_a_whole_call_throttled_is_retried_and_then_succeeds() -> None:
    kinesis, clock = ScriptedKinesis(raising(client_error("ProvisionedThroughputExceededException")), ok), Clock()
    result = stream(kinesis, clock).put(records(2))
    assert all(isinstance(o, Written) for o in result.outcomes)
    assert result.retried == 2


@pytest.mark.parametrize("code", ["ResourceNotFoundException", "AccessDeniedException", "KMSDisabledException"])
def test_errors_that_will_not_heal_fail_at_once(code: str) -> None:
    kinesis, clock = ScriptedKinesis(raising(client_error(code))), Clock()
    result = stream(kinesis, clock).put(records(2))
    assert result.outcomes == [NotWritten("unavailable", code)] * 2
    assert len(kinesis.calls) == 1
    assert clock.sleeps == []


def test_a_server_error_is_retried() -> None:
    kinesis, clock = ScriptedKinesis(raising(client_error("ServiceUnavailable", 503)), ok), Clock()
    assert all(isinstance(o, Written) for o in stream(kinesis, clock).put(records(1)).outcomes)


def test_records_split_into_calls_within_kinesis_limits() -> None:
    kinesis, clock = ScriptedKinesis(ok), Clock()
    result = stream(kinesis, clock).put(records(MAX_RECORDS_PER_CALL + 1))
    assert [len(call) for call in kinesis.calls] == [MAX_RECORDS_PER_CALL, 1]
    assert len(result.outcomes) == MAX_RECORDS_PER_CALL + 1
    kinesis = ScriptedKinesis(ok)
    stream(kinesis, clock).put(records(6, size=1024 * 1024 - 100))
    assert all(
        sum(len(r["Data"]) + len(r["PartitionKey"]) for r in call) <= MAX_BYTES_PER_CALL for call in kinesis.calls
    )
    assert [len(call) for call in kinesis.calls] == [5, 1]


def test_a_record_kinesis_would_refuse_is_never_sent() -> None:
    kinesis, clock = ScriptedKinesis(ok), Clock()
    batch = [StreamRecord(b"x" * (1024 * 1024), "k"), StreamRecord(b"x", ""), StreamRecord(b"x", "ok")]
    result = stream(kinesis, clock).put(batch)
    assert result.outcomes[:2] == [
        NotWritten("invalid", "RecordTooLarge"),
        NotWritten("invalid", "InvalidPartitionKey"),
    ]
    assert isinstance(result.outcomes[2], Written)
    assert [[r["PartitionKey"] for r in call] for call in kinesis.calls] == [["ok"]]


def test_nothing_to_write_makes_no_call() -> None:
    kinesis, clock = ScriptedKinesis(ok), Clock()
    assert stream(kinesis, clock).put([]).outcomes == []
    assert kinesis.calls == []
