"""The collector for integration tests: its environment from the loopback stack, the app under uvicorn, a
Kinesis endpoint that throttles on demand, and a reader of what actually reached the stream."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import pytest

from infra.local.serve_process import ServeProcess
from infra.local.stack import LocalStack

COLLECT_APP = "collect.app:app"
# The collector has no health route; its OpenAPI document answers 200 once the app is up.
READY_PATH = "/openapi.json"
THROTTLED = "ProvisionedThroughputExceededException"


def collect_env(stack: LocalStack, **extra: str) -> dict[str, str]:
    return {**stack.function_env("CollectFunction"), **extra}


def start_collector(env: Mapping[str, str]) -> ServeProcess:
    return ServeProcess(dict(env), app=COLLECT_APP, ready_path=READY_PATH).start()


@pytest.fixture(scope="module")
def collector(local_stack: LocalStack) -> Iterator[ServeProcess]:
    process = start_collector(collect_env(local_stack))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def identity_key(local_stack: LocalStack) -> bytes:
    name = local_stack.function_env("CollectFunction")["IDENTITY_KEY_PARAMETER"]
    return local_stack.secret_values[name].encode()


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


class FaultyKinesis:
    """A Kinesis API endpoint on loopback in front of the stack's: it forwards every call unchanged, except the
    PutRecords calls it is told to spoil. In those, the chosen records are answered with Kinesis' per-record
    throttling error and are not written; the others go through to the stack and are written.

    A real HTTP server that the collector reaches with its ordinary botocore client (AWS_ENDPOINT_URL_KINESIS),
    so the whole path is exercised: request, partial failure in a 200 answer, retry of only the failed ones.
    """

    def __init__(self, upstream: str, throttle: Iterable[Iterable[int]]) -> None:
        self.upstream = upstream.rstrip("/")
        # For the n-th PutRecords call, the indexes of the records to throttle; calls beyond the plan pass.
        self._plan = [set(indexes) for indexes in throttle]
        self._lock = threading.Lock()
        # Per PutRecords call, the event ids it carried, and those it throttled.
        self.calls: list[list[str]] = []
        self.throttled: list[list[str]] = []
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-kinesis", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultyKinesis:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}}
                if self.headers.get("X-Amz-Target", "").endswith(".PutRecords"):
                    status, content_type, payload = owner._put_records(self.path, body, headers)
                else:
                    status, content_type, payload = owner._forward(self.path, body, headers)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test's output is not the place for an access log

        return Handler

    def _forward(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        request = urllib.request.Request(f"{self.upstream}{path}", data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with self._opener.open(request, timeout=10) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("Content-Type", ""), err.read()

    def _put_records(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        request = json.loads(body)
        records = request["Records"]
        with self._lock:
            spoil = self._plan.pop(0) if self._plan else set()
            ids = [json.loads(base64.b64decode(r["Data"]))["event_id"] for r in records]
            self.calls.append(ids)
            self.throttled.append([ids[i] for i in sorted(spoil)])
        passed = [record for index, record in enumerate(records) if index not in spoil]
        written: list[dict[str, Any]] = []
        failed_count = 0
        content_type = "application/x-amz-json-1.1"
        if passed:
            status, content_type, payload = self._forward(
                path, json.dumps({**request, "Records": passed}).encode(), headers
            )
            if status != 200:
                return status, content_type, payload
            answer = json.loads(payload)
            written, failed_count = answer["Records"], answer["FailedRecordCount"]
        results = iter(written)
        merged = [
            {"ErrorCode": THROTTLED, "ErrorMessage": "Rate exceeded for shard in stream under account 123456789012."}
            if index in spoil
            else next(results)
            for index in range(len(records))
        ]
        return (
            200,
            content_type,
            json.dumps({"FailedRecordCount": failed_count + len(spoil), "Records": merged}).encode(),
        )
