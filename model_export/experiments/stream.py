"""Reading a dump of the event stream for `experiment`: the impression and view events attribution needs.

The dump is JSON lines, the exact record bytes (a file, or a folder of *.jsonl / *.jsonl.gz), read lazily. What
is kept of each event goes into flat columns of integers (Collector), so a dump of millions of events fits in
memory; a line that is not a valid event is counted with its reason and never stops the report.
"""

from __future__ import annotations

import gzip
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BufferedReader
from itertools import count
from pathlib import Path

from pydantic import ValidationError

from personalization.events import PEPPER_CONTEXT, Event, EventType
from personalization.provenance import signed_by_serve

NO_EXPERIMENT = "(no experiment)"
NO_VARIANT = "(no variant)"
MAX_REASONS = 5
SUFFIXES = (".jsonl", ".jsonl.gz")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass
class InputStats:
    files: int = 0
    lines: int = 0
    unparsed: int = 0
    reasons: list[str] = field(default_factory=list)
    duplicates: int = 0
    no_consent: int = 0
    impressions: int = 0
    views: int = 0
    other: int = 0
    raw_id_views: int = 0
    # Impressions without a valid signature of serve's, not counted (only when a key was given to check with).
    untrusted_impressions: int = 0

    def reject(self, where: str, error: ValueError) -> None:
        self.unparsed += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(f"{where}: {_reason(error)}")


def _reason(error: ValueError) -> str:
    # Field and message only, never the input: the offending value may be a raw user id.
    if isinstance(error, ValidationError):
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(error)[:200]


def event_files(path: Path) -> list[Path]:
    """The file itself, or every *.jsonl / *.jsonl.gz under a directory (recursively, in name order)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
    if not files:
        raise FileNotFoundError(f"no {' or '.join(SUFFIXES)} files under {path}")
    return files


def _open(path: Path) -> gzip.GzipFile | BufferedReader:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def read_lines(files: Iterable[Path]) -> Iterator[tuple[str, bytes]]:
    """(where, line) for every non-blank line, read lazily: a dump of millions of records is never in memory."""
    for path in files:
        with _open(path) as handle:
            for number, line in enumerate(handle, 1):
                stripped = line.strip()
                if stripped:
                    yield f"{path.name}:{number}", stripped


def _micros(ts: datetime) -> int:
    # Integer microseconds, so window edges compare exactly (a float of seconds since 1970 cannot hold them).
    return (ts - _EPOCH) // _MICROSECOND


def _interner() -> defaultdict[str, int]:
    # Ids become consecutive integers on first sight, with the lookup and the insert both in C.
    return defaultdict(count().__next__)


def _int32() -> array[int]:
    return array("i")


def _int64() -> array[int]:
    return array("q")


@dataclass
class Collector:
    """Keeps just what attribution needs from each event, in flat columns of integers.

    A Python object per event would cost hundreds of bytes; these columns cost about 24 bytes a view and
    32 plus 4 per shown item an impression, so a dump of millions of events fits in memory. Redeliveries are
    kept here and dropped once, at the end, by event id.
    """

    experiment: str | None = None
    pepper: bytes | None = None
    # The key serve signs impressions with (personalization.provenance.impression_key); None: not checked.
    impression_key: bytes | None = None
    inputs: InputStats = field(default_factory=InputStats)
    groups: dict[tuple[str, str], int] = field(default_factory=dict)  # (experiment, variant), first seen first
    users: defaultdict[str, int] = field(default_factory=_interner)
    items: defaultdict[str, int] = field(default_factory=_interner)
    # One entry per impression; its items are laid end to end in shown_items, ending at shown_end.
    shown_user: array[int] = field(default_factory=_int32)
    shown_ts: array[int] = field(default_factory=_int64)
    shown_group: array[int] = field(default_factory=_int32)
    shown_id: array[int] = field(default_factory=_int64)
    shown_end: array[int] = field(default_factory=_int64)
    shown_items: array[int] = field(default_factory=_int32)
    view_user: array[int] = field(default_factory=_int32)
    view_ts: array[int] = field(default_factory=_int64)
    view_item: array[int] = field(default_factory=_int32)
    view_id: array[int] = field(default_factory=_int64)

    def add_line(self, where: str, line: bytes) -> None:
        self.inputs.lines += 1
        context = {PEPPER_CONTEXT: self.pepper} if self.pepper else None
        try:
            event = Event.model_validate_json(line, context=context)
        except ValueError as error:  # ValidationError included; never let one record stop the report
            self.inputs.reject(where, error)
            return
        self.add(event)

    def add(self, event: Event) -> None:
        if event.type is EventType.IMPRESSION:
            self._impression(event)
        elif event.type is EventType.VIEW_PRODUCT:
            self._view(event)
        else:
            self.inputs.other += 1

    def _consented(self, event: Event) -> bool:
        # Ingest drops events without analytics consent and stores nothing of them; a report must not use them.
        if not event.consent.analytics:
            self.inputs.no_consent += 1
        return event.consent.analytics

    def _impression(self, event: Event) -> None:
        shown = event.impression
        assert shown is not None  # the schema requires it on an impression
        if self.experiment is not None and shown.experiment != self.experiment:
            return
        if not self._consented(event):
            return
        if self.impression_key is not None and not signed_by_serve(self.impression_key, event):
            self.inputs.untrusted_impressions += 1
            return
        key = (shown.experiment or NO_EXPERIMENT, shown.variant or NO_VARIANT)
        self.shown_user.append(self.users[event.user_id])
        self.shown_ts.append(_micros(event.ts))
        self.shown_group.append(self.groups.setdefault(key, len(self.groups)))
        self.shown_id.append(_id_hash(event.event_id))
        self.shown_items.extend(map(self.items.__getitem__, shown.items))
        self.shown_end.append(len(self.shown_items))

    def _view(self, event: Event) -> None:
        if not self._consented(event):
            return
        if not event.pseudonymous and self.pepper is None:
            self.inputs.raw_id_views += 1
        assert event.item_id is not None  # the schema requires it on a view
        self.view_user.append(self.users[event.user_id])
        self.view_ts.append(_micros(event.ts))
        self.view_item.append(self.items[event.item_id])
        self.view_id.append(_id_hash(event.event_id))


def _id_hash(event_id: str) -> int:
    # A 64-bit hash stands in for the id (an eighth of its memory); two of a few million distinct ids collide
    # with odds of about 1e-6, and a collision would drop one event. Stable within the run, which is enough.
    return hash(event_id)
