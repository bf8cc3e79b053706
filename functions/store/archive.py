"""The event archive in S3: written through a Firehose delivery stream, or as objects of our own when it is down.

Layout (CONTRACTS.md): s3://ARCHIVE_BUCKET/events/..., newline-delimited JSON, gzip-compressed by Firehose and by
`put_object` alike. Firehose partitions by the event's date (`events/dt=YYYY-MM-DD/`); objects written here go under
the same prefix as Firehose's, with a name of their own, so readers and the purge see one archive.

`FirehoseArchive.put` never raises for Firehose's sake: it reports which lines were not taken. Records Firehose
refuses one by one and whole calls that fail on the way are retried, only for what is still unwritten, with a short
backoff under a fixed time budget (the ingest invocation has a timeout, and has somewhere else to put them).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from personalization.archive import ARCHIVE_PREFIX
from personalization.purge import PurgeState
from store.batch_put import Attempt, BatchSender, CallLimits, RetryPolicy, split_calls

if TYPE_CHECKING:
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_firehose.type_defs import RecordTypeDef
    from mypy_boto3_s3 import S3Client

# PutRecordBatch limits: 500 records and 4 MiB per call, 1,000 KiB per record. The call's size is counted here
# as its records' base64 form (how the JSON request carries them), which keeps a call under the limit however
# Firehose counts it.
MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024
_LIMITS = CallLimits(MAX_RECORDS_PER_CALL, MAX_BYTES_PER_CALL)

# Call-level errors that will not heal within a second (a missing stream, denied access, a bad request).
_PERMANENT_CODES = frozenset(
    {"ResourceNotFoundException", "InvalidArgumentException", "AccessDeniedException", "InvalidKMSResourceException"}
)


def _encoded_size(line: bytes) -> int:
    return (len(line) + 2) // 3 * 4


def _calls(indexed: Sequence[tuple[int, bytes]]) -> Iterator[list[tuple[int, bytes]]]:
    """Split lines into PutRecordBatch calls within the count and byte limits, keeping their order."""
    return split_calls(indexed, _encoded_size, _LIMITS)


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    delivery_stream: str
    bucket: str
    region: str
    prefix: str = ARCHIVE_PREFIX
    connect_timeout_s: float = 1.0
    read_timeout_s: float = 5.0
    # Up to 4 attempts per call, 100 to 800 ms apart, none started 3 s after the first: then the fallback.
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=4, base_delay_s=0.1, budget_s=3.0))


def _client_config(settings: ArchiveSettings) -> Config:
    # One attempt per call: the loops here resend only what failed, within their budget.
    return Config(
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )


def firehose_client(settings: ArchiveSettings) -> FirehoseClient:
    """A plain botocore client (boto3 would only add import time)."""
    session = botocore.session.get_session()
    client = session.create_client("firehose", region_name=settings.region, config=_client_config(settings))
    return cast("FirehoseClient", client)


def s3_client(settings: ArchiveSettings, *, retries: int = 1) -> S3Client:
    config = _client_config(settings).merge(Config(retries={"total_max_attempts": retries, "mode": "standard"}))
    client = botocore.session.get_session().create_client("s3", region_name=settings.region, config=config)
    return cast("S3Client", client)


@dataclass(frozen=True, slots=True)
class PutOutcome:
    # Indexes (into the lines given) that Firehose did not take, in order.
    refused: list[int]
    # Record sends beyond each record's first: what refusals and failed calls cost.
    retried: int
    # Firehose's error code (or the client-side exception's name) of the last failure, for the log.
    last_error: str | None = None


class FirehoseArchive:
    """PutRecordBatch to one delivery stream; `put` reports the lines it could not deliver."""

    def __init__(
        self,
        delivery_stream: str,
        client: FirehoseClient,
        retry: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.delivery_stream = delivery_stream
        self._client = client
        self._sender = BatchSender(retry or RetryPolicy(), sleep=sleep, clock=clock, rng=rng)

    @classmethod
    def connect(cls, settings: ArchiveSettings) -> FirehoseArchive:
        return cls(settings.delivery_stream, firehose_client(settings), settings.retry)

    def put(self, lines: Sequence[bytes]) -> PutOutcome:
        refused: list[int] = []
        sendable: list[tuple[int, bytes]] = []
        for index, line in enumerate(lines):
            # Never the case for an accepted event (32 KiB at most); checked so one can never fail a whole call.
            if len(line) > MAX_RECORD_BYTES:
                refused.append(index)
            else:
                sendable.append((index, line))
        too_large: str | None = "RecordTooLarge" if refused else None
        delivery = self._sender.send(sendable, self._attempt, _encoded_size, _LIMITS)
        refused.extend(index for index, _ in delivery.unwritten)
        last_error = delivery.last_error or too_large
        return PutOutcome(sorted(refused), delivery.retried, last_error)

    def _attempt(self, pending: list[tuple[int, bytes]]) -> Attempt[bytes]:
        records: list[RecordTypeDef] = [{"Data": line} for _, line in pending]
        try:
            response = self._client.put_record_batch(DeliveryStreamName=self.delivery_stream, Records=records)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            return Attempt(pending, code not in _PERMANENT_CODES, code)
        except BotoCoreError as exc:  # connection refused, timeouts: the endpoint may answer next time
            return Attempt(pending, True, type(exc).__name__)
        if not response.get("FailedPutCount"):
            return Attempt([], False)
        failed: list[tuple[int, bytes]] = []
        error: str | None = None
        for item, entry in zip(pending, response["RequestResponses"], strict=True):
            if "ErrorCode" in entry:
                failed.append(item)
                error = str(cast("dict[str, Any]", entry)["ErrorCode"])
        return Attempt(failed, True, error)


class ArchiveBucket:
    """The archive bucket's objects under the prefix: ingest's fallback writes, the purge's reads and rewrites."""

    def __init__(self, bucket: str, client: S3Client, prefix: str = ARCHIVE_PREFIX) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._client = client

    @classmethod
    def connect(cls, settings: ArchiveSettings, *, retries: int = 1) -> ArchiveBucket:
        return cls(settings.bucket, s3_client(settings, retries=retries), settings.prefix)

    def put_day(self, day: str, body: bytes) -> str:
        """A new object of one event date's lines, beside Firehose's for that date; returns its key."""
        key = f"{self.prefix}dt={day}/ingest-{uuid.uuid4().hex}.gz"
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return key

    def keys(self, modified_since: datetime | None = None) -> Iterator[str]:
        """Every key under the prefix, or those of objects written (or rewritten) since `modified_since`."""
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for entry in page.get("Contents", []):
                if modified_since is None or entry["LastModified"] >= modified_since:
                    yield entry["Key"]

    def read(self, key: str) -> bytes:
        return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def replace(self, key: str, body: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=key)


# Beside the archive, outside its prefix: no reader of events sees it.
PURGE_STATE_KEY = "purge/state.json"


class PurgeStateObject:
    """The purge's state (personalization.purge.PurgeState) as one small JSON object in the archive bucket."""

    def __init__(self, bucket: str, client: S3Client, key: str = PURGE_STATE_KEY) -> None:
        self.bucket = bucket
        self.key = key
        self._client = client

    @classmethod
    def connect(cls, settings: ArchiveSettings, *, retries: int = 3) -> PurgeStateObject:
        return cls(settings.bucket, s3_client(settings, retries=retries))

    def load(self) -> PurgeState | None:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except self._client.exceptions.NoSuchKey:
            return None
        data = json.loads(body)
        return PurgeState(datetime.fromisoformat(data["started"]), frozenset(data["purged"]))

    def save(self, state: PurgeState) -> None:
        body = json.dumps({"started": state.started.isoformat(), "purged": sorted(state.purged)}).encode()
        self._client.put_object(Bucket=self.bucket, Key=self.key, Body=body)
