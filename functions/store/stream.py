"""The event stream: the only code that writes to Kinesis.

Writers hand over serialized records with their partition keys and get one outcome per record back, in order.
Records Kinesis refuses one by one (throttling, internal failure) and whole calls that fail on the way are
retried, only for what is still unwritten, with a short exponential backoff under a fixed time budget: the
collector answers a browser, which may retry itself, so waiting long here only holds a request open.

A record reported failed may still have been written (a read timeout after Kinesis accepted it). That is safe
by design: every event carries its event_id, and the profile fold skips an id it has seen.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from personalization.events import Event
from store import aws
from store.batch_put import Attempt, BatchSender, CallLimits
from store.batch_put import RetryPolicy as RetryPolicy  # part of this module's API (StreamSettings.retry)

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import PutRecordsRequestEntryTypeDef

# Kinesis limits for one PutRecords call, and for one record (data plus partition key).
MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PARTITION_KEY_CHARS = 256
_LIMITS = CallLimits(MAX_RECORDS_PER_CALL, MAX_BYTES_PER_CALL)

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "KMSThrottlingException",
        "LimitExceededException",
        "ThrottlingException",
    }
)
# Transient server-side failures: worth another attempt. Anything else (a missing stream, denied access, a
# disabled key) will not heal within a second, so it fails at once.
TRANSIENT_CODES = frozenset(
    {"InternalFailure", "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException"}
)

FailureReason = Literal["throttled", "unavailable", "invalid"]


@dataclass(frozen=True, slots=True)
class StreamRecord:
    data: bytes
    partition_key: str


@dataclass(frozen=True, slots=True)
class Written:
    shard_id: str
    sequence_number: str


@dataclass(frozen=True, slots=True)
class NotWritten:
    reason: FailureReason
    # Kinesis' error code, or the client-side exception's name: for logs, never shown to a browser.
    error_code: str


RecordOutcome = Written | NotWritten


@dataclass(frozen=True, slots=True)
class PutResult:
    outcomes: list[RecordOutcome]
    # Record sends beyond each record's first: what throttling and transient failures cost.
    retried: int = 0

    @property
    def written(self) -> int:
        return sum(isinstance(outcome, Written) for outcome in self.outcomes)


@dataclass(frozen=True, slots=True)
class StreamSettings:
    stream_name: str
    region: str
    connect_timeout_s: float = 0.25
    read_timeout_s: float = 0.5
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def kinesis_client(settings: StreamSettings) -> KinesisClient:
    """A plain botocore client (boto3 would only add import time) with our retries instead of botocore's."""
    config = Config(
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        # One attempt per call: the retry loop below resends only the records that failed, within its budget.
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    client = aws.client("kinesis", settings.region, config)
    return cast("KinesisClient", client)


def _record_size(record: StreamRecord) -> int:
    return len(record.data) + len(record.partition_key.encode())


def _invalid(record: StreamRecord) -> NotWritten | None:
    if not 1 <= len(record.partition_key) <= MAX_PARTITION_KEY_CHARS:
        return NotWritten("invalid", "InvalidPartitionKey")
    if _record_size(record) > MAX_RECORD_BYTES:
        return NotWritten("invalid", "RecordTooLarge")
    return None


def _call_failure(exc: Exception) -> tuple[NotWritten, bool]:
    """What a failed PutRecords call means for each of its records, and whether another attempt may help."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
        if code in THROTTLING_CODES:
            return NotWritten("throttled", code), True
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return NotWritten("unavailable", code), code in TRANSIENT_CODES or status >= 500
    # Connection refused, timeouts, a dropped connection: the endpoint may answer the next time.
    return NotWritten("unavailable", type(exc).__name__), True


def _record_failure(entry: dict[str, Any]) -> NotWritten:
    code = str(entry.get("ErrorCode", "InternalFailure"))
    return NotWritten("throttled" if code in THROTTLING_CODES else "unavailable", code)


class EventStream:
    """Writes records to one Kinesis stream; `put` never raises for Kinesis' sake, it reports per record."""

    def __init__(
        self,
        stream_name: str,
        client: KinesisClient,
        retry: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.stream_name = stream_name
        self._client = client
        self._sender = BatchSender(retry or RetryPolicy(), sleep=sleep, clock=clock, rng=rng)

    @classmethod
    def connect(cls, settings: StreamSettings) -> EventStream:
        return cls(settings.stream_name, kinesis_client(settings), settings.retry)

    def put_events(self, events: Sequence[Event], partition_key: str) -> PutResult:
        """One person's events, in order, under their pseudonymous id (so one shard keeps their order)."""
        return self.put([StreamRecord(event.to_json_bytes(), partition_key) for event in events])

    def put(self, records: Sequence[StreamRecord]) -> PutResult:
        outcomes: list[RecordOutcome | None] = [None] * len(records)
        sendable: list[tuple[int, StreamRecord]] = []
        for index, record in enumerate(records):
            problem = _invalid(record)
            if problem is None:
                sendable.append((index, record))
            else:
                outcomes[index] = problem
        # Every attempt fills in the outcomes of its records, so what the delivery leaves over is already there.
        delivery = self._sender.send(sendable, lambda pending: self._attempt(pending, outcomes), _record_size, _LIMITS)
        return PutResult([outcome for outcome in outcomes if outcome is not None], delivery.retried)

    def _attempt(
        self, pending: list[tuple[int, StreamRecord]], outcomes: list[RecordOutcome | None]
    ) -> Attempt[StreamRecord]:
        """One PutRecords call: fill in every record's outcome; return the ones worth sending again."""
        entries: list[PutRecordsRequestEntryTypeDef] = [
            {"Data": record.data, "PartitionKey": record.partition_key} for _, record in pending
        ]
        try:
            response = self._client.put_records(StreamName=self.stream_name, Records=entries)
        except (BotoCoreError, ClientError) as exc:
            failure, retry = _call_failure(exc)
            for index, _ in pending:
                outcomes[index] = failure
            return Attempt((pending if retry else []), retry)
        failed: list[tuple[int, StreamRecord]] = []
        for (index, record), entry in zip(pending, response["Records"], strict=True):
            if "ErrorCode" in entry:
                outcomes[index] = _record_failure(cast("dict[str, Any]", entry))
                failed.append((index, record))
            else:
                outcomes[index] = Written(entry["ShardId"], entry["SequenceNumber"])
        return Attempt(failed, True)
