"""The archive for integration tests: what reached the archive bucket, and an AWS endpoint on loopback that spoils
Firehose and S3 calls on demand (in front of the stack's, like the collector tests' FaultyKinesis)."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from infra.local.stack import LocalStack
from personalization.archive import ARCHIVE_PREFIX, object_lines

UNAVAILABLE = "ServiceUnavailableException"


@dataclass
class Archived:
    """Every line under the archive prefix, by object key."""

    objects: dict[str, list[bytes]] = field(default_factory=dict)
    gzipped: dict[str, bool] = field(default_factory=dict)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for lines in self.objects.values() for line in lines]

    @property
    def event_ids(self) -> list[str]:
        return [event["event_id"] for event in self.events]

    def text(self) -> bytes:
        return b"".join(line for lines in self.objects.values() for line in lines)


def archived(stack: LocalStack) -> Archived:
    s3 = stack.client("s3")
    bucket = stack.physical_names["ArchiveBucket"]
    found = Archived()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=ARCHIVE_PREFIX):
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            found.objects[entry["Key"]] = list(object_lines(body))
            found.gzipped[entry["Key"]] = body[:2] == b"\x1f\x8b"
    return found


class FaultyAws:
    """An AWS endpoint on loopback in front of the stack's: it forwards every call unchanged, except

    - the PutRecordBatch calls it is told to spoil: the chosen records are answered with Firehose's per-record
      error and are not written, the others go through and are written; or, while `firehose_down` calls remain,
      the whole call is answered 503;
    - while `s3_down` is set, S3 PUTs are answered 503 and not written.

    A real HTTP server that ingest reaches with its ordinary botocore clients (AWS_ENDPOINT_URL_FIREHOSE,
    AWS_ENDPOINT_URL_S3), so the whole path is exercised: request, partial failure in a 200 answer, retries.
    """

    def __init__(
        self,
        upstream: str,
        refuse: Iterable[Iterable[int]] = (),
        *,
        firehose_down: int = 0,
        s3_down: bool = False,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        # For the n-th PutRecordBatch call that reaches the plan, the indexes of the records to refuse.
        self._plan = [set(indexes) for indexes in refuse]
        self.firehose_down = firehose_down
        self.s3_down = s3_down
        self._lock = threading.Lock()
        # Per PutRecordBatch call, the event ids it carried, and those it refused.
        self.calls: list[list[str]] = []
        self.refused: list[list[str]] = []
        self.s3_puts_failed = 0
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-aws", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultyAws:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

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

    def _answer(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        if headers.get("X-Amz-Target", "").endswith(".PutRecordBatch"):
            return self._put_record_batch(method, path, body, headers)
        if method == "PUT" and not headers.get("X-Amz-Target"):
            with self._lock:
                spoil = self.s3_down
                self.s3_puts_failed += spoil
            if spoil:
                error = (
                    b"<Error><Code>ServiceUnavailable</Code><Message>Please reduce your request rate.</Message></Error>"
                )
                return 503, "application/xml", error
        return self._forward(method, path, body, headers)

    def _forward(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
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

    def _put_record_batch(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        request = json.loads(body)
        records = request["Records"]
        ids = [json.loads(base64.b64decode(r["Data"]))["event_id"] for r in records]
        with self._lock:
            self.calls.append(ids)
            if self.firehose_down > 0:
                self.firehose_down -= 1
                self.refused.append(ids)
                error = {"__type": UNAVAILABLE, "message": "Slow down."}
                return 503, "application/x-amz-json-1.1", json.dumps(error).encode()
            spoil = self._plan.pop(0) if self._plan else set()
            self.refused.append([ids[i] for i in sorted(spoil)])
        passed = [record for index, record in enumerate(records) if index not in spoil]
        taken: list[dict[str, Any]] = []
        content_type = "application/x-amz-json-1.1"
        if passed:
            status, content_type, payload = self._forward(
                method, path, json.dumps({**request, "Records": passed}).encode(), headers
            )
            if status != 200:
                return status, content_type, payload
            taken = json.loads(payload)["RequestResponses"]
        results = iter(taken)
        merged = [
            {"ErrorCode": UNAVAILABLE, "ErrorMessage": "Slow down."} if index in spoil else next(results)
            for index in range(len(records))
        ]
        answer = {"FailedPutCount": len(spoil), "Encrypted": False, "RequestResponses": merged}
        return 200, content_type, json.dumps(answer).encode()
