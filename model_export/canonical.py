"""The canonical event file: the only input format the trainer and the evaluation read.

Columns: user_id, item_id, event_type, timestamp (required); category, price, quantity, session_id
(optional). CSV or Parquet. Any real dataset gets an adapter to this format (see datasets.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd

from personalization.events import Consent, Event, EventType

REQUIRED = ("user_id", "item_id", "event_type", "timestamp")
OPTIONAL = ("category", "price", "quantity", "session_id")

# Names other datasets commonly use for the same actions; anything else is dropped and counted.
TYPE_ALIASES: dict[str, EventType] = {
    **{kind.value: kind for kind in EventType},
    "view": EventType.VIEW_PRODUCT,
    "click": EventType.VIEW_PRODUCT,
    "cart": EventType.ADD_TO_CART,
    "addtocart": EventType.ADD_TO_CART,
    "remove": EventType.REMOVE_FROM_CART,
    "transaction": EventType.PURCHASE,
    "buy": EventType.PURCHASE,
}


class CanonicalFormatError(ValueError):
    pass


def read_events(path: Path) -> pd.DataFrame:
    """Read, check and normalize a canonical file; rows come back sorted by time (stable)."""
    if path.suffix in {".parquet", ".pq"}:
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, dtype={"user_id": str, "item_id": str, "category": str, "session_id": str})
    missing = [column for column in REQUIRED if column not in frame.columns]
    if missing:
        raise CanonicalFormatError(f"{path}: missing required column(s) {', '.join(missing)}")
    for column in OPTIONAL:
        if column not in frame.columns:
            frame[column] = None
    frame = frame[list(REQUIRED + OPTIONAL)].copy()
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    frame["event_type"] = frame["event_type"].astype(str).str.strip().str.lower().map(TYPE_ALIASES)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
    frame["price"] = pd.to_numeric(frame["price"], errors="coerce")
    frame["quantity"] = pd.to_numeric(frame["quantity"], errors="coerce").fillna(1).clip(lower=1).astype(int)
    frame["category"] = frame["category"].where(frame["category"].notna() & (frame["category"] != ""), None)
    frame["session_id"] = frame["session_id"].where(frame["session_id"].notna(), None)
    frame = frame.dropna(subset=["event_type", "timestamp"])
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return frame


def write_events(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if path.suffix in {".parquet", ".pq"}:
        out.to_parquet(path, index=False)
    else:
        out.to_csv(path, index=False)


def data_hash(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def event_id(row_index: int, user_id: str, item_id: str, kind: str, ts_iso: str) -> str:
    """Deterministic: the same row of the same file always gets the same id, so replays are recognized."""
    return hashlib.sha256(f"{row_index}|{user_id}|{item_id}|{kind}|{ts_iso}".encode()).hexdigest()[:24]


def to_events(frame: pd.DataFrame, shift: timedelta = timedelta(0)) -> Iterator[Event]:
    """Rows -> the one event schema (with consent given, as the dataset's users had), time-shifted by `shift`."""
    consent = Consent(analytics=True, personalization=True)
    for row in frame.itertuples(index=True):
        ts = row.timestamp.to_pydatetime() + shift
        kind = EventType(row.event_type)
        price = None if pd.isna(row.price) else float(row.price)
        yield Event(
            event_id=event_id(int(row.Index), row.user_id, row.item_id, kind.value, row.timestamp.isoformat()),
            user_id=row.user_id,
            type=kind,
            ts=ts,
            item_id=row.item_id,
            category=row.category if isinstance(row.category, str) else None,
            price=price if price is None or price >= 0 else None,
            quantity=int(row.quantity),
            session_id=row.session_id if isinstance(row.session_id, str) else None,
            consent=consent,
        )
