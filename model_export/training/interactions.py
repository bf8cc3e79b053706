"""Canonical events as the recommender sees them: the item index, weighted sparse matrices and sessions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from model_export.training.pair_counts import PairCounts
from personalization.catalog import Catalog
from personalization.profile import AFFINITY_WEIGHTS, SESSION_TIMEOUT_MS, TYPE_CODES

TYPE_WEIGHTS: dict[str, float] = {kind.value: weight for kind, weight in AFFINITY_WEIGHTS.items()}
TYPE_CODE_BY_VALUE: dict[str, str] = {kind.value: code for kind, code in TYPE_CODES.items()}


@dataclass(frozen=True)
class ItemIndex:
    """Item ids in the order recs.onnx indexes them: the catalog's order (popularity descending, then id).

    Sharing the catalog's order makes the graph's TopK tie-break (lower index first) a popularity tie-break.
    """

    ids: list[str]
    position: dict[str, int]
    popularity: npt.NDArray[np.float64]
    categories: list[str | None]

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> ItemIndex:
        ids = [item.id for item in catalog.items]
        popularity = np.asarray([item.popularity for item in catalog.items], dtype=np.float64)
        categories = [item.category for item in catalog.items]
        return cls(ids, {item_id: i for i, item_id in enumerate(ids)}, popularity, categories)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ItemIndex:
        # Imported here: the catalog needs scikit-learn, which Spark's counting workers never should import.
        from model_export.data.catalog import build_catalog

        return cls.from_catalog(build_catalog(frame))

    def __len__(self) -> int:
        return len(self.ids)


def positive_weights(frame: pd.DataFrame) -> pd.Series:
    return frame["event_type"].map(TYPE_WEIGHTS).fillna(0.0)


def epoch_ms(timestamps: pd.Series) -> pd.Series:
    """Milliseconds since the epoch, whatever unit the column holds (pandas 3 reads timestamps as microseconds,
    pandas 2 as nanoseconds: dividing the raw int64 by a fixed factor is right for only one of them)."""
    return timestamps.dt.as_unit("ms").astype("int64")


def session_keys(frame: pd.DataFrame) -> pd.Series:
    """A session key per row: the given session_id, else the profile fold's rule (a new session after 30
    minutes of inactivity), so offline sessions are the ones serve sees."""
    ordered = frame.sort_values(["user_id", "timestamp"], kind="stable")
    ms = epoch_ms(ordered["timestamp"])
    gap = ms.diff().fillna(np.inf) > SESSION_TIMEOUT_MS
    new_user = ordered["user_id"] != ordered["user_id"].shift()
    number = (gap | new_user).cumsum()
    fallback = ordered["user_id"] + "#t" + number.astype(str)
    given = ordered["session_id"].astype("object")
    keys = given.where(given.notna(), fallback).astype(str)
    return keys.reindex(frame.index)


def user_item_weights(frame: pd.DataFrame, index: Mapping[str, int], rows: str = "user_id") -> pd.DataFrame:
    """The summed event-type weights (view 1 < cart 3 < purchase 5) of each (row key, known item), with the key's
    first row (the frame's index label: its seq): one partition's partial counts. Weights are multiples of 1/4,
    so partial sums add up exactly in any order. `rows` is a column name (user_id) or "session"."""
    keys = session_keys(frame) if rows == "session" else frame[rows]
    weights = positive_weights(frame).to_numpy()
    items = frame["item_id"].map(index)
    keep = items.notna().to_numpy() & (weights > 0)
    monotonic = frame.index.is_monotonic_increasing
    order = frame.index.to_numpy(dtype=np.int64) if monotonic else np.arange(len(frame), dtype=np.int64)
    kept = pd.DataFrame(
        {
            "key": keys[keep].astype(str).to_numpy(),
            "item": items[keep].to_numpy(dtype=np.int64),
            "weight": weights[keep],
            # Row order: the seq labels of a time-sorted frame (a partition's rows are a scattered subset of them).
            "first": order[keep],
        }
    )
    return kept.groupby(["key", "item"], sort=False, as_index=False).agg(
        weight=("weight", "sum"), first=("first", "min")
    )


def weights_matrix(weights: pd.DataFrame, n_items: int) -> tuple[sp.csr_matrix, list[str]]:
    """[keys x items] of `user_item_weights` rows (partials of one key summed), log-damped so that fifty reloads of
    one page do not outweigh a purchase; keys in the order of their first row, whatever order the rows came in."""
    firsts = weights.groupby("key", sort=False)["first"].min().sort_values(kind="stable")
    keys = firsts.index.to_numpy()
    row = pd.Series(np.arange(len(keys)), index=keys)
    codes = row.reindex(weights["key"].to_numpy()).to_numpy(dtype=np.int64)
    matrix = sp.csr_matrix(
        (weights["weight"].to_numpy(dtype=np.float64), (codes, weights["item"].to_numpy(dtype=np.int64))),
        shape=(len(keys), n_items),
    )
    matrix.sum_duplicates()
    matrix.data = np.log1p(matrix.data)
    return matrix, [str(key) for key in keys]


def user_item_matrix(
    frame: pd.DataFrame, index: Mapping[str, int], n_items: int, rows: str = "user_id"
) -> tuple[sp.csr_matrix, list[str]]:
    """[rows x items] of summed, log-damped event-type weights (`user_item_weights`, `weights_matrix`)."""
    return weights_matrix(user_item_weights(frame, index, rows), n_items)


def session_sequences(frame: pd.DataFrame, index: Mapping[str, int]) -> list[npt.NDArray[np.int64]]:
    """Each session's known items in time order, with immediate repeats (reloads, view then cart) collapsed.

    A session is one person's, as serve's profiles see it: a session id two people share (one in the bundled shop)
    is two sessions here, so a partition of whole users holds whole sessions (the Spark engine counts by such)."""
    keys = frame["user_id"].astype(str) + "\x00" + session_keys(frame)
    items = frame["item_id"].map(index)
    keep = items.notna().to_numpy() & (positive_weights(frame).to_numpy() > 0)
    data = pd.DataFrame({"key": keys[keep], "item": items[keep].astype(np.int64), "ts": frame["timestamp"][keep]})
    data = data.sort_values(["key", "ts"], kind="stable")
    repeat = (data["key"] == data["key"].shift()) & (data["item"] == data["item"].shift())
    data = data[~repeat]
    bounds = np.flatnonzero(data["key"].to_numpy()[1:] != data["key"].to_numpy()[:-1]) + 1
    return [chunk for chunk in np.split(data["item"].to_numpy(), bounds) if len(chunk) > 1]


@dataclass(frozen=True)
class Interactions:
    """What the recommender counts over every event: the user x item weights and the session co-occurrences.

    Counted by partitions of whole users with `partial_counts` (one partition here; many on Spark, which sums
    the partials: spark_engine.SparkEngine.interactions) and put together by `combine`: one implementation."""

    user_items: sp.csr_matrix
    pairs: PairCounts


def partial_counts(frame: pd.DataFrame, index: Mapping[str, int], n_items: int) -> tuple[pd.DataFrame, PairCounts]:
    """One partition's counts (its rows hold whole users: sessions never cross users)."""
    return user_item_weights(frame, index), PairCounts.of(session_sequences(frame, index), n_items)


def combine(weights: pd.DataFrame, pairs: PairCounts, n_items: int) -> Interactions:
    return Interactions(weights_matrix(weights, n_items)[0], pairs)


def count_interactions(frame: pd.DataFrame, index: ItemIndex) -> Interactions:
    """The counts of `frame`, in this process."""
    return combine(*partial_counts(frame, index.position, len(index)), len(index))


class Counts(Protocol):
    """How train_models counts: `count_interactions` here, or spark_engine.SparkEngine.interactions on Spark."""

    def __call__(self, frame: pd.DataFrame, index: ItemIndex) -> Interactions: ...
