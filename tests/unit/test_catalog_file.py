"""catalog.bin: what the trainer writes reads back as the same catalog, and any damaged or made-up bytes are
refused with a CatalogError (serve then refuses the version, flagged), never another exception."""

import gc
import json
import math
import struct
import weakref

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalization.catalog import Catalog, CatalogError, CatalogItem
from personalization.catalog_file import MAGIC

ITEMS = st.lists(
    st.builds(
        CatalogItem,
        id=st.text(st.characters(codec="utf-8", blacklist_characters="\n"), min_size=1, max_size=6),
        category=st.none() | st.sampled_from(["", "a", "a.b", "c"]),
        price=st.none() | st.floats(0.01, 5_000) | st.sampled_from([0.0, -1.0, 5.0]),
        popularity=st.floats(0, 100, allow_nan=False) | st.just(1.0),
        brand=st.none() | st.sampled_from(["Acme", "acme", "Zed"]),
    ),
    max_size=40,
    unique_by=lambda item: item.id,
)


def _bin(items: list[CatalogItem], axes: dict[str, list[float]] | None = None) -> bytes:
    return Catalog(items).with_category_axes(axes or {}).to_bytes()


@settings(max_examples=80, deadline=None)
@given(items=ITEMS)
def test_the_binary_file_reads_back_the_catalog_the_json_document_does(items: list[CatalogItem]) -> None:
    # Given a catalog (any order, ties, no categories, no prices, empty category names), with category axes
    catalog = Catalog(items).with_category_axes({"a": [0.5, -1.0], "c": [0.0, 2.0]})
    # When it is written as catalog.bin and read back as serve reads a version's catalog file
    again = Catalog.from_bytes(catalog.to_bytes())
    # Then it is the catalog the JSON document reads back, index for index
    old = Catalog.from_bytes(json.dumps(catalog.to_dict()).encode())
    assert again.to_dict() == old.to_dict() == catalog.to_dict()
    assert list(again.items) == list(old.items)
    assert {c: list(found) for c, found in again.by_category.items()} == {
        c: list(found) for c, found in old.by_category.items()
    }
    assert again.ids_by_category() == old.ids_by_category()
    assert dict(again.brand_of) == dict(old.brand_of)
    assert again.priced() == sorted((item.price, item.id) for item in items if item.price is not None)
    assert dict(again.relative_prices) == dict(old.relative_prices)
    assert again.category_axes == {"a": (0.5, -1.0), "c": (0.0, 2.0)}
    assert again.max_popularity == old.max_popularity


def test_an_id_with_a_line_break_cannot_be_written_as_binary() -> None:
    with pytest.raises(CatalogError, match="line break"):
        _bin([CatalogItem("a\nb", None, None, 1.0)])


def _layout(data: bytes) -> tuple[dict[str, object], int]:
    """The header and where the arrays start."""
    (length,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(data[start : start + length])
    end = start + length
    return header, end + (-end % 8)


def _with_column(data: bytes, column: int, values: list[float] | list[int]) -> bytes:
    """`data` with column `column` (0 popularity, 1 price, 2 category, 3 brand, 4 id_rank, 5 price_order)
    replaced."""
    header, at = _layout(data)
    n = int(header["n"])  # type: ignore[call-overload]
    sizes = [8, 8, 4, 4, 4, 4]
    offset = at + sum(size * n for size in sizes[:column])
    packed = np.asarray(values, dtype="<f8" if column < 2 else "<i4").tobytes()
    return data[:offset] + packed + data[offset + len(packed) :]


GOOD = [
    CatalogItem("a", "shoes", 10.0, 3.0, "acme"),
    CatalogItem("b", None, None, 2.0),
    CatalogItem("c", "hats", 5.0, 2.0, None),
]


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda d: d[:-1], "bytes where the header promises"),
        (lambda d: d + b"x", "bytes where the header promises"),
        (lambda d: d[:10], "truncated header"),
        (lambda d: _with_column(d, 0, [1.0, 2.0, 2.0]), "out of catalog order"),
        (lambda d: _with_column(d, 0, [3.0, math.nan, 1.0]), "popularity: a value that is not a finite number"),
        (lambda d: _with_column(d, 1, [1.0, math.inf, 1.0]), "price: an infinite value"),
        (lambda d: _with_column(d, 2, [0, -1, 2]), "category: a code outside -1..1"),
        (lambda d: _with_column(d, 3, [-2, -1, -1]), "brand: a code outside -1..0"),
        (lambda d: _with_column(d, 4, [0, 0, 1]), "id_rank: not a permutation"),
        (lambda d: _with_column(d, 4, [0, 2, 1]), "out of catalog order"),
        (lambda d: _with_column(d, 5, [0, 2]), "price_order: not cheapest first"),
        (lambda d: _with_column(d, 5, [2, 2]), "price_order: a position twice"),
        (lambda d: _with_column(d, 5, [2, 1]), "price_order: a position outside the priced items"),
        (lambda d: _with_column(d, 5, [2, 3]), "price_order: a position outside the priced items"),
        (lambda d: d[:-1] + b"a", "an item id appears twice"),
        (lambda d: d[:-3] + b"\xff\xfe\xff", "ids: not UTF-8"),
        (lambda d: d[:-4] + b"\n\n\nc", "ids: 4 for n=3"),
    ],
)
def test_a_damaged_file_is_refused_with_its_problem(damage, problem: str) -> None:  # type: ignore[no-untyped-def]
    data = _bin(GOOD)
    assert [item.id for item in Catalog.from_bytes(data).items] == ["a", "b", "c"]
    with pytest.raises(CatalogError, match=problem):
        Catalog.from_bytes(damage(data))


EMPTY = {"format": 1, "n": 0, "priced": 0, "ids_bytes": 0, "categories": [], "brands": []}


@pytest.mark.parametrize(
    "header",
    [
        {"format": 2, "n": 0, "priced": 0, "ids_bytes": 0, "categories": [], "brands": []},
        {"format": 1, "n": 0, "ids_bytes": 0, "categories": [], "brands": []},
        {"format": 1, "n": -1, "priced": 0, "ids_bytes": 0, "categories": [], "brands": []},
        {"format": 1, "n": "0", "priced": 0, "ids_bytes": 0, "categories": [], "brands": []},
        {"format": 1, "n": 0, "priced": 0, "ids_bytes": 0, "categories": [], "brands": [], "what": 1},
        {"format": 1, "n": 0, "priced": 0, "ids_bytes": 0, "categories": [1], "brands": []},
        {**EMPTY, "category_axes": {"a": [None]}},
        {**EMPTY, "category_axes": {"a": "x"}},
    ],
)
def test_a_header_of_the_wrong_shape_is_refused(header: dict[str, object]) -> None:
    body = json.dumps(header).encode()
    with pytest.raises(CatalogError, match="header"):
        Catalog.from_bytes(MAGIC + struct.pack("<I", len(body)) + body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=ITEMS,
    at=st.integers(0, 10_000),
    value=st.integers(0, 255),
    cut=st.integers(0, 10_000),
    tail=st.binary(max_size=16),
)
def test_any_damage_to_a_written_file_is_a_catalog_or_a_catalog_error(
    items: list[CatalogItem], at: int, value: int, cut: int, tail: bytes
) -> None:
    data = bytearray(_bin(items, {"a": [1.0]}))
    data[at % len(data)] = value
    damaged = bytes(data[: max(cut % (len(data) + 1), len(MAGIC))]) + tail
    for candidate in (bytes(data), damaged):
        try:
            catalog = Catalog.from_bytes(candidate)
        except CatalogError:
            continue
        # Whatever reads without an error is a usable catalog: every item can be made and looked up
        assert [catalog.by_id[item_id].id for item_id in catalog.ids] == catalog.ids
        _ = catalog.relative_prices, catalog.priced(), catalog.ids_by_category(), dict(catalog.brand_of)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200))
def test_any_bytes_after_the_magic_are_a_catalog_or_a_catalog_error(body: bytes) -> None:
    try:
        catalog = Catalog.from_bytes(MAGIC + body)
    except CatalogError:
        return
    assert len(catalog.ids) == len(catalog.position)


def test_an_empty_catalog_reads_back_empty() -> None:
    catalog = Catalog.from_bytes(Catalog([]).to_bytes())
    assert len(catalog) == 0
    assert catalog.priced() == []
    assert catalog.ids_by_category() == {}


def test_a_catalog_is_freed_without_the_cycle_collector() -> None:
    """serve freezes its heap after init (serve/handler.py): a catalog in a reference cycle would never be
    collected, and every version switch would keep the old one."""
    gc.disable()
    try:
        catalog = Catalog.from_bytes(_bin(GOOD))
        _ = list(catalog.items), catalog.by_id["a"], catalog.by_category, catalog.relative_prices
        _ = catalog.priced(), catalog.category_codes(), catalog.brand_of, catalog.ids_by_category()
        gone = weakref.ref(catalog)
        del catalog, _
        assert gone() is None
    finally:
        gc.enable()
