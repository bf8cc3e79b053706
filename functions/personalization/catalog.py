"""The item catalog as serve sees it: ids, categories, prices and popularity, indexed for ranking."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any


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
