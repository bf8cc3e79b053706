"""The canonical event file: the only input format the trainer and the evaluation read.

Columns: user_id, item_id, event_type, timestamp (required); category, price, quantity, session_id, brand,
device, utc_offset_min (optional; brand is a catalog attribute only, not part of the stream event; device and
utc_offset_min are the event's context, what the tracker said of the visitor's device and clock).
CSV or Parquet. Any real dataset
gets an adapter to this format (see datasets.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
from pydantic import ValidationError
from tqdm import tqdm

from personalization.events import ITEM_EVENT_TYPES, Consent, Context, Event, EventType, Reason, validation_rejection

log = logging.getLogger(__name__)

REQUIRED = ("user_id", "item_id", "event_type", "timestamp")
OPTIONAL = ("category", "price", "quantity", "session_id", "brand", "device", "utc_offset_min")

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


# Where normalize() keeps the counts of the rows it could not read at all, by the reason ingest would give.
REFUSED_ATTR = "refused"


class CanonicalFormatError(ValueError):
    pass


def read_events(path: Path) -> pd.DataFrame:
    """Read, check and normalize a canonical file; rows come back sorted by time (stable)."""
    if path.suffix in {".parquet", ".pq"}:
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(
            path,
            dtype={"user_id": str, "item_id": str, "category": str, "session_id": str, "brand": str, "device": str},
        )
    return normalize(frame, str(path))


def normalize(frame: pd.DataFrame, source: str = "events") -> pd.DataFrame:
    """Check and normalize canonical columns (an adapter's output, or a file just read), sorted by time."""
    missing = [column for column in REQUIRED if column not in frame.columns]
    if missing:
        raise CanonicalFormatError(f"{source}: missing required column(s) {', '.join(missing)}")
    frame = frame.copy()
    for column in OPTIONAL:
        if column not in frame.columns:
            frame[column] = None
    frame = frame[list(REQUIRED + OPTIONAL)].copy()
    frame["user_id"] = frame["user_id"].astype(str)
    # Missing ids stay missing (astype(str) keeps NaN as NaN): as the text "nan" they would become an item.
    frame["item_id"] = frame["item_id"].astype(str)
    frame["event_type"] = frame["event_type"].astype(str).str.strip().str.lower().map(TYPE_ALIASES)
    if not pd.api.types.is_datetime64_any_dtype(frame["timestamp"]):
        frame["timestamp"] = parse_timestamps(frame["timestamp"])
    elif frame["timestamp"].dt.tz is None:
        frame["timestamp"] = frame["timestamp"].dt.tz_localize("UTC")
    else:
        frame["timestamp"] = frame["timestamp"].dt.tz_convert("UTC")
    frame["price"] = pd.to_numeric(frame["price"], errors="coerce")
    frame["quantity"] = pd.to_numeric(frame["quantity"], errors="coerce").fillna(1).clip(lower=1).astype(int)
    frame["category"] = frame["category"].where(frame["category"].notna() & (frame["category"] != ""), None)
    frame["session_id"] = frame["session_id"].where(frame["session_id"].notna(), None)
    frame["brand"] = frame["brand"].where(frame["brand"].notna() & (frame["brand"] != ""), None)
    # A search or page view may name no item (it still counts in the profile); an item event must name one.
    itemless = frame["item_id"].isna() & frame["event_type"].isin([kind.value for kind in ITEM_EVENT_TYPES])
    frame["device"] = frame["device"].where(frame["device"].notna() & (frame["device"] != ""), None)
    offsets = pd.to_numeric(frame["utc_offset_min"], errors="coerce")
    # An offset the event schema would refuse (beyond UTC-12..UTC+14) is dropped, not the row.
    frame["utc_offset_min"] = offsets.where(offsets.between(-12 * 60, 14 * 60)).round().astype("Int64")
    unusable = frame["event_type"].isna() | frame["timestamp"].isna() | itemless
    if unusable.any():
        log.warning(
            "%s: dropped %d of %d rows (unknown event type: %d, unreadable timestamp: %d, item event without item: %d)",
            source,
            int(unusable.sum()),
            len(frame),
            int(frame["event_type"].isna().sum()),
            int(frame["timestamp"].isna().sum()),
            int(itemless.sum()),
        )
    refused = Counter(frame.attrs.get(REFUSED_ATTR, {}))
    # Ingest's reasons for the same records: a type it does not know; a ts it cannot read, or an item event
    # without an item, are invalid.
    refused[Reason.UNKNOWN_TYPE.value] += int(frame["event_type"].isna().sum())
    refused[Reason.INVALID_FIELD.value] += int((unusable & frame["event_type"].notna()).sum())
    frame = frame[~unusable]
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    frame.attrs[REFUSED_ATTR] = {reason: count for reason, count in sorted(refused.items()) if count}
    return frame


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO 8601 strings (any offset) or epoch numbers (seconds, or milliseconds when that large), mixed."""
    numeric = pd.to_numeric(values, errors="coerce")
    # Epochs after 2001-09-09 in milliseconds exceed 1e12; in seconds they stay below 1e11 until year 5138.
    epoch = pd.to_datetime(numeric.where(numeric < 1e11), unit="s", utc=True).fillna(
        pd.to_datetime(numeric.where(numeric >= 1e11), unit="ms", utc=True)
    )
    text = pd.to_datetime(values.where(numeric.isna()).astype("string"), utc=True, errors="coerce", format="mixed")
    return epoch.fillna(text)


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
    """Rows -> the one event schema (with consent given, as the dataset's users had), time-shifted by `shift`.
    Rows the schema refuses are left out (`indexed_events` counts them)."""
    for _, event in indexed_events(frame, shift):
        yield event


def indexed_events(
    frame: pd.DataFrame, shift: timedelta = timedelta(0), refused: Counter[str] | None = None
) -> Iterator[tuple[int, Event]]:
    """(row index, event) for every row the one event schema accepts. A row it refuses (a quantity above the
    cap, an id too long, ...) is skipped and counted in `refused` under the reason ingest would quarantine it
    with, so one bad row never stops a run."""
    consent = Consent(analytics=True, personalization=True)
    no_context = Context()
    # Column by column into plain lists, then one pass over the rows: iterating a frame's rows (itertuples over
    # Arrow-backed strings, pd.isna per cell) cost more than building the events themselves.
    n = len(frame)
    stamps = frame["timestamp"].tolist()
    prices = frame["price"].astype("float64").tolist()
    # Optional columns: a frame straight from an adapter may lack them.
    devices = frame["device"].tolist() if "device" in frame.columns else [None] * n
    offsets = frame["utc_offset_min"].tolist() if "utc_offset_min" in frame.columns else [None] * n
    columns = zip(
        frame.index.tolist(),
        frame["user_id"].tolist(),
        frame["item_id"].tolist(),
        frame["event_type"].tolist(),
        stamps,
        frame["category"].tolist(),
        prices,
        frame["quantity"].tolist(),
        frame["session_id"].tolist(),
        devices,
        offsets,
        strict=True,
    )
    for index, user_id, item_id, event_type, stamp, category, price, quantity, session, device, offset in columns:
        kind = EventType(event_type)
        device = device if isinstance(device, str) else None
        offset = None if offset is None or offset is pd.NA or offset != offset else int(offset)
        try:
            context = no_context if device is None and offset is None else Context(device=device, utc_offset_min=offset)
            event = Event(
                event_id=event_id(int(index), user_id, item_id, kind.value, stamp.isoformat()),
                user_id=user_id,
                type=kind,
                ts=stamp.to_pydatetime() + shift,
                item_id=item_id if isinstance(item_id, str) else None,
                category=category if isinstance(category, str) else None,
                # NaN (a missing price) is the one float unequal to itself.
                price=price if price == price and price >= 0 else None,
                quantity=int(quantity),
                session_id=session if isinstance(session, str) else None,
                context=context,
                consent=consent,
            )
        except ValidationError as exc:
            if refused is not None:
                refused[validation_rejection(exc).reason.value] += 1
            continue
        yield int(index), event


def screen(frame: pd.DataFrame, progress: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows the one event schema accepts, and the count of the others by reason (with those normalize()
    already dropped). Training, replay and evaluation all read the screened frame, so they see the same
    events ingest would have folded."""
    refused: Counter[str] = Counter(frame.attrs.get(REFUSED_ATTR, {}))
    events = tqdm(
        indexed_events(frame, refused=refused), total=len(frame), desc="screen", unit="ev", disable=not progress
    )
    kept = [index for index, _ in events]
    screened = frame.loc[kept] if len(kept) < len(frame) else frame
    counts = {reason: count for reason, count in sorted(refused.items()) if count}
    screened.attrs[REFUSED_ATTR] = counts
    return screened, counts
