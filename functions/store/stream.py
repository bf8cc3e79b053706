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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from personalization.events import Event

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import PutRecordsRequestEntryTypeDef

# Kinesis limits for one PutRecords call, and for one record (data plus partition key).
MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PARTITION_KEY_CHARS = 256

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
    client = botocore.session.get_session().create_client("kinesis", region_name=settings.region, config=config)
    return cast("KinesisClient", client)


def _record_size(record: StreamRecord) -> int:
    return len(record.data) + len(record.partition_key.encode())


def _calls(indexed: Sequence[tuple[int, StreamRecord]]) -> Iterator[list[tuple[int, StreamRecord]]]:
    """Split records into PutRecords calls within the count and byte limits, keeping their order."""
    call: list[tuple[int, StreamRecord]] = []
    size = 0
    for item in indexed:
        record_size = _record_size(item[1])
        if call and (len(call) == MAX_RECORDS_PER_CALL or size + record_size > MAX_BYTES_PER_CALL):
            yield call
            call, size = [], 0
        call.append(item)
        size += record_size
    if call:
        yield call


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
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

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
        deadline = self._clock() + self._retry.budget_s
        retried = 0
        for call in _calls(sendable):
            retried += self._put_call(call, outcomes, deadline)
        return PutResult([outcome for outcome in outcomes if outcome is not None], retried)

    def _put_call(
        self, pending: list[tuple[int, StreamRecord]], outcomes: list[RecordOutcome | None], deadline: float
    ) -> int:
        """Send one call's records until each is written or out of attempts; return how many were resent."""
        retried = 0
        for attempt in range(1, self._retry.max_attempts + 1):
            if attempt > 1:
                pause = self._retry.delay(attempt - 1, self._rng)
                if self._clock() + pause > deadline:
                    break
                self._sleep(pause)
                retried += len(pending)
            pending, retry = self._attempt(pending, outcomes)
            if not pending or not retry:
                break
        return retried

    def _attempt(
        self, pending: list[tuple[int, StreamRecord]], outcomes: list[RecordOutcome | None]
    ) -> tuple[list[tuple[int, StreamRecord]], bool]:
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
            return (pending if retry else []), retry
        failed: list[tuple[int, StreamRecord]] = []
        for (index, record), entry in zip(pending, response["Records"], strict=True):
            if "ErrorCode" in entry:
                outcomes[index] = _record_failure(cast("dict[str, Any]", entry))
                failed.append((index, record))
            else:
                outcomes[index] = Written(entry["ShardId"], entry["SequenceNumber"])
        return failed, True
