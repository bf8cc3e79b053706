"""The item catalog as serve sees it: ids, categories, prices and popularity, indexed for ranking."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NotRequired

from pydantic import BaseModel, ConfigDict, ValidationError
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

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


class CatalogError(ValueError):
    """A catalog document of the wrong shape."""


class _Row(TypedDict):
    id: str
    category: NotRequired[str | None]
    price: NotRequired[float | None]
    popularity: float
    brand: NotRequired[str | None]


class _CatalogDocument(BaseModel):
    """catalog.json as the trainer writes it. Validated by pydantic straight from the bytes (its JSON parser
    refuses nesting and digits past its limits with a ValidationError, as it does a string for `items`, a null
    row or a NaN popularity); typed-dict rows cost less than model rows, and the whole is cheaper than the
    json.loads plus hand-written loop it replaces."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, allow_inf_nan=False)

    items: list[_Row]

    def catalog_items(self) -> list[CatalogItem]:
        return [
            CatalogItem(row["id"], row.get("category"), row.get("price"), row["popularity"], row.get("brand"))
            for row in self.items
        ]


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
    def from_json(cls, data: bytes | str) -> Catalog:
        """Raises CatalogError for anything but a catalog document (bad JSON, nesting, digits or shape)."""
        try:
            return cls(_CatalogDocument.model_validate_json(data).catalog_items())
        except ValidationError as exc:
            raise CatalogError(f"catalog: {_first(exc)}") from None

    @classmethod
    def from_dict(cls, data: Any) -> Catalog:
        try:
            return cls(_CatalogDocument.model_validate(data).catalog_items())
        except ValidationError as exc:
            raise CatalogError(f"catalog: {_first(exc)}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [
                {"id": i.id, "category": i.category, "price": i.price, "popularity": i.popularity, "brand": i.brand}
                for i in self.items
            ]
        }


def _first(exc: ValidationError) -> str:
    """The first problem, short: a 55,000-row catalog can hold 55,000 of them."""
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "document"
    return f"{where}: {error['msg']} ({exc.error_count()} problems)"
