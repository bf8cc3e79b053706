"""Canonical events as the recommender sees them: the item index, weighted sparse matrices and sessions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from model_export.data.catalog import build_catalog
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


def user_item_matrix(
    frame: pd.DataFrame, index: Mapping[str, int], n_items: int, rows: str = "user_id"
) -> tuple[sp.csr_matrix, list[str]]:
    """[rows x items] of summed event-type weights (view 1 < cart 3 < purchase 5), log-damped so that fifty
    reloads of one page do not outweigh a purchase. `rows` is a column name (user_id) or "session"."""
    keys = session_keys(frame) if rows == "session" else frame[rows]
    weights = positive_weights(frame).to_numpy()
    items = frame["item_id"].map(index)
    keep = items.notna().to_numpy() & (weights > 0)
    codes, uniques = pd.factorize(keys[keep])
    matrix = sp.csr_matrix(
        (weights[keep], (codes, items[keep].to_numpy(dtype=np.int64))), shape=(len(uniques), n_items)
    )
    matrix.sum_duplicates()
    matrix.data = np.log1p(matrix.data)
    return matrix, [str(u) for u in uniques]


def session_sequences(frame: pd.DataFrame, index: Mapping[str, int]) -> list[npt.NDArray[np.int64]]:
    """Each session's known items in time order, with immediate repeats (reloads, view then cart) collapsed."""
    keys = session_keys(frame)
    items = frame["item_id"].map(index)
    keep = items.notna().to_numpy() & (positive_weights(frame).to_numpy() > 0)
    data = pd.DataFrame({"key": keys[keep], "item": items[keep].astype(np.int64), "ts": frame["timestamp"][keep]})
    data = data.sort_values(["key", "ts"], kind="stable")
    repeat = (data["key"] == data["key"].shift()) & (data["item"] == data["item"].shift())
    data = data[~repeat]
    bounds = np.flatnonzero(data["key"].to_numpy()[1:] != data["key"].to_numpy()[:-1]) + 1
    return [chunk for chunk in np.split(data["item"].to_numpy(), bounds) if len(chunk) > 1]
