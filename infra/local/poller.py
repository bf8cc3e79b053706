"""A local stand-in for Lambda's Kinesis event source mapping.

It reads the loopback stream with shard iterators, wraps records exactly as Lambda does (base64 data,
sequence numbers, eventID "shardId:sequence"), invokes the real handler, and honours its
ReportBatchItemFailures answer the way Lambda does: the shard restarts at the lowest reported sequence
number. No library emulates an event source mapping against a Kinesis API server, so this is hand-written.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class LocalLambdaContext:
    """The attributes of a Lambda context object that handlers and powertools read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def lambda_kinesis_record(record: dict[str, Any], shard_id: str, stream_arn: str, region: str) -> dict[str, Any]:
    arrival = record["ApproximateArrivalTimestamp"]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(record["Data"]).decode(),
            "approximateArrivalTimestamp": arrival.timestamp() if isinstance(arrival, datetime) else float(arrival),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/local-ingest",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


@dataclass
class PollStats:
    records: int = 0
    invocations: int = 0
    reported_failures: int = 0
    errors: int = 0
    given_up: int = 0


@dataclass
class _Cursor:
    """One shard's place in a live poll: where to read next, and the batch being gathered."""

    iterator: str | None = None
    retry_at: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    oldest: float = 0.0
    attempts: int = 0

    def reset(self, retry_at: str | None = None) -> None:
        """Read again from `retry_at`, else from just after the shard's checkpoint."""
        self.iterator, self.retry_at, self.pending = None, retry_at, []


@dataclass
class KinesisPoller:
    kinesis: Any
    stream_name: str
    handler: Handler
    batch_size: int = 100
    function_name: str = "IngestFunction"
    max_retries: int = 10
    on_batch: Callable[[int], None] = lambda n: None
    _positions: dict[str, str] = field(default_factory=dict)  # shard -> last checkpointed sequence number

    def _stream(self) -> tuple[str, list[str]]:
        description = self.kinesis.describe_stream(StreamName=self.stream_name)["StreamDescription"]
        return description["StreamARN"], [shard["ShardId"] for shard in description["Shards"]]

    def _iterator(self, shard_id: str, at: str | None = None) -> str:
        if at is not None:
            kind, seq = ("AT_SEQUENCE_NUMBER", at)
        elif shard_id in self._positions:
            kind, seq = ("AFTER_SEQUENCE_NUMBER", self._positions[shard_id])
        else:
            kind, seq = ("TRIM_HORIZON", "")
        args: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": shard_id, "ShardIteratorType": kind}
        if seq:
            args["StartingSequenceNumber"] = seq
        iterator: str = self.kinesis.get_shard_iterator(**args)["ShardIterator"]
        return iterator

    def drain(self) -> PollStats:
        """Deliver everything currently in the stream, shard by shard, then return."""
        stats = PollStats()
        arn, shards = self._stream()
        region = arn.split(":")[3]
        for shard_id in shards:
            self._drain_shard(shard_id, arn, region, stats)
        return stats

    def _drain_shard(self, shard_id: str, arn: str, region: str, stats: PollStats) -> None:
        iterator: str | None = self._iterator(shard_id)
        attempts = 0
        while iterator:
            page = self.kinesis.get_records(ShardIterator=iterator, Limit=self.batch_size)
            records = page["Records"]
            if not records:
                return
            lowest = self._invoke(shard_id, records, arn, region, stats)
            if lowest is not None:
                attempts += 1
                if attempts > self.max_retries:
                    raise RuntimeError(f"{shard_id}: batch still failing after {self.max_retries} retries")
                iterator = self._iterator(shard_id, at=lowest)
                continue
            attempts = 0
            iterator = page.get("NextShardIterator")

    def _invoke(
        self, shard_id: str, records: list[dict[str, Any]], arn: str, region: str, stats: PollStats
    ) -> str | None:
        """Hand one batch to the handler and checkpoint what it took; the lowest failed sequence number, if any."""
        event = {"Records": [lambda_kinesis_record(r, shard_id, arn, region) for r in records]}
        stats.invocations += 1
        try:
            response = self.handler(event, LocalLambdaContext(self.function_name)) or {}
            failures = [item["itemIdentifier"] for item in response.get("batchItemFailures", [])]
        except Exception:
            log.exception("ingest handler raised; retrying the whole batch as Lambda would")
            stats.errors += 1
            failures = [records[0]["SequenceNumber"]]
        if not failures:
            self._checkpoint(shard_id, records, stats)
            return None
        lowest: str = min(failures, key=int)
        # Lambda checkpoints everything before the lowest reported record; only the rest comes back.
        self._checkpoint(shard_id, [r for r in records if int(r["SequenceNumber"]) < int(lowest)], stats)
        stats.reported_failures += len(failures)
        return lowest

    def run_forever(
        self,
        stop: threading.Event,
        batch_size: int | None = None,
        window_s: float = 0.0,
        poll_interval_s: float = 0.2,
    ) -> PollStats:
        """Deliver records as they arrive until `stop` is set, the way the event source mapping does.

        A shard's batch goes to the handler once it holds `batch_size` records or its oldest record has waited
        `window_s` (MaximumBatchingWindowInSeconds). A batch still failing after `max_retries` is given up and
        the shard moves on, as Lambda does once it has sent the batch to the on-failure destination: one poison
        batch must not stop a live demo. Every other error is logged and the loop keeps going from the last
        checkpoint, so a background thread never dies silently.
        """
        size = batch_size or self.batch_size
        stats = PollStats()
        arn, shards = self._stream()
        region = arn.split(":")[3]
        cursors = {shard_id: _Cursor() for shard_id in shards}
        while not stop.is_set():
            for shard_id, cursor in cursors.items():
                try:
                    self._poll_live(shard_id, cursor, size, window_s, arn, region, stats)
                except (BotoCoreError, ClientError) as exc:
                    # The stream's server going away (Ctrl-C reaches the whole process group) is one line.
                    if not stop.is_set():
                        log.warning("live poll of %s failed (%s); resuming from its checkpoint", shard_id, exc)
                    stats.errors += 1
                    cursor.reset()
                except Exception:
                    log.exception("live poll of %s failed; resuming from its last checkpoint", shard_id)
                    stats.errors += 1
                    cursor.reset()
            stop.wait(poll_interval_s)
        return stats

    def _poll_live(
        self, shard_id: str, cursor: _Cursor, size: int, window_s: float, arn: str, region: str, stats: PollStats
    ) -> None:
        if cursor.iterator is None:
            cursor.iterator = self._iterator(shard_id, at=cursor.retry_at)
            cursor.retry_at = None
        if len(cursor.pending) < size:
            page = self.kinesis.get_records(ShardIterator=cursor.iterator, Limit=size - len(cursor.pending))
            if page["Records"] and not cursor.pending:
                cursor.oldest = time.monotonic()
            cursor.pending += page["Records"]
            cursor.iterator = page.get("NextShardIterator")
        if not cursor.pending:
            return
        if len(cursor.pending) < size and time.monotonic() - cursor.oldest < window_s:
            return
        batch, cursor.pending = cursor.pending, []
        lowest = self._invoke(shard_id, batch, arn, region, stats)
        if lowest is None:
            cursor.attempts = 0
            return
        cursor.attempts += 1
        if cursor.attempts > self.max_retries:
            rest = [r for r in batch if int(r["SequenceNumber"]) >= int(lowest)]
            log.error("%s: giving up %d records after %d retries", shard_id, len(rest), self.max_retries)
            self._checkpoint(shard_id, rest, stats)
            stats.given_up += len(rest)
            cursor.attempts = 0
            return
        # Re-read from the lowest failure on the next round; the records after the batch are read again too.
        cursor.reset(retry_at=lowest)

    def _checkpoint(self, shard_id: str, records: list[dict[str, Any]], stats: PollStats) -> None:
        if not records:
            return
        stats.records += len(records)
        self.on_batch(len(records))
        self._positions[shard_id] = records[-1]["SequenceNumber"]
