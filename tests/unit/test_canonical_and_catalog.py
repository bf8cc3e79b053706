import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model_export.data.canonical import CanonicalFormatError, read_events, to_events
from model_export.data.catalog import build_catalog
from model_export.data.datasets import detect
from personalization.catalog import Catalog, CatalogError
from personalization.events import EventType
from personalization.features import CATEGORY_AXES
from tests.helpers.data import REES46_SAMPLE, rees46_sample


def write(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "events.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_the_rees46_adapter_maps_types_categories_and_sessions(tmp_path: Path) -> None:
    frame = rees46_sample()
    assert len(frame) == 2000
    assert set(frame["event_type"]) <= {"view_product", "add_to_cart", "purchase"}
    # Rows without a readable category code keep their category id, so no row loses its category.
    assert frame["category"].notna().all()
    assert detect(REES46_SAMPLE) == "rees46"


def test_only_purchases_no_categories_no_prices_still_work(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"user_id": 7, "item_id": 70, "event_type": "transaction", "timestamp": "2024-05-01T10:00:00Z"},
            {"user_id": 8, "item_id": 70, "event_type": "transaction", "timestamp": 1714557600},
            {"user_id": 8, "item_id": 71, "event_type": "transaction", "timestamp": "2024-05-01T09:00:00Z"},
        ],
    )
    frame = read_events(path)
    assert list(frame["item_id"]) == ["71", "70", "70"]
    events = list(to_events(frame))
    assert all(e.type is EventType.PURCHASE and e.category is None and e.price is None for e in events)
    catalog = build_catalog(frame)
    assert catalog.items[0].id == "70"


def test_unknown_types_are_dropped_and_rows_sorted_by_time(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"user_id": "a", "item_id": "1", "event_type": "view", "timestamp": "2024-05-01T10:00:00Z"},
            {"user_id": "a", "item_id": "2", "event_type": "wishlist", "timestamp": "2024-05-01T09:00:00Z"},
            {"user_id": "a", "item_id": "3", "event_type": "cart", "timestamp": "2024-05-01T08:00:00Z"},
        ],
    )
    frame = read_events(path)
    assert list(frame["item_id"]) == ["3", "1"]


def test_a_file_without_required_columns_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, [{"user": "a", "item_id": "1"}])
    with pytest.raises(CanonicalFormatError, match="user_id"):
        read_events(path)


def test_event_ids_are_deterministic_so_replays_are_recognized(tmp_path: Path) -> None:
    frame = rees46_sample()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    first = [e.event_id for e in to_events(frame.head(50))]
    second = [e.event_id for e in to_events(frame.head(50))]
    assert first == second
    assert len(set(first)) == 50


def test_categories_shopped_together_lie_close_on_the_catalog_axes_and_travel_in_catalog_json(
    tmp_path: Path,
) -> None:
    # Given people who shop phones and cases together, and others who shop tea and cups together
    rows: list[dict[str, object]] = []
    for n in range(40):
        pair = ("phones", "cases") if n % 2 else ("tea", "cups")
        for m, category in enumerate(pair):
            rows.append(
                {
                    "user_id": f"u{n}",
                    "item_id": f"{category}{n % 3}",
                    "event_type": "view",
                    "category": category,
                    "timestamp": f"2024-05-01T10:{n:02d}:{m:02d}Z",
                }
            )
    catalog = build_catalog(read_events(write(tmp_path, rows)))
    axes = {category: np.asarray(values) for category, values in catalog.category_axes.items()}

    # Then every category has coordinates on the axes along which people's mixes vary (here two: which pair),
    # and pairs shopped together are nearer than others
    assert set(axes) == {"phones", "cases", "tea", "cups"}
    assert {len(values) for values in axes.values()} == {2}
    assert CATEGORY_AXES >= 2

    def gap(a: str, b: str) -> float:
        return float(np.linalg.norm(axes[a] - axes[b]))

    assert gap("phones", "cases") < gap("phones", "tea")
    assert gap("tea", "cups") < gap("cups", "cases")
    # And catalog.json carries them unchanged to serve
    assert Catalog.from_json(json.dumps(catalog.to_dict())).category_axes == catalog.category_axes


def test_a_shop_with_one_category_or_none_has_no_axes(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [
        {
            "user_id": f"u{n}",
            "item_id": str(n),
            "event_type": "purchase",
            "category": "all",
            "timestamp": f"2024-05-01T10:{n:02d}:00Z",
        }
        for n in range(5)
    ]
    assert build_catalog(read_events(write(tmp_path, rows))).category_axes == {}
    no_categories: list[dict[str, object]] = [
        {key: value for key, value in row.items() if key != "category"} for row in rows
    ]
    assert build_catalog(read_events(write(tmp_path, no_categories))).category_axes == {}


@pytest.mark.parametrize(
    "axes",
    [{"tea": [float("nan"), 0.0]}, {"tea": "0.1"}, {"tea": [[0.1]]}, ["tea"]],
)
def test_a_damaged_category_axes_document_is_refused(axes: object) -> None:
    document = {"items": [{"id": "1", "category": "tea", "price": 1.0, "popularity": 1.0}], "category_axes": axes}
    with pytest.raises(CatalogError):
        Catalog.from_json(json.dumps(document))
