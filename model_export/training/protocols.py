"""The two evaluation protocols, as queries built the way serve builds its model inputs.

- user split: the timeline's last part is the test. A user with history before the cutoff is asked once,
  with the recent items of their profile replayed up to the cutoff (what serve would read from DynamoDB),
  and scored on the items they touch after it that they had never touched before. Items the training
  period never saw stay in the targets and count as misses. Every model excludes the user's past items.
- session next-item: every session that starts after the cutoff is asked at every prefix, with the prefix
  as the recent items, to rank the next item. Targets already in the prefix (reloads, going back) are
  skipped: a "recommended for you" slot offers new items, and every model excludes the prefix, as serve's
  skip-seen rule would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from model_export.training.interactions import TYPE_CODE_BY_VALUE, epoch_ms, positive_weights, session_keys
from personalization.profile import Profile
from personalization.recommend import RecentWeighting, recent_inputs

History = list[tuple[str, str, int]]


@dataclass(frozen=True, slots=True)
class RawQuery:
    history: History
    exclude: frozenset[str]
    targets: tuple[str, ...]
    # The questions that stand or fall together (one user's; one session's prefixes): the search's paired
    # bootstrap (model_export.training.tuning) resamples these groups, not single questions.
    group: str = ""


@dataclass(frozen=True)
class Protocol:
    name: str
    queries: list[RawQuery]
    skipped_repeats: int = 0


@dataclass(frozen=True)
class Queries:
    """A protocol encoded against one item index and one recent-items weighting."""

    inputs: sp.csr_matrix
    exclude: sp.csr_matrix
    targets: list[npt.NDArray[np.int64]]
    n_targets: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


def time_cutoff(frame: pd.DataFrame, test_fraction: float) -> pd.Timestamp:
    """The time after which about `test_fraction` of the events happen."""
    stamps = frame["timestamp"].sort_values(kind="stable").reset_index(drop=True)
    at = stamps.iloc[min(len(stamps) - 1, int(len(stamps) * (1.0 - test_fraction)))]
    return pd.Timestamp(at)


def _sample(queries: list[RawQuery], limit: int, seed: int) -> list[RawQuery]:
    if len(queries) <= limit:
        return queries
    keep = np.sort(np.random.default_rng(seed).choice(len(queries), size=limit, replace=False))
    return [queries[i] for i in keep]


def _item_events(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(positive_weights(frame) > 0).to_numpy() & frame["item_id"].notna().to_numpy()]


def user_split(
    frame: pd.DataFrame, cutoff: pd.Timestamp, profiles: Mapping[str, Profile], limit: int = 20_000, seed: int = 0
) -> Protocol:
    """`profiles` are replayed from the events before `cutoff` (model_export.training.replay.replay)."""
    touched = _item_events(frame)
    before = touched[touched["timestamp"] < cutoff]
    after = touched[touched["timestamp"] >= cutoff]
    past = before.groupby("user_id", sort=False)["item_id"].agg(frozenset).to_dict()
    queries = []
    for user_id, items in after.groupby("user_id", sort=True)["item_id"]:
        seen = past.get(user_id)
        profile = profiles.get(str(user_id))
        if seen is None or profile is None:
            continue
        new = tuple(dict.fromkeys(item for item in items if item not in seen))
        if new:
            queries.append(RawQuery(list(profile.recent), seen, new, str(user_id)))
    return Protocol("user", _sample(queries, limit, seed))


def session_next_item(frame: pd.DataFrame, cutoff: pd.Timestamp, limit: int = 20_000, seed: int = 0) -> Protocol:
    rows = frame[frame["item_id"].notna()].assign(key=session_keys(frame))
    starts = rows.groupby("key", sort=False)["timestamp"].transform("min")
    rows = rows[starts >= cutoff].sort_values(["key", "timestamp"], kind="stable")
    queries: list[RawQuery] = []
    repeats = 0
    ms = epoch_ms(rows["timestamp"]).to_numpy()
    codes = rows["event_type"].map(TYPE_CODE_BY_VALUE).to_numpy()
    positive = (positive_weights(rows) > 0).to_numpy()
    items = rows["item_id"].to_numpy()
    keys = rows["key"].to_numpy()
    start = 0
    for end in [*(np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist(), len(rows)]:
        history: History = []
        seen: set[str] = set()
        for row in range(start, end):
            item = str(items[row])
            if history and positive[row]:
                if item in seen:
                    repeats += 1
                else:
                    queries.append(RawQuery(list(history), frozenset(seen), (item,), str(keys[start])))
            history.append((item, str(codes[row]), int(ms[row])))
            seen.add(item)
        start = end
    return Protocol("session", _sample(queries, limit, seed), skipped_repeats=repeats)


def encode(protocol: Protocol, index: Mapping[str, int], n_items: int, weighting: RecentWeighting) -> Queries:
    """Inputs through personalization.recommend.recent_inputs (serve's own code), exclusions, targets."""
    in_rows, in_cols, in_vals, ex_rows, ex_cols = [], [], [], [], []
    targets, n_targets = [], []
    for row, query in enumerate(protocol.queries):
        idx, weights = recent_inputs(query.history, index, weighting)
        in_rows.append(np.full(idx.size, row))
        in_cols.append(idx)
        in_vals.append(weights)
        excluded = [index[item] for item in query.exclude if item in index]
        ex_rows.append(np.full(len(excluded), row))
        ex_cols.append(np.asarray(excluded, dtype=np.int64))
        targets.append(np.asarray([index[t] for t in query.targets if t in index], dtype=np.int64))
        n_targets.append(len(query.targets))
    shape = (len(protocol.queries), n_items)

    def matrix(
        rows: list[npt.NDArray[np.int64]], cols: list[npt.NDArray[np.int64]], vals: npt.NDArray[np.float32]
    ) -> sp.csr_matrix:
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        return sp.csr_matrix((vals, (r, c)), shape=shape, dtype=np.float32)

    inputs = matrix(in_rows, in_cols, np.concatenate(in_vals) if in_vals else np.zeros(0, dtype=np.float32))
    n_excluded = sum(len(c) for c in ex_cols)
    exclude = matrix(ex_rows, ex_cols, np.ones(n_excluded, dtype=np.float32))
    return Queries(inputs, exclude, targets, np.asarray(n_targets, dtype=np.int64))
