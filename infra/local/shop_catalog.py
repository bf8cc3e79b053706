"""What the storefront lists: `/shop/catalog.json`, cut from the live model version's catalog.

A real shop has its own product service; the demo shop shows the items the model knows, so every click lands
on an item the recommender can use. The page gets the most popular items plus, for the categories those items
cover, each category's own best-sellers, so filtering by a category shows more than the few of it in the top.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from personalization.catalog import Catalog, CatalogItem

TOP_ITEMS = 200
CATEGORIES = 16
ITEMS_PER_CATEGORY = 24


def _row(item: CatalogItem) -> dict[str, Any]:
    return {"id": item.id, "category": item.category, "brand": item.brand, "price": item.price}


def shop_catalog(
    catalog: Catalog,
    model_version: str,
    top: int = TOP_ITEMS,
    categories: int = CATEGORIES,
    per_category: int = ITEMS_PER_CATEGORY,
) -> dict[str, Any]:
    """`items`: the top items, then each listed category's best-sellers not among them, in popularity order;
    `categories`: the categories most represented in the top, each with its listed item ids in that order."""
    top_items = catalog.items[:top]
    represented = Counter(item.category for item in top_items if item.category)
    listed = [name for name, _ in represented.most_common(categories)]
    per_name = {name: catalog.by_category[name][:per_category] for name in listed}
    chosen = {item.id for item in top_items} | {item.id for items in per_name.values() for item in items}
    return {
        "model_version": model_version,
        "items": [_row(item) for item in catalog.items if item.id in chosen],
        "categories": [
            {"name": name, "items": len(catalog.by_category[name]), "item_ids": [item.id for item in per_name[name]]}
            for name in listed
        ],
    }
