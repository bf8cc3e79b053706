"""The item catalog built from events: every item with its category, last price and weighted popularity."""

from __future__ import annotations

import pandas as pd

from personalization.catalog import Catalog, CatalogItem
from personalization.profile import AFFINITY_WEIGHTS


def build_catalog(frame: pd.DataFrame) -> Catalog:
    """Popularity is the same implicit-feedback weighting the profile uses (view < cart < purchase)."""
    weights = frame["event_type"].map({kind.value: w for kind, w in AFFINITY_WEIGHTS.items()}).fillna(0.0)
    # Every item gets at least a small weight, so items seen only in removals still exist in the catalog.
    scored = frame.assign(weight=weights.where(weights > 0, 0.1))
    grouped = scored.groupby("item_id", sort=False)
    popularity = grouped["weight"].sum()
    last = scored.drop_duplicates("item_id", keep="last").set_index("item_id")
    items = [
        CatalogItem(
            id=str(item_id),
            category=last.at[item_id, "category"] if isinstance(last.at[item_id, "category"], str) else None,
            price=None if pd.isna(last.at[item_id, "price"]) else round(float(last.at[item_id, "price"]), 2),
            popularity=round(float(score), 4),
        )
        for item_id, score in popularity.items()
    ]
    return Catalog(items)
