"""`experiment`: click-through per experiment variant, from the impression and view events on the stream.

Serve writes an impression event for every fragment it shows a known visitor (slot, shown items, experiment,
variant, versions); the tracker's `view_product` events are the clicks. This module reads a dump of the
stream (JSON lines, the exact record bytes), joins the two per user, and reports CTR with intervals.

Attribution (last touch): a view of item X by user U at time t is credited to U's most recent impression
that showed X at or before t, if t falls within `window` of that impression (both edges included). Each
impression counts at most one click, however often its items are viewed; a view is never credited to an
earlier impression as well, so one click is not counted twice across impressions that showed the same item.

Statistics: per variant a Wilson score interval for the CTR; per non-control variant the CTR difference to
the control with Newcombe's hybrid score interval (built from the two Wilson intervals) and the two-sided
p-value of the pooled two-proportion z test. The unit is the impression: see docs/experiments.md for what
that assumes, and for the other caveats (novelty, peeking, sample ratio mismatch).
"""

from __future__ import annotations

import gzip
import math
from array import array
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BufferedReader
from itertools import count
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from model_export.experiments.experiment_stats import chi_square_p_value, newcombe, two_proportion_p_value, wilson
from personalization.events import PEPPER_CONTEXT, Event, EventType
from personalization.provenance import signed_by_serve

WINDOW_MINUTES = 30.0
CONTROL = "control"
NO_EXPERIMENT = "(no experiment)"
NO_VARIANT = "(no variant)"
MAX_REASONS = 5
# A mismatch this unlikely under the configured shares means the assignment or the logging is broken; the
# threshold is strict because the check runs on every report, and a false alarm costs a needless investigation.
SRM_ALPHA = 0.001
SUFFIXES = (".jsonl", ".jsonl.gz")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


# -- results -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantStats:
    impressions: int
    clicks: int
    users: int

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.clicks, self.impressions)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "impressions": self.impressions,
            "clicks": self.clicks,
            "ctr": self.ctr,
            "ctr_low": low,
            "ctr_high": high,
            "users": self.users,
        }


@dataclass(frozen=True)
class Comparison:
    experiment: str
    control: str
    variant: str
    difference: float
    low: float
    high: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "control": self.control,
            "variant": self.variant,
            "diff": self.difference,
            "diff_low": self.low,
            "diff_high": self.high,
            "p_value": self.p_value,
            "interval": "newcombe",
            "test": "two-proportion z (pooled)",
        }


@dataclass(frozen=True)
class SampleRatio:
    """Users per variant against the configured shares; `p_value` None when the check does not apply."""

    experiment: str
    users: dict[str, int]
    shares: dict[str, float]
    p_value: float | None
    note: str = ""

    @property
    def mismatch(self) -> bool:
        return self.p_value is not None and self.p_value < SRM_ALPHA

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "shares": self.shares,
            "p_value": self.p_value,
            "mismatch": self.mismatch,
            "note": self.note,
        }


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


@dataclass
class ExperimentReport:
    window_minutes: float
    pseudonymized: bool
    inputs: InputStats
    # experiment -> variant -> figures, variants in report order (control first)
    experiments: dict[str, dict[str, VariantStats]]
    comparisons: list[Comparison]
    # experiment -> users seen in more than one of its variants (assignment should make this 0)
    mixed_users: dict[str, int]
    sample_ratios: list[SampleRatio]
    warnings: list[str]
    # Whether only impressions signed by serve were counted.
    verified: bool = False

    def summary(self) -> dict[str, Any]:
        """The JSON last line."""
        return {
            "experiments": {
                name: {variant: stats.to_dict() for variant, stats in variants.items()}
                for name, variants in self.experiments.items()
            },
            "comparisons": [c.to_dict() for c in self.comparisons],
            "srm": {s.experiment: s.to_dict() for s in self.sample_ratios},
            "mixed_users": self.mixed_users,
            "window_minutes": self.window_minutes,
            "lines": self.inputs.lines,
            "unparsed": self.inputs.unparsed,
            "unparsed_reasons": self.inputs.reasons,
            "duplicates": self.inputs.duplicates,
            "no_consent": self.inputs.no_consent,
            "impression_events": self.inputs.impressions,
            "view_events": self.inputs.views,
            "raw_id_views": self.inputs.raw_id_views,
            "impressions_verified": self.verified,
            "untrusted_impressions": self.inputs.untrusted_impressions,
            "pseudonymized": self.pseudonymized,
            "warnings": self.warnings,
        }


# -- reading -----------------------------------------------------------------------------------------------


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


# -- attribution -------------------------------------------------------------------------------------------


class Shown(NamedTuple):
    """One impression of one user, ids interned to integers."""

    ts: int  # microseconds since the epoch
    group: int  # index into Collector.groups
    items: Sequence[int]


def attribute(shown: Sequence[Shown], views: Iterable[tuple[int, int]], window_us: int) -> list[bool]:
    """Which of one user's impressions (in time order, ties in input order) were clicked, by last touch.

    `views` are (ts, item) in any order: each view is credited on its own to the latest impression that
    showed its item at or before it, so the order in which they arrive does not matter.
    """
    views = list(views)
    viewed = {item for _, item in views}
    times: dict[int, list[int]] = {}
    indices: dict[int, list[int]] = {}
    for index, impression in enumerate(shown):
        # Only items the user viewed can be clicked, and most shown items never are: skip indexing those.
        # The set also makes an item shown twice in one fragment a single chance.
        for item in viewed.intersection(impression.items):
            times.setdefault(item, []).append(impression.ts)
            indices.setdefault(item, []).append(index)
    clicked = [False] * len(shown)
    for ts, item in views:
        at = times.get(item)
        if at is None:
            continue
        position = bisect_right(at, ts) - 1  # the latest impression at or before the view
        if position >= 0 and ts - at[position] <= window_us:
            clicked[indices[item][position]] = True
    return clicked


def _first_copies(ids: array[int]) -> npt.NDArray[np.intp]:
    """Positions of the first copy of every event id: Kinesis delivers at least once, a report counts once."""
    _, first = np.unique(np.frombuffer(ids, dtype=np.int64), return_index=True)
    return np.sort(first)


def _column(values: array[int], rows: npt.NDArray[np.intp]) -> npt.NDArray[np.int64]:
    return np.frombuffer(values, dtype=np.int64 if values.typecode == "q" else np.int32)[rows].astype(np.int64)


@dataclass
class _ByUser:
    """Impressions (time order, ties in input order) and views of each user, redeliveries dropped.

    Kept as numpy columns and turned into Python values one user at a time: converting whole columns to
    lists would cost some 40 bytes per value at once, several times the memory of the columns themselves.
    """

    spans: list[tuple[int, int, int, int]]  # per user: impressions [a, b), views [c, d)
    ts: npt.NDArray[np.int64]
    group: npt.NDArray[np.int64]
    start: npt.NDArray[np.int64]  # the impression's items are Collector.shown_items[start:end]
    end: npt.NDArray[np.int64]
    view_ts: npt.NDArray[np.int64]
    view_item: npt.NDArray[np.int64]
    duplicates: int

    def user(self, span: tuple[int, int, int, int], items: array[int]) -> tuple[list[Shown], list[tuple[int, int]]]:
        a, b, c, d = span
        columns = (self.ts[a:b].tolist(), self.group[a:b].tolist(), self.start[a:b].tolist(), self.end[a:b].tolist())
        shown = [Shown(ts, group, items[start:end]) for ts, group, start, end in zip(*columns, strict=True)]
        views = list(zip(self.view_ts[c:d].tolist(), self.view_item[c:d].tolist(), strict=True))
        return shown, views


def _by_user(collector: Collector) -> _ByUser:
    shown, viewed = _first_copies(collector.shown_id), _first_copies(collector.view_id)
    duplicates = len(collector.shown_id) + len(collector.view_id) - len(shown) - len(viewed)
    # lexsort is stable and sorts by its last key first: by user, then time, then input order.
    shown = shown[np.lexsort((_column(collector.shown_ts, shown), _column(collector.shown_user, shown)))]
    viewed = viewed[np.argsort(_column(collector.view_user, viewed), kind="stable")]
    shown_users, view_users = _column(collector.shown_user, shown), _column(collector.view_user, viewed)
    people = np.unique(shown_users)
    bounds = [
        np.searchsorted(users, people, side=side).tolist()
        for users in (shown_users, view_users)
        for side in ("left", "right")
    ]
    ends = np.frombuffer(collector.shown_end, dtype=np.int64)
    return _ByUser(
        spans=list(zip(*bounds, strict=True)),
        ts=_column(collector.shown_ts, shown),
        group=_column(collector.shown_group, shown),
        start=(ends - np.diff(ends, prepend=0))[shown],
        end=ends[shown],
        view_ts=_column(collector.view_ts, viewed),
        view_item=_column(collector.view_item, viewed),
        duplicates=duplicates,
    )


@dataclass
class _Tally:
    impressions: int = 0
    clicks: int = 0
    users: int = 0


def _tally(collector: Collector, window_us: int) -> tuple[list[_Tally], dict[str, int]]:
    """Impressions, clicks and users per group, and users seen in several variants per experiment."""
    rows = _by_user(collector)
    collector.inputs.duplicates = rows.duplicates
    collector.inputs.impressions = len(rows.ts)
    collector.inputs.views = len(rows.view_ts)
    tallies = [_Tally() for _ in collector.groups]
    names = [experiment for experiment, _ in collector.groups]
    mixed: dict[str, int] = {}
    for span in rows.spans:
        shown, views = rows.user(span, collector.shown_items)
        for impression, hit in zip(shown, attribute(shown, views, window_us), strict=True):
            tallies[impression.group].impressions += 1
            tallies[impression.group].clicks += hit
        groups = {impression.group for impression in shown}
        for group in groups:
            tallies[group].users += 1
        experiments = [names[group] for group in groups]
        for name in set(experiments):
            if experiments.count(name) > 1:
                mixed[name] = mixed.get(name, 0) + 1
    return tallies, mixed


# -- the report --------------------------------------------------------------------------------------------


def _ordered(variants: dict[str, VariantStats]) -> dict[str, VariantStats]:
    """Control first when a variant is called so, then the order of first appearance in the input."""
    first = [CONTROL] if CONTROL in variants else []
    return {name: variants[name] for name in first + [v for v in variants if v != CONTROL]}


def _compare(experiment: str, variants: dict[str, VariantStats]) -> list[Comparison]:
    (control, base), *others = variants.items()
    comparisons = []
    for name, stats in others:
        difference, low, high = newcombe(base.clicks, base.impressions, stats.clicks, stats.impressions)
        p_value = two_proportion_p_value(base.clicks, base.impressions, stats.clicks, stats.impressions)
        comparisons.append(Comparison(experiment, control, name, difference, low, high, p_value))
    return comparisons


def sample_ratio(experiment: str, variants: dict[str, VariantStats], shares: dict[str, float]) -> SampleRatio:
    """Chi-square test of users per variant against the configured shares (a sample ratio mismatch check)."""
    users = {name: stats.users for name, stats in variants.items()}
    unknown = [name for name in users if name not in shares]
    if unknown:
        return SampleRatio(experiment, users, shares, None, f"no share given for {', '.join(unknown)}")
    if len(shares) < 2:
        return SampleRatio(experiment, users, shares, None, "needs at least two variants")
    observed = [users.get(name, 0) for name in shares]
    return SampleRatio(experiment, users, shares, chi_square_p_value(observed, list(shares.values())))


def _warnings(collector: Collector, mixed: dict[str, int]) -> list[str]:
    inputs, found = collector.inputs, []
    if inputs.raw_id_views:
        found.append(
            f"{inputs.raw_id_views:,} view_product events carry raw user ids (pseudonymous=false) and no pepper"
            " was given: they can only join impressions logged under the same raw id, and serve logs"
            " pseudonymous ids, so their clicks are missing. Pass --pepper (the ingest pepper) to include them."
        )
    if collector.impression_key is None:
        found.append(
            "impressions were not verified: anyone who can write to the stream could have added some. Pass"
            " --identity-key (serve's identity key) to count only the impressions serve signed."
        )
    elif inputs.untrusted_impressions:
        found.append(f"{inputs.untrusted_impressions:,} impression(s) not signed by serve were not counted.")
    if inputs.unparsed:
        found.append(f"{inputs.unparsed:,} line(s) are not valid events and were skipped (first reasons listed).")
    if not collector.groups:
        wanted = f" of experiment {collector.experiment!r}" if collector.experiment else ""
        found.append(f"no impressions{wanted} found: nothing to report.")
    for name, users in mixed.items():
        found.append(f"{name}: {users:,} user(s) saw more than one variant; assignment is not sticky per user.")
    return found


def build_report(
    collector: Collector, window_minutes: float = WINDOW_MINUTES, shares: dict[str, float] | None = None
) -> ExperimentReport:
    window_us = round(window_minutes * 60 * 1_000_000)
    tallies, mixed = _tally(collector, window_us)
    experiments: dict[str, dict[str, VariantStats]] = {}
    for (experiment, variant), tally in zip(collector.groups, tallies, strict=True):
        stats = VariantStats(tally.impressions, tally.clicks, tally.users)
        experiments.setdefault(experiment, {})[variant] = stats
    experiments = {name: _ordered(variants) for name, variants in experiments.items()}
    real = {name: variants for name, variants in experiments.items() if name != NO_EXPERIMENT}
    comparisons = [c for name, variants in real.items() for c in _compare(name, variants)]
    ratios = [sample_ratio(name, variants, shares) for name, variants in real.items()] if shares else []
    return ExperimentReport(
        window_minutes=window_minutes,
        pseudonymized=collector.pepper is not None,
        inputs=collector.inputs,
        experiments=experiments,
        comparisons=comparisons,
        mixed_users=mixed,
        sample_ratios=ratios,
        warnings=_warnings(collector, mixed),
        verified=collector.impression_key is not None,
    )


def analyze(
    path: Path,
    experiment: str | None = None,
    window_minutes: float = WINDOW_MINUTES,
    pepper: bytes | None = None,
    shares: dict[str, float] | None = None,
    impression_key: bytes | None = None,
) -> ExperimentReport:
    """Read a stream dump (a JSON-lines file or a folder of them) and report CTR per experiment variant.

    With `impression_key`, only impressions serve signed count (see personalization.provenance)."""
    if window_minutes < 0:
        raise ValueError("the attribution window cannot be negative")
    files = event_files(path)
    collector = Collector(experiment=experiment, pepper=pepper, impression_key=impression_key)
    collector.inputs.files = len(files)
    for where, line in read_lines(files):
        collector.add_line(where, line)
    return build_report(collector, window_minutes, shares)


def parse_shares(text: str) -> dict[str, float]:
    """Parse "control=0.5,popular=0.5" (any positive weights: they are normalised to sum to 1)."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not sep or not name.strip() or not weight > 0 or math.isinf(weight):
            raise ValueError(f"expected variant=share with a positive share, got {part!r}")
        shares[name.strip()] = weight
    if not shares:
        raise ValueError("no shares given")
    return shares
