"""Attribution for `experiment`: which impressions were clicked, per user, by last touch.

A view of item X by user U at time t is credited to U's most recent impression that showed X at or before t, if
t falls within `window` of that impression (both edges included). Each impression counts at most one click,
however often its items are viewed; a view is never credited to an earlier impression as well, so one click is
not counted twice across impressions that showed the same item. Redeliveries count once (by event id).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from model_export.experiments.stream import Collector


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
class Tally:
    impressions: int = 0
    clicks: int = 0
    users: int = 0


def tally_by_group(collector: Collector, window_us: int) -> tuple[list[Tally], dict[str, int]]:
    """Impressions, clicks and users per group, and users seen in several variants per experiment."""
    rows = _by_user(collector)
    collector.inputs.duplicates = rows.duplicates
    collector.inputs.impressions = len(rows.ts)
    collector.inputs.views = len(rows.view_ts)
    tallies = [Tally() for _ in collector.groups]
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
