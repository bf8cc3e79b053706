"""Archived events for tests: the bundled sample as the archive would hold it (pseudonymous ids, NDJSON, some
objects gzip-compressed, keys dated the way moto's Firehose dates them)."""

from __future__ import annotations

import gzip
import hashlib
import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from model_export.data.canonical import to_events
from personalization.events import Consent, Event, EventType
from tests.helpers.data import rees46_sample


def pseudonym(raw: str) -> str:
    """64 hex characters, the form every archived user id has (the tests need no pepper)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def sample_frame(until: datetime, days: float, rows: int | None = None) -> pd.DataFrame:
    """The sample (2 h 20 min of a store), its timeline stretched evenly to `days` ending just before `until`,
    user ids pseudonymized, in canonical columns."""
    frame = rees46_sample()
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


def hostile_archive(events: Sequence[Event]) -> dict[str, bytes]:
    """`events` archived 100 to an object, half of them gzipped, with what a real archive holds besides: one
    delivery repeated (at-least-once, 100 duplicates), an object of two bad lines and 3 events again, a
    corrupt object, and an object dated 2026-10-01 (before any window the tests read)."""
    objects = archive_objects(events, per_object=100)
    first_key = next(iter(objects))
    objects[first_key.replace("delivery", "redelivery")] = objects[first_key]
    objects["events/2026/11/19/10/bad-lines"] = b'{"not": "an event"}\nnot json at all\n\n' + ndjson(events[:3])
    objects["events/2026/11/19/11/corrupt"] = b"\x1f\x8b" + b"truncated gzip"
    objects["events/2026/10/01/00/old"] = ndjson(events[:50])
    return objects


def write_folder(root: Path, objects: dict[str, bytes]) -> Path:
    for key, body in objects.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


def shopping_events(until: datetime, days: int, users: int = 240, seed: int = 7) -> list[Event]:
    """A shop with structure a model can learn: each person keeps to one of 8 departments of 15 items and comes
    back every day for a few views (now and then a cart or a purchase) within it; popularity is flat."""
    rng = random.Random(seed)
    consent = Consent(analytics=True, personalization=True)
    events: list[Event] = []
    start = until - timedelta(days=days)
    for person in range(users):
        department = person % 8
        for day in range(days):
            at = start + timedelta(days=day, minutes=rng.randrange(60, 22 * 60))
            for step in range(rng.randrange(3, 6)):
                item = department * 15 + rng.randrange(15)
                roll = rng.random()
                kind = (
                    EventType.PURCHASE
                    if roll < 0.05
                    else EventType.ADD_TO_CART
                    if roll < 0.15
                    else EventType.VIEW_PRODUCT
                )
                events.append(
                    Event(
                        event_id=f"s{seed}-{person}-{day}-{step}",
                        user_id=pseudonym(f"person-{person}"),
                        type=kind,
                        ts=at + timedelta(minutes=2 * step),
                        item_id=f"item-{item}",
                        category=f"department-{department}",
                        price=10.0 + item,
                        consent=consent,
                    )
                )
    return sorted(events, key=lambda event: event.ts)
