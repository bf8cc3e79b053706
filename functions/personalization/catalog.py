"""The item catalog as serve sees it: ids, categories, prices and popularity, indexed for ranking.

Held as columns (a numpy array per numeric field, categories and brands coded; the ids a list), not as one object
per item: a model version loads with a handful of array reads however many items it has (catalog.bin, see
catalog_file), and a CatalogItem is made only for an item a request actually shows or ranks (`items`, `by_id` and
`by_category` are views that build them on access).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NotRequired, overload

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

from personalization import catalog_columns, catalog_file

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


class _Maker:
    """Makes a catalog's items from its columns, each once. The views hold this, not the catalog: a catalog holds
    no reference cycle, so it is freed when a replaced version is let go (serve freezes its heap after init, so a
    cycle would never be collected: every version switch would keep the old catalog)."""

    __slots__ = ("_brand", "_brands", "_categories", "_category", "_made", "_popularity", "_price", "ids")

    def __init__(
        self,
        ids: list[str],
        category: npt.NDArray[np.int32],
        categories: list[str],
        price: npt.NDArray[np.float64],
        popularity: npt.NDArray[np.float64],
        brand: npt.NDArray[np.int32],
        brands: list[str],
    ) -> None:
        self.ids, self._category, self._categories, self._price = ids, category, categories, price
        self._popularity, self._brand, self._brands = popularity, brand, brands
        # Items already made, by position: a warm container asks for the same few thousand items on every
        # request, and making one costs more than finding it (frozen, so sharing is safe).
        self._made: dict[int, CatalogItem] = {}

    def item(self, position: int) -> CatalogItem:
        made = self._made.get(position)
        if made is not None:
            return made
        category, price, brand = int(self._category[position]), float(self._price[position]), int(self._brand[position])
        made = self._made[position] = CatalogItem(
            self.ids[position],
            None if category == NONE else self._categories[category],
            None if price != price else price,
            float(self._popularity[position]),
            None if brand == NONE else self._brands[brand],
        )
        return made


class _Items(Sequence[CatalogItem]):
    """Catalog items at some positions, made on access."""

    __slots__ = ("_catalog", "_positions")

    def __init__(self, catalog: _Maker, positions: Sequence[int]) -> None:
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
    __slots__ = ("_maker", "_position")

    def __init__(self, maker: _Maker, position: dict[str, int]) -> None:
        self._maker = maker
        self._position = position

    def __getitem__(self, item_id: str) -> CatalogItem:
        return self._maker.item(self._position[item_id])

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._position

    def __iter__(self) -> Iterator[str]:
        return iter(self._position)

    def __len__(self) -> int:
        return len(self._position)


class _PerItem(Mapping[str, float]):
    """A number per item id (NaN: none for that item), read through the catalog's positions."""

    __slots__ = ("_position", "_values")

    def __init__(self, position: Mapping[str, int], values: npt.NDArray[np.float64]) -> None:
        self._position = position
        self._values = values

    def __getitem__(self, item_id: str) -> float:
        value = float(self._values[self._position[item_id]])
        if value != value:  # NaN: this item has none
            raise KeyError(item_id)
        return value

    def __contains__(self, item_id: object) -> bool:
        where = self._position.get(item_id)  # type: ignore[call-overload]
        return where is not None and self._values[where] == self._values[where]

    def __iter__(self) -> Iterator[str]:
        return (item_id for item_id, where in self._position.items() if self._values[where] == self._values[where])

    def __len__(self) -> int:
        return int(np.count_nonzero(self._values == self._values))


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
            catalog_columns.codes(category),
            list(categories),
            catalog_columns.floats([math.nan if item.price is None else item.price for item in ordered]),
            catalog_columns.floats([item.popularity for item in ordered]),
            catalog_columns.codes(brand),
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
        if not catalog_columns.in_order(ids, popularity):
            order = sorted(range(len(ids)), key=lambda p: (-popularity[p], ids[p]))
            ids, category, prices = [ids[p] for p in order], [category[p] for p in order], [prices[p] for p in order]
            popularity, brand = [popularity[p] for p in order], [brand[p] for p in order]
        floats, codes = catalog_columns.floats, catalog_columns.codes
        catalog._set(ids, codes(category), categories, floats(prices), floats(popularity), codes(brand), brands)
        return catalog

    def _set(
        self,
        ids: list[str],
        category: npt.NDArray[np.int32],
        categories: list[str],
        price: npt.NDArray[np.float64],
        popularity: npt.NDArray[np.float64],
        brand: npt.NDArray[np.int32],
        brands: list[str],
        id_rank: npt.NDArray[np.int32] | None = None,
    ) -> None:
        self.ids = ids
        self._category = category
        self._categories = categories
        # NaN where an item has no price: a float column keeps whole-column arithmetic possible.
        self._price = price
        self._popularity = popularity
        self._brand = brand
        self._brands = brands
        # Each item's place among the ids sorted, and the priced items cheapest first (catalog.bin carries both;
        # computed on first use otherwise).
        self._rank = id_rank
        self._given_price_order: npt.NDArray[np.integer[Any]] | None = None
        self.position = dict(zip(ids, range(len(ids)), strict=True))
        self._maker = _Maker(ids, category, categories, price, popularity, brand, brands)
        self.items: Sequence[CatalogItem] = _Items(self._maker, range(len(ids)))
        self.by_id: Mapping[str, CatalogItem] = _ById(self._maker, self.position)
        # The scale scores divide by; a shop whose every item has popularity 0 scores them all 0, not 0/0
        self.max_popularity = float(popularity[0]) if len(popularity) and popularity[0] > 0 else 1.0
        # Each category's place in a few-dimensional space of what people shop for together (the trainer's
        # factorization of people x categories, model_export.data.catalog.category_axes): the segment features
        # read a person's position in it from their category affinities. Shipped in the catalog file, so serve
        # reads the same numbers. Empty until with_category_axes sets it (a catalog without axes).
        self.category_axes: dict[str, tuple[float, ...]] = {}

    def with_category_axes(self, axes: Mapping[str, Sequence[float]]) -> Catalog:
        """This catalog, with `axes` as its category axes (returned for chaining)."""
        self.category_axes = {category: tuple(float(x) for x in values) for category, values in axes.items()}
        return self

    def item(self, position: int) -> CatalogItem:
        return self._maker.item(position)

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def _in_category(self) -> dict[str, list[int]]:
        """Each named category's positions, in catalog order."""
        names = self._categories
        # An empty name is no category.
        return {names[code]: found for code, found in catalog_columns.groups(self._category) if names[code]}

    @cached_property
    def by_category(self) -> dict[str, Sequence[CatalogItem]]:
        """Each named category's items, in catalog order."""
        return {category: _Items(self._maker, found) for category, found in self._in_category.items()}

    def category_names(self) -> list[str]:
        """Every named category (an empty name is none)."""
        return list(self._in_category)

    def positions_in(self, category: str) -> list[int]:
        """One category's positions, in catalog order (empty for a category the catalog lacks)."""
        return self._in_category.get(category, [])

    def ids_by_category(self) -> dict[str, list[str]]:
        """Each named category's item ids, in catalog order (no item objects made)."""
        ids = self.ids
        return {category: list(map(ids.__getitem__, found)) for category, found in self._in_category.items()}

    @cached_property
    def brand_of(self) -> Mapping[str, list[str]]:
        """Item ids by brand name, as written (rules compare brands case-insensitively)."""
        found: dict[str, list[str]] = {}
        ids = self.ids
        if len(set(self._brands)) == len(self._brands):
            groups = catalog_columns.groups(self._brand)
            return {self._brands[code]: list(map(ids.__getitem__, where)) for code, where in groups}
        for item_id, code in zip(ids, self._brand.tolist(), strict=True):  # a name twice: merged, in catalog order
            if code != NONE:
                found.setdefault(self._brands[code], []).append(item_id)
        return found

    @cached_property
    def _id_rank(self) -> npt.NDArray[np.int32]:
        if self._rank is not None:
            return self._rank
        rank = np.empty(len(self.ids), dtype=np.int32)
        rank[sorted(range(len(self.ids)), key=self.ids.__getitem__)] = np.arange(len(self.ids), dtype=np.int32)
        return rank

    @cached_property
    def _price_order(self) -> npt.NDArray[np.integer[Any]]:
        if self._given_price_order is not None:  # catalog.bin's, checked when read
            return self._given_price_order
        priced = np.flatnonzero(self._price == self._price)  # NaN: no price
        order: npt.NDArray[np.integer[Any]] = priced[np.lexsort((self._id_rank[priced], self._price[priced]))]
        return order

    def price_order(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.integer[Any]]]:
        """(prices, positions) of every priced item, cheapest first (equal prices by id): arrays, for a
        binary search by price (numpy.searchsorted) without an object per item."""
        order = self._price_order
        return self._price[order], order

    def priced(self) -> list[tuple[float, str]]:
        """(price, id) of every priced item, cheapest first."""
        prices, order = self.price_order()
        return list(zip(prices.tolist(), map(self.ids.__getitem__, order.tolist()), strict=True))

    @cached_property
    def relative_prices(self) -> Mapping[str, float]:
        """Each priced item's log2(price / the median price of its category), within +-PRICE_RATIO_CLIP.

        What "cheap" and "dear" mean to a shopper: a 30 cable and a 900 phone are each compared with their own
        category. Items without a category are compared with the median of every priced item. Computed once
        per catalog, from the catalog alone (over its columns), so the trainer and serve read the same numbers.
        """
        price = self._price
        relative = np.full(price.shape, np.nan)
        # The priced items cheapest first (catalog.bin's order; else sorted here), those above 0 kept: every
        # category's prices come out of one stable grouping already sorted, so each median is a middle element
        # (or the mean of two, as numpy.median takes it), with no per-category call.
        if self._given_price_order is not None:
            cheapest = self._given_price_order
        else:
            known = np.flatnonzero(price == price)
            cheapest = known[np.argsort(price[known], kind="stable")]
        cheapest = cheapest[price[cheapest] > 0]
        if cheapest.size:
            named = np.asarray([bool(name) for name in self._categories] + [False], dtype=bool)
            shop = catalog_columns.middle(price[cheapest], np.asarray([0]))[0]
            median = np.full(len(self._categories) + 1, shop)  # the last: the shop-wide one
            code = self._category[cheapest]
            order, codes = catalog_columns.stable_by_code(code)
            starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
            found = catalog_columns.middle(price[cheapest[order]], starts)
            keep = named[codes[starts]]  # NONE (-1) reads False: no category keeps the shop-wide median
            median[codes[starts][keep]] = found[keep]
            with np.errstate(divide="ignore", over="ignore"):  # a subnormal price: -inf, clipped below
                ratio = np.log2(price[cheapest] / median[code])  # NONE (-1) reads the shop-wide median
            relative[cheapest] = np.clip(ratio, -PRICE_RATIO_CLIP, PRICE_RATIO_CLIP)
        return _PerItem(self.position, relative)

    @classmethod
    def from_bytes(cls, data: bytes) -> Catalog:
        """A catalog file of either format: catalog.bin (personalization.catalog_file) or a catalog.json
        document. Raises CatalogError for anything else."""
        if not catalog_file.is_catalog_file(data):
            return cls.from_json(data)
        try:
            columns = catalog_file.read(data)
        except catalog_file.CatalogFileError as exc:
            raise CatalogError(f"catalog: {exc}") from None
        catalog = cls.__new__(cls)
        c = columns
        catalog._set(c.ids, c.category, c.categories, c.price, c.popularity, c.brand, c.brands, c.id_rank)
        catalog._given_price_order = c.price_order
        if len(catalog.position) != len(c.ids):
            raise CatalogError("catalog: an item id appears twice")
        return catalog.with_category_axes(c.category_axes)

    def to_bytes(self) -> bytes:
        """catalog.bin's bytes (what from_bytes reads). CatalogError when an id cannot be written that way (a
        line break in it, say): catalog.json (to_dict) holds any string."""
        columns = catalog_file.Columns(
            self.ids,
            self._categories,
            self._category,
            self._price,
            self._popularity,
            self._brands,
            self._brand,
            self._id_rank,
            self._price_order,
            {category: list(axes) for category, axes in self.category_axes.items()},
        )
        try:
            return catalog_file.write(columns)
        except catalog_file.CatalogFileError as exc:
            raise CatalogError(f"catalog: {exc}") from None

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
                "category": self._category.tolist(),
                "price": [None if price != price else price for price in self._price.tolist()],
                "popularity": self._popularity.tolist(),
                "brands": self._brands,
                "brand": self._brand.tolist(),
            },
            "category_axes": {category: list(axes) for category, axes in self.category_axes.items()},
        }

    def category_codes(self) -> Sequence[int]:
        """Each item's category as a code, by position (NONE: no category): two items share a code exactly when
        they share a category. The rules' diversity cap counts categories by it without making an item."""
        return self._category_list

    @cached_property
    def _category_list(self) -> list[int]:
        # A list, not the array: the diversity cap reads codes one item at a time, where a list is the faster.
        codes: list[int] = self._category.tolist()
        return codes


def _first(exc: ValidationError) -> str:
    """The first problem, short: a 55,000-row catalog can hold 55,000 of them."""
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "document"
    return f"{where}: {error['msg']} ({exc.error_count()} problems)"
