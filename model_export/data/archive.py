"""Reading the event archive: one window of days, de-duplicated by event_id, as compact validated events.

The archive (written by ingest through Firehose) holds objects of newline-delimited JSON, one event of the one
schema (personalization.events.Event) per line, some gzip-compressed. A key's folders carry a date
(`events/dt=YYYY-MM-DD/...` in AWS, `events/YYYY/MM/DD/HH/...` from moto's Firehose); it is used only to skip
objects that cannot hold the window (with a day of slack: Firehose files by arrival, and an event may arrive
after midnight), and every event is then kept or not by its own `ts`. Delivery is at-least-once, so the same
event may sit in two objects: the first copy read wins.

A line that is not a valid event is counted by reason and skipped; an object that cannot be decompressed is
counted and skipped: one bad record never stops a training run.
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import NamedTuple, Protocol

from pydantic import ValidationError

from personalization.events import Event, EventType
from store.archive_objects import ArchiveObject, S3Objects

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
KEY_SLACK = timedelta(days=1)
_KEY_DATE = re.compile(r"dt=(\d{4})-(\d{2})-(\d{2})|(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:/|$)")


class ArchiveError(ValueError):
    """The archive location cannot be used (not an s3:// URI or an existing folder)."""


class ObjectSource(Protocol):
    def objects(self) -> Iterable[ArchiveObject]: ...

    def read(self, key: str) -> bytes: ...


class LocalObjects:
    """A folder laid out like the archive bucket's prefix (a copy of it, or a test's fixture)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ArchiveError(f"{root} is not a folder")
        self.root = root

    def __str__(self) -> str:
        return str(self.root)

    def objects(self) -> Iterator[ArchiveObject]:
        for path in sorted(self.root.rglob("*")):
            if path.is_file():
                yield ArchiveObject(path.relative_to(self.root).as_posix(), path.stat().st_size)

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


def open_archive(location: str, region: str) -> ObjectSource:
    """`s3://BUCKET/PREFIX` or a local folder."""
    if location.startswith("s3://"):
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        if not bucket:
            raise ArchiveError(f"{location}: no bucket named")
        return S3Objects(bucket, prefix, region)
    if "://" in location:
        raise ArchiveError(f"{location}: only s3:// URIs and local folders are read")
    return LocalObjects(Path(location))


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end): the events a run reads, by their own timestamps."""

    start: datetime
    end: datetime

    @classmethod
    def last_days(cls, days: float, until: datetime | None = None) -> Window:
        if days <= 0:
            raise ValueError("the window must be at least part of a day long")
        end = (until or datetime.now(UTC)).astimezone(UTC)
        return cls(end - timedelta(days=days), end)

    def holds(self, ts: datetime) -> bool:
        return self.start <= ts < self.end

    def may_hold_day(self, day: date) -> bool:
        return (self.start - KEY_SLACK).date() <= day <= (self.end + KEY_SLACK).date()

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def key_date(key: str) -> date | None:
    """The date a key's folders name (dt=YYYY-MM-DD or YYYY/MM/DD), or None when it names none."""
    found = _KEY_DATE.search(key)
    if found is None:
        return None
    year, month, day = (int(part) for part in (found.group(1, 2, 3) if found.group(1) else found.group(4, 5, 6)))
    try:
        return date(year, month, day)
    except ValueError:
        return None


def decode(body: bytes) -> bytes:
    """An object's text: gunzipped when it starts with gzip's magic bytes, whatever its key says. Firehose
    may concatenate gzip members; gzip.decompress reads them all."""
    return gzip.decompress(body) if body.startswith(GZIP_MAGIC) else body


class ArchivedEvent(NamedTuple):
    """What training needs of one event: a tenth of a pydantic Event's memory, for archives of millions."""

    event_id: str
    user_id: str
    type: EventType
    ts: datetime
    item_id: str | None
    category: str | None
    price: float | None
    quantity: int
    session_id: str | None
    # Whether the event's sender had analytics and personalization consent when it was sent.
    personalization: bool
    # The context the fold reads (device and local time-of-day mixes): what the tracker said.
    device: str | None = None
    utc_offset_min: int | None = None

    @classmethod
    def of(cls, event: Event) -> ArchivedEvent:
        consent = event.consent
        return cls(
            event.event_id,
            event.user_id,
            event.type,
            event.ts,
            event.item_id,
            event.category,
            event.price,
            event.quantity,
            event.session_id,
            consent.analytics and consent.personalization,
            event.context.device,
            event.context.utc_offset_min,
        )


@dataclass
class ArchiveStats:
    objects: int = 0
    objects_skipped_by_date: int = 0
    objects_unreadable: int = 0
    lines: int = 0
    malformed: int = 0
    duplicates: int = 0
    outside_window: int = 0
    events: int = 0
    malformed_reasons: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, object]:
        return {
            "objects": self.objects,
            "objects_skipped_by_date": self.objects_skipped_by_date,
            "objects_unreadable": self.objects_unreadable,
            "lines": self.lines,
            "malformed": self.malformed,
            "malformed_reasons": dict(self.malformed_reasons),
            "duplicates": self.duplicates,
            "outside_window": self.outside_window,
            "events": self.events,
        }


def _reason(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "line"
    return f"{where}: {first['type']}"


def selected(entries: Iterable[ArchiveObject], window: Window, stats: ArchiveStats) -> list[ArchiveObject]:
    """The objects that may hold the window's events, in reading order (their keys' dates say; the others are
    counted as skipped)."""
    chosen = []
    for entry in entries:
        day = key_date(entry.key)
        if day is not None and not window.may_hold_day(day):
            stats.objects_skipped_by_date += 1
            continue
        chosen.append(entry)
    return chosen


def object_events(key: str, read: Callable[[], bytes], window: Window, stats: ArchiveStats) -> Iterator[Event]:
    """The valid events of one object that fall in the window, in line order; bad lines and an unreadable object
    are counted in `stats` and skipped. Both engines read every object with this (spark_archive on Spark)."""
    stats.objects += 1
    try:
        text = decode(read())
    except (OSError, EOFError, zlib.error) as exc:
        stats.objects_unreadable += 1
        log.warning("skipped unreadable archive object %s: %s", key, exc)
        return
    validate = Event.__pydantic_validator__.validate_json
    for line in text.splitlines():
        if not line.strip():
            continue
        stats.lines += 1
        try:
            event: Event = validate(line)
        except ValidationError as exc:
            stats.malformed += 1
            stats.malformed_reasons[_reason(exc)] += 1
            continue
        if not window.holds(event.ts):
            stats.outside_window += 1
            continue
        yield event


def read_window(source: ObjectSource, window: Window) -> tuple[list[ArchivedEvent], ArchiveStats]:
    """The distinct events of the window, in time order (ties in reading order)."""
    stats = ArchiveStats()
    seen: set[str] = set()
    events: list[ArchivedEvent] = []
    for entry in selected(source.objects(), window, stats):
        for event in object_events(entry.key, partial(source.read, entry.key), window, stats):
            if event.event_id in seen:
                stats.duplicates += 1
                continue
            seen.add(event.event_id)
            events.append(ArchivedEvent.of(event))
    events.sort(key=lambda event: event.ts)
    stats.events = len(events)
    warn_if_skipped(source, stats)
    return events, stats


def warn_if_skipped(source: object, stats: ArchiveStats) -> None:
    if stats.malformed or stats.objects_unreadable:
        log.warning(
            "archive %s: skipped %d malformed lines (%s) and %d unreadable objects",
            source,
            stats.malformed,
            dict(stats.malformed_reasons.most_common(5)),
            stats.objects_unreadable,
        )
