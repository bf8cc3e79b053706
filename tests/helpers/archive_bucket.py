"""The archive for integration tests: what reached the archive bucket, and an AWS endpoint on loopback that spoils
Firehose and S3 calls on demand (tests.helpers.faulty_endpoint with its faults)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from infra.local.stack import LocalStack
from personalization.archive import ARCHIVE_PREFIX, object_lines
from tests.helpers.faulty_endpoint import JSON_1_1, Answer, BatchApi, FaultyEndpoint, event_ids

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


FIREHOSE_BATCH = BatchApi(
    results="RequestResponses",
    failed_count="FailedPutCount",
    error={"ErrorCode": UNAVAILABLE, "ErrorMessage": "Slow down."},
    defaults={"Encrypted": False},
)


class FaultyAws(FaultyEndpoint):
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
        super().__init__(upstream, "faulty-aws")
        # For the n-th PutRecordBatch call that reaches the plan, the indexes of the records to refuse.
        self._plan = [set(indexes) for indexes in refuse]
        self.firehose_down = firehose_down
        self.s3_down = s3_down
        # Per PutRecordBatch call, the event ids it carried, and those it refused.
        self.calls: list[list[str]] = []
        self.refused: list[list[str]] = []
        self.s3_puts_failed = 0

    def _answer(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
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

    def _put_record_batch(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        request = json.loads(body)
        ids = event_ids(request["Records"])
        with self._lock:
            self.calls.append(ids)
            if self.firehose_down > 0:
                self.firehose_down -= 1
                self.refused.append(ids)
                error = {"__type": UNAVAILABLE, "message": "Slow down."}
                return 503, JSON_1_1, json.dumps(error).encode()
            spoil = self._plan.pop(0) if self._plan else set()
            self.refused.append([ids[i] for i in sorted(spoil)])
        return self._spoil_batch(FIREHOSE_BATCH, method, path, request, spoil, headers)
