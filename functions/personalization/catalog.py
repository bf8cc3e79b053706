"""The item catalog as serve sees it: ids, categories, prices and popularity, indexed for ranking.

Held as columns (one list per field, categories and brands coded), not as one object per item: a model version
loads with a handful of list reads however many items it has, and a CatalogItem is made only for an item a
request actually shows or ranks (`items`, `by_id` and `by_category` are views that build them on access).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NotRequired, overload

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

# A price more than 8x off its category's median says no more than 8x does (and one typo cannot dominate).
PRICE_RATIO_CLIP = 3.0
# Category and brand codes of an item without one.
NONE = -1


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


class _Columns(BaseModel):
    """The columnar catalog the trainer writes: one list per field, categories and brands as codes into their
    name lists (NONE for an item without one), in the catalog's order (descending popularity, then id)."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, allow_inf_nan=False)

    id: list[str]
    categories: list[str]
    category: list[int]
    price: list[float | None]
    popularity: list[float]
    brands: list[str]
    brand: list[int]

    @model_validator(mode="after")
    def _consistent(self) -> _Columns:
        n = len(self.id)
        for name in ("category", "price", "popularity", "brand"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name} has {len(getattr(self, name))} values for {n} ids")
        for codes, names in ((self.category, self.categories), (self.brand, self.brands)):
            if codes and not NONE <= min(codes) <= max(codes) < len(names):
                raise ValueError(f"a code outside {NONE}..{len(names) - 1}")
        return self


class _CatalogDocument(BaseModel):
    """catalog.json: `columns` as the trainer writes it now, or `items`, one object per item, as versions
    published before it did. Validated by pydantic straight from the bytes (its JSON parser refuses nesting and
    digits past its limits with a ValidationError, as it does a string for a column, a null id or a NaN
    popularity)."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, allow_inf_nan=False)

    columns: _Columns | None = None
    items: list[_Row] | None = None
    # Written by trainers since feature schema 3; a catalog without it places nobody in the category space.
    category_axes: dict[str, list[float]] = {}

    @model_validator(mode="after")
    def _one_form(self) -> _CatalogDocument:
        if (self.columns is None) == (self.items is None):
            raise ValueError("a catalog holds either `columns` or `items`")
        return self

    def catalog(self) -> Catalog:
        if self.columns is not None:
            c = self.columns
            found = Catalog.from_columns(c.id, c.categories, c.category, c.price, c.popularity, c.brands, c.brand)
        else:
            found = Catalog(
                CatalogItem(row["id"], row.get("category"), row.get("price"), row["popularity"], row.get("brand"))
                for row in self.items or ()
            )
        return found.with_category_axes(self.category_axes)


class _Items(Sequence[CatalogItem]):
    """Catalog items at some positions, made on access."""

    __slots__ = ("_catalog", "_positions")

    def __init__(self, catalog: Catalog, positions: Sequence[int]) -> None:
        self._catalog = catalog
        self._positions = positions

    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, index: int) -> CatalogItem: ...

    @overload
    def __getitem__(self, index: slice) -> list[CatalogItem]: ...

    def __getitem__(self, index: int | slice) -> CatalogItem | list[CatalogItem]:
        if isinstance(index, slice):
            return list(map(self._catalog.item, self._positions[index]))
        return self._catalog.item(self._positions[index])

    def __iter__(self) -> Iterator[CatalogItem]:
        return map(self._catalog.item, self._positions)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking sequences are not hashable

    def __repr__(self) -> str:
        return f"<{len(self)} catalog items>"


class _ById(Mapping[str, CatalogItem]):
    __slots__ = ("_catalog",)

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def __getitem__(self, item_id: str) -> CatalogItem:
        return self._catalog.item(self._catalog.position[item_id])

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._catalog.position

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalog.position)

    def __len__(self) -> int:
        return len(self._catalog.position)


class _PerItem(Mapping[str, float]):
    """A number per item id (NaN: none for that item), read through the catalog's positions."""

    __slots__ = ("_position", "_values")

    def __init__(self, position: Mapping[str, int], values: list[float]) -> None:
        self._position = position
        self._values = values

    def __getitem__(self, item_id: str) -> float:
        value = self._values[self._position[item_id]]
        if value != value:  # NaN: this item has none
            raise KeyError(item_id)
        return value

    def __contains__(self, item_id: object) -> bool:
        where = self._position.get(item_id)  # type: ignore[call-overload]
        return where is not None and self._values[where] == self._values[where]

    def __iter__(self) -> Iterator[str]:
        return (item_id for item_id, where in self._position.items() if self._values[where] == self._values[where])

    def __len__(self) -> int:
        return sum(value == value for value in self._values)


class Catalog:
    """Items in descending popularity (ties by id), with a per-category index in the same order."""

    def __init__(self, items: Iterable[CatalogItem]) -> None:
        ordered = sorted(items, key=lambda item: (-item.popularity, item.id))
        categories: dict[str, int] = {}
        brands: dict[str, int] = {}
        category = [NONE if i.category is None else categories.setdefault(i.category, len(categories)) for i in ordered]
        brand = [NONE if i.brand is None else brands.setdefault(i.brand, len(brands)) for i in ordered]
        self._set(
            [item.id for item in ordered],
            category,
            list(categories),
            [math.nan if item.price is None else item.price for item in ordered],
            [item.popularity for item in ordered],
            brand,
            list(brands),
        )

    @classmethod
    def from_columns(
        cls,
        ids: list[str],
        categories: list[str],
        category: list[int],
        price: list[float | None],
        popularity: list[float],
        brands: list[str],
        brand: list[int],
    ) -> Catalog:
        """A catalog from its columns (as _Columns holds them); sorted only if they are not in catalog order."""
        catalog = cls.__new__(cls)
        prices = [math.nan if p is None else p for p in price]
        if _in_order(ids, popularity):
            catalog._set(ids, category, categories, prices, popularity, brand, brands)
            return catalog
        order = sorted(range(len(ids)), key=lambda p: (-popularity[p], ids[p]))
        catalog._set(
            [ids[p] for p in order],
            [category[p] for p in order],
            categories,
            [prices[p] for p in order],
            [popularity[p] for p in order],
            [brand[p] for p in order],
            brands,
        )
        return catalog

    def _set(
        self,
        ids: list[str],
        category: list[int],
        categories: list[str],
        price: list[float],
        popularity: list[float],
        brand: list[int],
        brands: list[str],
    ) -> None:
        self.ids = ids
        self._category = category
        self._categories = categories
        # NaN where an item has no price: a float column keeps whole-column arithmetic possible.
        self._price = price
        self._popularity = popularity
        self._brand = brand
        self._brands = brands
        self.position = {item_id: where for where, item_id in enumerate(ids)}
        self.items: Sequence[CatalogItem] = _Items(self, range(len(ids)))
        self.by_id: Mapping[str, CatalogItem] = _ById(self)
        # Items already made, by position: a warm container asks for the same few thousand items on every
        # request, and making one costs more than finding it (frozen, so sharing is safe). At most one per item.
        self._made: dict[int, CatalogItem] = {}
        # The scale scores divide by; a shop whose every item has popularity 0 scores them all 0, not 0/0
        self.max_popularity = float(popularity[0]) if popularity and popularity[0] > 0 else 1.0
        # Each category's place in a few-dimensional space of what people shop for together (the trainer's
        # factorization of people x categories, model_export.data.catalog.category_axes): the segment features
        # read a person's position in it from their category affinities. Shipped in catalog.json, so serve
        # reads the same numbers. Empty until with_category_axes sets it (a catalog without axes).
        self.category_axes: dict[str, tuple[float, ...]] = {}

    def with_category_axes(self, axes: Mapping[str, Sequence[float]]) -> Catalog:
        """This catalog, with `axes` as its category axes (returned for chaining)."""
        self.category_axes = {category: tuple(float(x) for x in values) for category, values in axes.items()}
        return self

    def item(self, position: int) -> CatalogItem:
        made = self._made.get(position)
        if made is not None:
            return made
        category, price, brand = self._category[position], self._price[position], self._brand[position]
        made = self._made[position] = CatalogItem(
            self.ids[position],
            None if category == NONE else self._categories[category],
            None if price != price else price,
            self._popularity[position],
            None if brand == NONE else self._brands[brand],
        )
        return made

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def _in_category(self) -> dict[str, list[int]]:
        """Each named category's positions, in catalog order."""
        positions: dict[int, list[int]] = {}
        for where, code in enumerate(self._category):
            if code != NONE:
                positions.setdefault(code, []).append(where)
        # An empty name is no category.
        return {self._categories[code]: found for code, found in positions.items() if self._categories[code]}

    @cached_property
    def by_category(self) -> dict[str, Sequence[CatalogItem]]:
        """Each named category's items, in catalog order."""
        return {category: _Items(self, found) for category, found in self._in_category.items()}

    def ids_by_category(self) -> dict[str, list[str]]:
        """Each named category's item ids, in catalog order (no item objects made)."""
        ids = self.ids
        return {category: [ids[where] for where in found] for category, found in self._in_category.items()}

    @cached_property
    def brand_of(self) -> Mapping[str, list[str]]:
        """Item ids by brand name, as written (rules compare brands case-insensitively)."""
        found: dict[str, list[str]] = {}
        for item_id, code in zip(self.ids, self._brand, strict=True):
            if code != NONE:
                found.setdefault(self._brands[code], []).append(item_id)
        return found

    def priced(self) -> list[tuple[float, str]]:
        """(price, id) of every priced item, cheapest first."""
        return sorted((price, item_id) for price, item_id in zip(self._price, self.ids, strict=True) if price == price)

    @cached_property
    def relative_prices(self) -> Mapping[str, float]:
        """Each priced item's log2(price / the median price of its category), within +-PRICE_RATIO_CLIP.

        What "cheap" and "dear" mean to a shopper: a 30 cable and a 900 phone are each compared with their own
        category. Items without a category are compared with the median of every priced item. Computed once
        per catalog, from the catalog alone (over its columns), so the trainer and serve read the same numbers.
        """
        price = np.asarray(self._price, dtype=np.float64)
        code = np.asarray(self._category, dtype=np.int64)
        priced = price > 0  # NaN compares False
        relative = np.full(price.shape, np.nan)
        if priced.any():
            named = np.asarray([bool(name) for name in self._categories] + [False], dtype=bool)
            median = np.full(len(self._categories) + 1, np.median(price[priced]))  # the last: the shop-wide one
            order = np.argsort(code[priced], kind="stable")
            codes, prices = code[priced][order], price[priced][order]
            starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
            for start, end in zip(starts, [*starts[1:], codes.size], strict=True):
                if named[codes[start]]:
                    median[codes[start]] = np.median(prices[start:end])
            ratio = np.log2(price[priced] / median[code[priced]])  # NONE (-1) reads the shop-wide median
            relative[priced] = np.clip(ratio, -PRICE_RATIO_CLIP, PRICE_RATIO_CLIP)
        return _PerItem(self.position, relative.tolist())

    @classmethod
    def from_json(cls, data: bytes | str) -> Catalog:
        """Raises CatalogError for anything but a catalog document (bad JSON, nesting, digits or shape)."""
        try:
            return _CatalogDocument.model_validate_json(data).catalog()
        except ValidationError as exc:
            raise CatalogError(f"catalog: {_first(exc)}") from None

    @classmethod
    def from_dict(cls, data: Any) -> Catalog:
        try:
            return _CatalogDocument.model_validate(data).catalog()
        except ValidationError as exc:
            raise CatalogError(f"catalog: {_first(exc)}") from None

    def to_dict(self) -> dict[str, Any]:
        """The columnar document (what from_dict and from_json read)."""
        return {
            "columns": {
                "id": self.ids,
                "categories": self._categories,
                "category": self._category,
                "price": [None if price != price else price for price in self._price],
                "popularity": self._popularity,
                "brands": self._brands,
                "brand": self._brand,
            },
            "category_axes": {category: list(axes) for category, axes in self.category_axes.items()},
        }

    def category_codes(self) -> Sequence[int]:
        """Each item's category as a code, by position (NONE: no category): two items share a code exactly when
        they share a category. The rules' diversity cap counts categories by it without making an item."""
        return self._category


def _in_order(ids: list[str], popularity: list[float]) -> bool:
    """Descending popularity, ties by ascending id: the order the trainer writes."""
    pop = np.asarray(popularity, dtype=np.float64)
    if pop.size < 2:
        return True
    step = np.diff(pop)
    if (step > 0).any():
        return False
    return all(ids[where] < ids[where + 1] for where in np.flatnonzero(step == 0).tolist())


def _first(exc: ValidationError) -> str:
    """The first problem, short: a 55,000-row catalog can hold 55,000 of them."""
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "document"
    return f"{where}: {error['msg']} ({exc.error_count()} problems)"
