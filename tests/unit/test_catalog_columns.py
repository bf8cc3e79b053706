"""The columnar catalog: what the trainer writes reads back item for item, old row documents still read, and a
damaged document is refused with a message."""

import json
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.catalog import PRICE_RATIO_CLIP, Catalog, CatalogError, CatalogItem

ITEMS = st.lists(
    st.builds(
        CatalogItem,
        id=st.text(st.characters(codec="utf-8"), min_size=1, max_size=6),
        category=st.none() | st.sampled_from(["", "a", "a.b", "c"]),
        price=st.none() | st.floats(0.01, 5_000) | st.sampled_from([0.0, -1.0]),
        popularity=st.floats(0, 100, allow_nan=False) | st.just(1.0),
        brand=st.none() | st.sampled_from(["Acme", "acme", "Zed"]),
    ),
    max_size=40,
    unique_by=lambda item: item.id,
)


def _old_relative_prices(items: list[CatalogItem]) -> dict[str, float]:
    """The per-item computation the columnar one replaced (statistics.median, math.log2)."""
    by_category: dict[str | None, list[float]] = {}
    for item in items:
        if item.price is not None and item.price > 0:
            by_category.setdefault(item.category, []).append(item.price)
    everything = [price for prices in by_category.values() for price in prices]
    if not everything:
        return {}
    medians: dict[str | None, float] = {c: statistics.median(prices) for c, prices in by_category.items() if c}
    shop_wide = statistics.median(everything)
    relative = {}
    for item in items:
        if item.price is not None and item.price > 0:
            ratio = math.log2(item.price / medians.get(item.category, shop_wide))
            relative[item.id] = max(-PRICE_RATIO_CLIP, min(PRICE_RATIO_CLIP, ratio))
    return relative


@settings(max_examples=80, deadline=None)
@given(items=ITEMS)
def test_the_written_document_reads_back_the_same_catalog(items: list[CatalogItem]) -> None:
    # Given a catalog built from items (any order, ties, no categories, no prices, empty category names)
    catalog = Catalog(items)
    # When it is written as the trainer writes it and read back as serve reads it
    again = Catalog.from_json(json.dumps(catalog.to_dict()))
    # Then every item, every index and every relative price are the same
    expected = sorted(items, key=lambda item: (-item.popularity, item.id))
    assert list(again.items) == expected == list(catalog.items)
    assert {item_id: again.by_id[item_id] for item_id in again.by_id} == {item.id: item for item in expected}
    assert {c: list(found) for c, found in again.by_category.items()} == {
        c: [item for item in expected if item.category == c] for c in {item.category for item in expected} if c
    }
    relative = again.relative_prices
    old = _old_relative_prices(expected)
    assert set(relative) == set(old)
    assert all(math.isclose(relative[item_id], old[item_id], abs_tol=1e-12) for item_id in old)


def test_a_catalog_published_as_one_row_per_item_still_reads() -> None:
    rows = {
        "items": [
            {"id": "b", "category": "shoes", "price": 20.0, "popularity": 3.0},
            {"id": "a", "category": None, "price": None, "popularity": 3.0, "brand": "acme"},
            {"id": 7, "popularity": 9.0},
        ]
    }
    catalog = Catalog.from_json(json.dumps(rows))
    assert [item.id for item in catalog.items] == ["7", "a", "b"]
    assert catalog.by_id["a"] == CatalogItem("a", None, None, 3.0, "acme")
    assert list(catalog.by_category["shoes"]) == [CatalogItem("b", "shoes", 20.0, 3.0)]


def test_columns_out_of_catalog_order_are_sorted() -> None:
    columns = {"id": ["x", "y"], "categories": [], "category": [-1, -1], "price": [1.0, None]}
    document = {"columns": {**columns, "popularity": [1.0, 2.0], "brands": [], "brand": [-1, -1]}}
    assert [item.id for item in Catalog.from_dict(document).items] == ["y", "x"]


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ({"price": [1.0]}, "column price has 1 values for 2 ids"),
        ({"category": [0, 3]}, "a code outside -1..0"),
        ({"brand": [-2, -1]}, "a code outside -1..-1"),
        ({"popularity": [1.0, "NaN"]}, "columns.popularity.1"),
        ({"id": "ab"}, "columns.id"),
    ],
)
def test_a_damaged_columnar_document_is_refused_with_its_problem(columns: dict[str, object], problem: str) -> None:
    good = {
        "id": ["a", "b"],
        "categories": ["shoes"],
        "category": [0, -1],
        "price": [1.0, None],
        "popularity": [2.0, 1.0],
        "brands": [],
        "brand": [-1, -1],
    }
    with pytest.raises(CatalogError, match=problem):
        Catalog.from_json(json.dumps({"columns": {**good, **columns}}))


def test_a_document_with_both_forms_or_neither_is_refused() -> None:
    with pytest.raises(CatalogError, match="either `columns` or `items`"):
        Catalog.from_json(b"{}")
    with pytest.raises(CatalogError, match="either `columns` or `items`"):
        Catalog.from_dict({"items": [], "columns": Catalog([]).to_dict()["columns"]})
