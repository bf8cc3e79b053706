from pathlib import Path

import pandas as pd
import pytest

from model_export.data.canonical import CanonicalFormatError, read_events, to_events
from model_export.data.catalog import build_catalog
from model_export.data.datasets import detect
from personalization.events import EventType
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
