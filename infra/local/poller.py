"""A local stand-in for Lambda's Kinesis event source mapping.

It reads the loopback stream with shard iterators, wraps records exactly as Lambda does (base64 data,
sequence numbers, eventID "shardId:sequence"), invokes the real handler, and honours its
ReportBatchItemFailures answer the way Lambda does: the shard restarts at the lowest reported sequence
number. No library emulates an event source mapping against a Kinesis API server, so this is hand-written.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
            event = {"Records": [lambda_kinesis_record(r, shard_id, arn, region) for r in records]}
            stats.invocations += 1
            try:
                response = self.handler(event, LocalLambdaContext(self.function_name)) or {}
                failures = [item["itemIdentifier"] for item in response.get("batchItemFailures", [])]
            except Exception:
                log.exception("ingest handler raised; retrying the whole batch as Lambda would")
                stats.errors += 1
                failures = [records[0]["SequenceNumber"]]
            if failures:
                lowest = min(failures, key=int)
                # Lambda checkpoints everything before the lowest reported record; only the rest comes back.
                done = [r for r in records if int(r["SequenceNumber"]) < int(lowest)]
                self._checkpoint(shard_id, done, stats)
                stats.reported_failures += len(failures)
                attempts += 1
                if attempts > self.max_retries:
                    raise RuntimeError(f"{shard_id}: batch still failing after {self.max_retries} retries")
                iterator = self._iterator(shard_id, at=lowest)
                continue
            attempts = 0
            self._checkpoint(shard_id, records, stats)
            iterator = page.get("NextShardIterator")

    def _checkpoint(self, shard_id: str, records: list[dict[str, Any]], stats: PollStats) -> None:
        if not records:
            return
        stats.records += len(records)
        self.on_batch(len(records))
        self._positions[shard_id] = records[-1]["SequenceNumber"]
