"""Copy every record in a Kinesis stream to a JSON-lines file: the input of `python -m model_export experiment`.

    with LocalStack() as stack:
        count = dump_stream(stack, stack.physical_names["EventStream"], Path("events.jsonl"))

Each record's data becomes one line, byte for byte, with one exception: a record holding a line break would
split into two lines, so CR and LF are written as spaces. Outside strings, where JSON allows raw line breaks
at all, they are whitespace, so a valid event means exactly the same; an invalid record stays invalid.
Shards are read one after another from TRIM_HORIZON, so lines are in order per shard only; the report sorts
per user by time and drops redelivered duplicates by event_id.
"""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from infra.local.stack import LocalStack

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

GET_RECORDS_LIMIT = 10_000
# An open shard answers at its tip with no records and MillisBehindLatest 0; a page with no records while
# still behind (AWS does return those) is retried after this pause instead of being taken for the end.
_BEHIND_PAUSE_S = 0.2
_MAX_EMPTY_PAGES_BEHIND = 50
_LINE_BREAKS = bytes.maketrans(b"\r\n", b"  ")


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


def _kinesis(kinesis_or_stack: KinesisClient | LocalStack | Any) -> Any:
    return kinesis_or_stack.client("kinesis") if isinstance(kinesis_or_stack, LocalStack) else kinesis_or_stack


def shard_ids(kinesis: Any, stream_name: str) -> list[str]:
    """Every shard, open or closed (a resharded stream keeps its parents' records until they expire)."""
    shards: list[str] = []
    page = kinesis.list_shards(StreamName=stream_name)
    while True:
        shards += [shard["ShardId"] for shard in page["Shards"]]
        token = page.get("NextToken")
        if not token:
            return shards
        page = kinesis.list_shards(NextToken=token)


def _dump_shard(kinesis: Any, stream_name: str, shard_id: str, out: _Sink) -> int:
    iterator = kinesis.get_shard_iterator(StreamName=stream_name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    written = empty_behind = 0
    while iterator:
        page = kinesis.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
        for record in page["Records"]:
            out.write(bytes(record["Data"]).translate(_LINE_BREAKS) + b"\n")
        written += len(page["Records"])
        # A closed shard ends with no next iterator; an open one at its tip with an empty page, not behind.
        iterator = page.get("NextShardIterator")
        if not page["Records"]:
            if not page.get("MillisBehindLatest"):
                break
            empty_behind += 1
            if empty_behind > _MAX_EMPTY_PAGES_BEHIND:
                raise RuntimeError(f"{shard_id}: still behind after {_MAX_EMPTY_PAGES_BEHIND} empty pages")
            time.sleep(_BEHIND_PAUSE_S)
        else:
            empty_behind = 0
    return written


def dump_stream(kinesis_or_stack: KinesisClient | LocalStack | Any, stream_name: str, path: Path) -> int:
    """Write every record of `stream_name` as one line of `path` (gzip when it ends in .gz); returns the count.

    Written to a temporary file beside `path` and renamed, so a reader never sees half a dump.
    """
    kinesis = _kinesis(kinesis_or_stack)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as raw:
            out: _Sink = gzip.GzipFile(fileobj=raw, mode="wb") if path.name.endswith(".gz") else raw
            count = sum(_dump_shard(kinesis, stream_name, shard, out) for shard in shard_ids(kinesis, stream_name))
            if isinstance(out, gzip.GzipFile):
                out.close()  # writes the gzip trailer; the underlying file stays open for the `with` to close
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return count
