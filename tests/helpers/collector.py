"""The collector for integration tests: its environment from the loopback stack, the app under uvicorn, a
Kinesis endpoint that throttles on demand, and a reader of what actually reached the stream."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.local.serve_process import ServeProcess
from infra.local.stack import LocalStack
from tests.helpers.faulty_endpoint import Answer, BatchApi, FaultyEndpoint, event_ids

COLLECT_APP = "collect.app:app"
# The collector has no health route; its OpenAPI document answers 200 once the app is up.
READY_PATH = "/openapi.json"
THROTTLED = "ProvisionedThroughputExceededException"


def collect_env(stack: LocalStack, **extra: str) -> dict[str, str]:
    return {**stack.function_env("CollectFunction"), **extra}


def start_collector(env: Mapping[str, str]) -> ServeProcess:
    return ServeProcess(dict(env), app=COLLECT_APP, ready_path=READY_PATH).start()


@dataclass(frozen=True)
class StreamedRecord:
    shard_id: str
    partition_key: str
    event: dict[str, Any]


def streamed(stack: LocalStack, pseudonym: str) -> list[StreamedRecord]:
    """Every record in the stream keyed by, or naming, this pseudonym (read from the trim horizon)."""
    kinesis = stack.client("kinesis")
    name = stack.physical_names["EventStream"]
    found: list[StreamedRecord] = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            for record in page["Records"]:
                event = json.loads(record["Data"])
                if pseudonym in (record["PartitionKey"], event.get("user_id")):
                    found.append(StreamedRecord(shard["ShardId"], record["PartitionKey"], event))
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator", "")
    return found


KINESIS_BATCH = BatchApi(
    results="Records",
    failed_count="FailedRecordCount",
    error={"ErrorCode": THROTTLED, "ErrorMessage": "Rate exceeded for shard in stream under account 123456789012."},
)


class FaultyKinesis(FaultyEndpoint):
    """A Kinesis API endpoint on loopback in front of the stack's: it forwards every call unchanged, except the
    PutRecords calls it is told to spoil. In those, the chosen records are answered with Kinesis' per-record
    throttling error and are not written; the others go through to the stack and are written.

    A real HTTP server that the collector reaches with its ordinary botocore client (AWS_ENDPOINT_URL_KINESIS),
    so the whole path is exercised: request, partial failure in a 200 answer, retry of only the failed ones.
    """

    def __init__(self, upstream: str, throttle: Iterable[Iterable[int]]) -> None:
        super().__init__(upstream, "faulty-kinesis")
        # For the n-th PutRecords call, the indexes of the records to throttle; calls beyond the plan pass.
        self._plan = [set(indexes) for indexes in throttle]
        # Per PutRecords call, the event ids it carried, and those it throttled.
        self.calls: list[list[str]] = []
        self.throttled: list[list[str]] = []

    def _answer(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        if not headers.get("X-Amz-Target", "").endswith(".PutRecords"):
            return self._forward(method, path, body, headers)
        request = json.loads(body)
        with self._lock:
            spoil = self._plan.pop(0) if self._plan else set()
            ids = event_ids(request["Records"])
            self.calls.append(ids)
            self.throttled.append([ids[i] for i in sorted(spoil)])
        return self._spoil_batch(KINESIS_BATCH, method, path, request, spoil, headers)
