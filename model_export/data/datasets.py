"""Adapters from real datasets to the canonical event file. One function per dataset, registered by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from model_export.data.canonical import REQUIRED, normalize, read_events


def rees46(path: Path) -> pd.DataFrame:
    """REES46 multi-category store (Kaggle, mkechinov): event_time, event_type, product_id, category_id,
    category_code, brand, price, user_id, user_session."""
    raw = pd.read_csv(path, dtype={"product_id": str, "category_id": str, "user_id": str, "category_code": str})
    return pd.DataFrame(
        {
            "user_id": raw["user_id"],
            "item_id": raw["product_id"],
            "event_type": raw["event_type"].map(
                {
                    "view": "view_product",
                    "cart": "add_to_cart",
                    "remove_from_cart": "remove_from_cart",
                    "purchase": "purchase",
                }
            ),
            "timestamp": pd.to_datetime(raw["event_time"], format="%Y-%m-%d %H:%M:%S UTC", utc=True),
            # category_code is the readable taxonomy; a fifth of the rows lack it, so fall back to the id.
            "category": raw["category_code"].where(raw["category_code"].notna(), "cat:" + raw["category_id"]),
            "price": raw["price"],
            "quantity": 1,
            "session_id": raw["user_session"],
            "brand": raw["brand"],
        }
    )


ADAPTERS: dict[str, Callable[[Path], pd.DataFrame]] = {"rees46": rees46}


def detect(path: Path) -> str | None:
    """The adapter whose columns a CSV file has, or None when it already is canonical."""
    header = set(pd.read_csv(path, nrows=0).columns)
    if set(REQUIRED) <= header:
        return None
    if {"event_time", "product_id", "user_session"} <= header:
        return "rees46"
    raise ValueError(f"{path}: neither canonical nor a known dataset (columns: {sorted(header)})")


def load_any(path: Path) -> pd.DataFrame:
    """A canonical file, or a known dataset converted on the fly (in memory: nothing is written beside the
    source, so concurrent runs on one dataset cannot trip over each other's temporary files)."""
    adapter = detect(path) if path.suffix == ".csv" else None
    if adapter is None:
        return read_events(path)
    return normalize(ADAPTERS[adapter](path), str(path))
