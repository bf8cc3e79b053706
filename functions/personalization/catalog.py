"""The item catalog as serve sees it: ids, categories, prices and popularity, indexed for ranking."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import Any

# A price more than 8x off its category's median says no more than 8x does (and one typo cannot dominate).
PRICE_RATIO_CLIP = 3.0


@dataclass(frozen=True, slots=True)
class CatalogItem:
    id: str
    category: str | None
    price: float | None
    popularity: float
    # Optional merchandising attribute (rules boost or exclude by it); None where the data has none.
    brand: str | None = None


class Catalog:
    """Items in descending popularity, with a per-category index in the same order."""

    def __init__(self, items: list[CatalogItem]) -> None:
        self.items = sorted(items, key=lambda item: (-item.popularity, item.id))
        self.by_id = {item.id: item for item in self.items}
        by_category: dict[str, list[CatalogItem]] = defaultdict(list)
        for item in self.items:
            if item.category:
                by_category[item.category].append(item)
        self.by_category = dict(by_category)
        self.max_popularity = self.items[0].popularity if self.items else 1.0

    def __len__(self) -> int:
        return len(self.items)

    @cached_property
    def relative_prices(self) -> dict[str, float]:
        """Each priced item's log2(price / the median price of its category), within +-PRICE_RATIO_CLIP.

        What "cheap" and "dear" mean to a shopper: a 30 cable and a 900 phone are each compared with their own
        category. Items without a category are compared with the median of every priced item. Computed once
        per catalog, from the catalog alone, so the trainer and serve read the same numbers.
        """
        by_category: dict[str | None, list[float]] = defaultdict(list)
        for item in self.items:
            if item.price is not None and item.price > 0:
                by_category[item.category].append(item.price)
        everything = [price for prices in by_category.values() for price in prices]
        if not everything:
            return {}
        medians: dict[str | None, float] = {
            category: statistics.median(prices) for category, prices in by_category.items() if category
        }
        shop_wide = statistics.median(everything)
        relative = {}
        for item in self.items:
            if item.price is not None and item.price > 0:
                ratio = math.log2(item.price / medians.get(item.category, shop_wide))
                relative[item.id] = max(-PRICE_RATIO_CLIP, min(PRICE_RATIO_CLIP, ratio))
        return relative

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Catalog:
        return cls(
            [
                CatalogItem(
                    id=str(row["id"]),
                    category=row.get("category"),
                    price=None if row.get("price") is None else float(row["price"]),
                    popularity=float(row["popularity"]),
                    brand=row.get("brand"),
                )
                for row in data["items"]
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [
                {"id": i.id, "category": i.category, "price": i.price, "popularity": i.popularity, "brand": i.brand}
                for i in self.items
            ]
        }
