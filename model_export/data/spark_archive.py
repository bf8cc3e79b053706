"""Reading an archive window on Spark: the same objects, the same per-object parser, de-duplicated by Spark.

The driver lists the archive and picks the objects whose keys may hold the window (archive.selected: a listing,
no reading). Spark reads those objects in parallel with its own binary-file reader (s3:// on AWS Glue, local
paths elsewhere); each partition runs `archive.object_events` -- the very function the single process runs:
gunzip by magic bytes, one pydantic validation per line, malformed lines and unreadable objects counted, events
outside the window left out -- so no line is judged differently. Spark then keeps the first copy of each
event_id in reading order (key order, then line), as archive.read_window does, and returns the distinct events in
time order (ties in reading order). The result equals archive.read_window's, counts included
(tests/integration/test_spark_parity.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from model_export.data.archive import (
    ArchivedEvent,
    ArchiveStats,
    LocalObjects,
    ObjectSource,
    Window,
    object_events,
    read_window,
    selected,
    warn_if_skipped,
)
from model_export.data.window import Reader
from personalization.events import EventType

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What an archived event takes in the archive's objects, at least: a canonical event is about 420 bytes of JSON,
# about 80 gzipped (Firehose writes GZIP); the lower figure, so that a window is judged large, never too small.
ARCHIVED_BYTES_PER_EVENT = 80
# One row per event (ts as microseconds since the epoch: exact both ways), and per partition one row (event_id
# null) with its counts.
EVENT_SCHEMA = (
    "event_id string, user_id string, type string, ts long, item_id string, category string, price double,"
    " quantity long, session_id string, personalization boolean, device string, utc_offset_min long,"
    " rank long, line long, stats string"
)
FIELDS = ArchivedEvent._fields
COLUMNS = (*FIELDS, "rank", "line")


def object_url(source: ObjectSource, key: str) -> str:
    """Where Spark reads an object: s3://BUCKET/KEY (AWS Glue reads S3 natively), or the local file."""
    if isinstance(source, LocalObjects):
        return (source.root / key).resolve().as_uri()
    bucket = getattr(source, "bucket", None)
    if bucket is None:
        raise ValueError(f"{source}: Spark reads local folders and S3 only")
    return f"s3://{bucket}/{key}"


def _same_path(url: str) -> str:
    """Spark writes local paths as file:/x, Python's as_uri file:///x: compare without the scheme's slashes."""
    return url.removeprefix("file://").removeprefix("file:")


def _parse_partition(
    ranks: dict[str, int], window: Window
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        stats = ArchiveStats()
        for batch in batches:
            for path, content in zip(batch["path"], batch["content"], strict=True):
                rows: list[tuple[Any, ...]] = []
                events = object_events(path, partial(bytes, content), window, stats)
                for line, event in enumerate(events):
                    archived = ArchivedEvent.of(event)
                    micros = (event.ts - EPOCH) // timedelta(microseconds=1)
                    rows.append((*archived[:2], event.type.value, micros, *archived[4:], ranks[_same_path(path)], line))
                if rows:
                    frame = pd.DataFrame(rows, columns=list(COLUMNS))
                    yield frame.assign(stats=None)
        counts = {**asdict(stats), "malformed_reasons": dict(stats.malformed_reasons)}
        yield pd.DataFrame({**{column: [None] for column in COLUMNS}, "stats": [json.dumps(counts)]})

    return run


def read_window_spark(
    spark: SparkSession, source: ObjectSource, window: Window
) -> tuple[list[ArchivedEvent], ArchiveStats]:
    """archive.read_window on Spark: the same events in the same order, and the same counts."""
    from pyspark.sql import Window as Over
    from pyspark.sql import functions as F

    stats = ArchiveStats()
    chosen = selected(source.objects(), window, stats)
    if not chosen:
        return [], stats
    urls = [object_url(source, entry.key) for entry in chosen]
    ranks = {_same_path(url): rank for rank, url in enumerate(urls)}
    read: Any = spark.read.format("binaryFile").load(urls).select("path", "content")
    parsed = read.mapInPandas(_parse_partition(ranks, window), EVENT_SCHEMA).cache()
    try:
        for (text,) in parsed.where(F.col("event_id").isNull()).select("stats").collect():
            _add(stats, json.loads(text))
        found = parsed.where(F.col("event_id").isNotNull())
        first = F.row_number().over(Over.partitionBy("event_id").orderBy("rank", "line"))
        distinct = found.withColumn("copy", first).where(F.col("copy") == 1).drop("copy")
        rows: pd.DataFrame = distinct.orderBy("ts", "rank", "line").select(*FIELDS).toPandas()
    finally:
        parsed.unpersist()
    events = [_archived(row) for row in rows.itertuples(index=False, name=None)]
    stats.duplicates = _in_window(stats) - len(events)
    stats.events = len(events)
    warn_if_skipped(source, stats)
    return events, stats


def _in_window(stats: ArchiveStats) -> int:
    """Events read within the window, copies included: the lines less the malformed and the outside ones."""
    return stats.lines - stats.malformed - stats.outside_window


def _add(stats: ArchiveStats, counts: dict[str, Any]) -> None:
    for name in ("objects", "objects_unreadable", "lines", "malformed", "outside_window"):
        setattr(stats, name, getattr(stats, name) + int(counts[name]))
    stats.malformed_reasons.update(counts["malformed_reasons"])


def _archived(row: tuple[Any, ...]) -> ArchivedEvent:
    event_id, user_id, kind, ts, item_id, category, price, quantity, session, consent, device, offset = row
    return ArchivedEvent(
        str(event_id),
        str(user_id),
        EventType(kind),
        EPOCH + timedelta(microseconds=int(ts)),
        _text(item_id),
        _text(category),
        None if pd.isna(price) else float(price),
        int(quantity),
        _text(session),
        bool(consent),
        _text(device),
        None if pd.isna(offset) else int(offset),
    )


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def reader_above(spark_above: int | None, cores: int | None = None) -> Reader:
    """A window reader (window.Reader) that reads on Spark when the window's objects may hold more than
    `spark_above` events (their size over ARCHIVED_BYTES_PER_EVENT: the count is known only once read), and in
    this process otherwise; never on Spark when `spark_above` is None."""

    def read(source: ObjectSource, window: Window) -> tuple[list[ArchivedEvent], ArchiveStats]:
        size = sum(entry.size for entry in selected(source.objects(), window, ArchiveStats()))
        if spark_above is None or size <= spark_above * ARCHIVED_BYTES_PER_EVENT:
            return read_window(source, window)
        from model_export.training.spark_engine import spark_session

        return read_window_spark(spark_session(cores), source, window)

    return read
