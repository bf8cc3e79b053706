"""catalog.bin: the catalog's columns as raw little-endian arrays, read without making a Python object per item.

A 500,000-item catalog.json takes most of a second to parse and validate (a Python float, int and string per
item and column, each checked by pydantic); the same columns as arrays load with `numpy.frombuffer` (no copy)
and are validated with whole-array checks. Only the ids become Python strings (one `split` of one blob): serve
looks items up by id on every request.

Layout (every integer little-endian):
    MAGIC (8 bytes) | header length H (uint32) | header (H bytes of JSON) | zero padding to a multiple of 8 |
    popularity float64[n] | price float64[n] (NaN: no price) | category int32[n] | brand int32[n] |
    id_rank int32[n] | price_order int32[priced] | ids (UTF-8, joined by "\\n", `ids_bytes` long)
The header names n, priced, ids_bytes, the category and brand names the codes index (NONE = -1: none) and the
category axes. Items are in catalog order (descending popularity, ties by ascending id); id_rank is each item's
place among the ids sorted, so the tie check needs no string sort at load; price_order lists the priced items'
positions cheapest first (equal prices by id), what the rules' price ranges search (sorting 500,000 prices at
load would cost some 100 ms).

No library reads this: numpy's own .npy/.npz hold one array per file (or a zip of them, whose per-member
headers and CRC cost what we are here to save) and no strings blob; Arrow/Parquet would add tens of MB to the
serve package. The format is small enough to define here, reader and writer side by side.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAGIC = b"PZCAT\x00\x01\n"
_LENGTH = struct.Struct("<I")
_ALIGN = 8
_FLOAT = np.dtype("<f8")
_INT = np.dtype("<i4")
# Codes of an item without a category or brand (personalization.catalog.NONE).
NONE = -1
SEPARATOR = "\n"


class CatalogFileError(ValueError):
    """Bytes that are not a catalog.bin this reader can use, with what is wrong."""


class _Header(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    format: int = Field(ge=1, le=1)
    n: int = Field(ge=0, lt=2**31)
    priced: int = Field(ge=0)
    ids_bytes: int = Field(ge=0)
    categories: list[str]
    brands: list[str]
    category_axes: dict[str, list[float]] = {}


@dataclass(frozen=True, slots=True)
class Columns:
    """A catalog's columns, in catalog order: what personalization.catalog.Catalog holds."""

    ids: list[str]
    categories: list[str]
    category: npt.NDArray[np.int32]
    price: npt.NDArray[np.float64]
    popularity: npt.NDArray[np.float64]
    brands: list[str]
    brand: npt.NDArray[np.int32]
    # Each item's place among the ids in sorted order.
    id_rank: npt.NDArray[np.int32]
    # The priced items' positions, cheapest first (equal prices by id).
    price_order: npt.NDArray[np.integer[Any]]
    category_axes: dict[str, list[float]]


def is_catalog_file(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def _padded(length: int) -> int:
    return -length % _ALIGN


def write(columns: Columns) -> bytes:
    """The file's bytes. CatalogFileError when an id cannot be written this way (it holds the separator or is not
    encodable as UTF-8): the trainer then writes catalog.json, which holds any string."""
    if any(SEPARATOR in item_id for item_id in columns.ids):
        raise CatalogFileError("an item id holds a line break")
    try:
        ids = SEPARATOR.join(columns.ids).encode()
    except UnicodeEncodeError as exc:
        raise CatalogFileError(f"an item id is not UTF-8: {exc}") from None
    header = (
        _Header(
            format=1,
            n=len(columns.ids),
            priced=len(columns.price_order),
            ids_bytes=len(ids),
            categories=list(columns.categories),
            brands=list(columns.brands),
            category_axes={name: [float(x) for x in axes] for name, axes in columns.category_axes.items()},
        )
        .model_dump_json()
        .encode()
    )
    start = len(MAGIC) + _LENGTH.size + len(header)
    return b"".join(
        [
            MAGIC,
            _LENGTH.pack(len(header)),
            header,
            b"\x00" * _padded(start),
            np.ascontiguousarray(columns.popularity, dtype=_FLOAT).tobytes(),
            np.ascontiguousarray(columns.price, dtype=_FLOAT).tobytes(),
            np.ascontiguousarray(columns.category, dtype=_INT).tobytes(),
            np.ascontiguousarray(columns.brand, dtype=_INT).tobytes(),
            np.ascontiguousarray(columns.id_rank, dtype=_INT).tobytes(),
            np.ascontiguousarray(columns.price_order, dtype=_INT).tobytes(),
            ids,
        ]
    )


def read(data: bytes) -> Columns:
    """The columns, checked as strictly as catalog.json's: CatalogFileError for anything else. The arrays are
    read-only views of `data` (no copy)."""
    if not is_catalog_file(data):
        raise CatalogFileError("not a catalog.bin (magic)")
    at = len(MAGIC)
    if len(data) < at + _LENGTH.size:
        raise CatalogFileError("truncated header")
    (length,) = _LENGTH.unpack_from(data, at)
    at += _LENGTH.size
    if length > len(data) - at:
        raise CatalogFileError("truncated header")
    try:
        header = _Header.model_validate_json(data[at : at + length])
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "document"
        raise CatalogFileError(f"header {where}: {error['msg']}") from None
    at += length
    at += _padded(at)
    n = header.n
    expected = at + n * (2 * _FLOAT.itemsize + 3 * _INT.itemsize) + header.priced * _INT.itemsize + header.ids_bytes
    if len(data) != expected:
        raise CatalogFileError(f"{len(data)} bytes where the header promises {expected}")

    def array(dtype: np.dtype[np.generic], count: int = n) -> npt.NDArray[np.generic]:
        nonlocal at
        found = np.frombuffer(data, dtype=dtype, count=count, offset=at)
        at += count * dtype.itemsize
        return found

    popularity = array(_FLOAT)
    price = array(_FLOAT)
    category = array(_INT)
    brand = array(_INT)
    id_rank = array(_INT)
    price_order = array(_INT, header.priced)
    blob = data[at:]
    try:
        ids = blob.decode().split(SEPARATOR) if n else []
    except UnicodeDecodeError:
        raise CatalogFileError("ids: not UTF-8") from None
    if len(ids) != n or (n == 0 and blob):
        raise CatalogFileError(f"ids: {len(ids)} for n={n}")
    _check(header, popularity, price, category, brand, id_rank)
    _check_price_order(price, id_rank, price_order)
    return Columns(
        ids,
        header.categories,
        category,  # type: ignore[arg-type]
        price,  # type: ignore[arg-type]
        popularity,  # type: ignore[arg-type]
        header.brands,
        brand,  # type: ignore[arg-type]
        id_rank,  # type: ignore[arg-type]
        price_order,  # type: ignore[arg-type]
        header.category_axes,
    )


def _check(
    header: _Header,
    popularity: npt.NDArray[np.generic],
    price: npt.NDArray[np.generic],
    category: npt.NDArray[np.generic],
    brand: npt.NDArray[np.generic],
    id_rank: npt.NDArray[np.generic],
) -> None:
    """What catalog.json's model refuses (a non-finite popularity or price, a code outside its names), and what
    the order promises: popularity descending, ties by ascending id (by rank), the ranks a permutation."""
    n = header.n
    if n == 0:
        return
    if not np.isfinite(popularity).all():
        raise CatalogFileError("popularity: a value that is not a finite number")
    if np.isinf(price).any():
        raise CatalogFileError("price: an infinite value")
    for name, codes, names in (("category", category, header.categories), ("brand", brand, header.brands)):
        if not NONE <= int(codes.min()) <= int(codes.max()) < len(names):
            raise CatalogFileError(f"{name}: a code outside {NONE}..{len(names) - 1}")
    if not 0 <= int(id_rank.min()) <= int(id_rank.max()) < n:
        raise CatalogFileError("id_rank: a rank outside 0..n-1")
    seen = np.zeros(n, dtype=bool)
    seen[id_rank] = True
    if not seen.all():
        raise CatalogFileError("id_rank: not a permutation")
    step = np.diff(popularity)
    if (step > 0).any() or ((step == 0) & (np.diff(id_rank) < 0)).any():
        raise CatalogFileError("items out of catalog order (descending popularity, ties by id)")


def _check_price_order(
    price: npt.NDArray[np.generic], id_rank: npt.NDArray[np.generic], order: npt.NDArray[np.generic]
) -> None:
    """Every priced item once, none without a price, cheapest first, equal prices by id (by rank)."""
    priced = price == price  # NaN: no price
    if order.size != int(np.count_nonzero(priced)):
        raise CatalogFileError(f"price_order: {order.size} positions for {int(np.count_nonzero(priced))} priced items")
    if order.size == 0:
        return
    if not 0 <= int(order.min()) <= int(order.max()) < price.size or not priced[order].all():
        raise CatalogFileError("price_order: a position outside the priced items")
    seen = np.zeros(price.size, dtype=bool)
    seen[order] = True
    if int(np.count_nonzero(seen)) != order.size:
        raise CatalogFileError("price_order: a position twice")
    step = np.diff(price[order])
    if (step < 0).any() or ((step == 0) & (np.diff(id_rank[order]) < 0)).any():
        raise CatalogFileError("price_order: not cheapest first, equal prices by id")
