"""Archived events for tests: the bundled sample as the archive would hold it (pseudonymous ids, NDJSON, some
objects gzip-compressed, keys dated the way moto's Firehose dates them)."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from model_export.canonical import to_events
from model_export.datasets import rees46
from personalization.events import Event

SAMPLE = Path(__file__).resolve().parent / "data" / "rees46_head2000.csv"


def pseudonym(raw: str) -> str:
    """64 hex characters, the form every archived user id has (the tests need no pepper)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def sample_frame(until: datetime, days: float, rows: int | None = None) -> pd.DataFrame:
    """The sample (2 h 20 min of a store), its timeline stretched evenly to `days` ending just before `until`,
    user ids pseudonymized, in canonical columns."""
    frame = rees46(SAMPLE)
    if rows is not None:
        frame = frame.head(rows)
    first, last = frame["timestamp"].min(), frame["timestamp"].max()
    span = (last - first).total_seconds() or 1.0
    scale = (days * 86_400 - 60) / span
    start = pd.Timestamp(until) - pd.Timedelta(days=days)
    frame = frame.assign(
        timestamp=start + (frame["timestamp"] - first) * scale,
        user_id=frame["user_id"].map(pseudonym),
    )
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def archived(frame: pd.DataFrame) -> list[Event]:
    return list(to_events(frame))


def ndjson(events: Iterable[Event]) -> bytes:
    return b"".join(event.to_json_bytes() + b"\n" for event in events)


def moto_key(prefix: str, at: datetime, name: str) -> str:
    """moto's Firehose layout: PREFIX/YYYY/MM/DD/HH/NAME."""
    return f"{prefix.rstrip('/')}/{at:%Y/%m/%d/%H}/{name}"


def archive_objects(
    events: Sequence[Event], prefix: str = "events", per_object: int = 250, gzip_every: int = 2
) -> dict[str, bytes]:
    """Objects of `per_object` events each, keyed by their first event's hour; every `gzip_every`-th gzipped
    (under a key that does not say so: readers go by the magic bytes)."""
    objects: dict[str, bytes] = {}
    for number, start in enumerate(range(0, len(events), per_object)):
        chunk = events[start : start + per_object]
        body = ndjson(chunk)
        if gzip_every and number % gzip_every == 1:
            body = gzip.compress(body)
        objects[moto_key(prefix, chunk[0].ts, f"delivery-{number:05d}")] = body
    return objects


def write_folder(root: Path, objects: dict[str, bytes]) -> Path:
    for key, body in objects.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


def shift(events: Iterable[Event], by: timedelta) -> list[Event]:
    return [event.model_copy(update={"ts": event.ts + by}) for event in events]
