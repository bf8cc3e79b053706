"""An AWS endpoint on loopback in front of the stack's that spoils calls on demand: the collector tests'
FaultyKinesis and the archive tests' FaultyAws are this proxy with their own faults.

A real HTTP server that the code under test reaches with its ordinary botocore clients (AWS_ENDPOINT_URL_*), so
the whole path is exercised: request, partial failure in a 200 answer, retries of only the failed records.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

JSON_1_1 = "application/x-amz-json-1.1"

Answer = tuple[int, str, bytes]


@dataclass(frozen=True)
class BatchApi:
    """How one batch API (PutRecords, PutRecordBatch) names its per-record answers and its failure count."""

    results: str
    failed_count: str
    # The per-record error a spoiled record is answered with.
    error: dict[str, str]
    # Fields of the answer beside the results and the count, when no record reached the stack.
    defaults: dict[str, Any] = field(default_factory=dict)


def event_ids(records: list[dict[str, Any]]) -> list[str]:
    """The event id of each record of a batch request (base64 JSON events, as the collector and ingest send)."""
    return [json.loads(base64.b64decode(record["Data"]))["event_id"] for record in records]


class FaultyEndpoint:
    """Forwards every call unchanged to `upstream`; a subclass overrides `_answer` to spoil the calls it chooses."""

    def __init__(self, upstream: str, name: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        return self._forward(method, path, body, headers)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length", "0")))
                # botocore streams S3 uploads in HTTP chunks (with a trailing checksum): forward the whole body.
                body = b""
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline().strip():
                    pass  # trailers
                return body

            def _any(self) -> None:
                body = self._body()
                dropped = {"host", "content-length", "transfer-encoding", "expect"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
                status, content_type, payload = owner._answer(self.command, self.path, body, headers)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test's output is not the place for an access log

        return Handler

    def _forward(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        data = body if method in ("PUT", "POST") else None
        if data is not None and not any(name.lower() == "content-type" for name in headers):
            # Else urllib sends a form's content type, and the server would parse the object's bytes as a form.
            headers = {**headers, "Content-Type": "application/octet-stream"}
        request = urllib.request.Request(f"{self.upstream}{path}", data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self._opener.open(request, timeout=10) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("Content-Type", ""), err.read()

    def _spoil_batch(
        self, api: BatchApi, method: str, path: str, request: dict[str, Any], spoil: set[int], headers: dict[str, str]
    ) -> Answer:
        """Forward the batch's records not in `spoil`, and answer the spoiled ones with the API's per-record error
        (not written), merged in order into one 200 answer as the service gives for a partial failure."""
        records = request["Records"]
        passed = [record for index, record in enumerate(records) if index not in spoil]
        answer: dict[str, Any] = {api.failed_count: 0, **api.defaults, api.results: []}
        content_type = JSON_1_1
        if passed:
            status, content_type, payload = self._forward(
                method, path, json.dumps({**request, "Records": passed}).encode(), headers
            )
            if status != 200:
                return status, content_type, payload
            answer = json.loads(payload)
        results = iter(answer[api.results])
        merged = [api.error if index in spoil else next(results) for index in range(len(records))]
        failed = int(answer.get(api.failed_count, 0)) + len(spoil)
        return 200, content_type, json.dumps({**answer, api.failed_count: failed, api.results: merged}).encode()
