"""A small catalog and rule requests for the rules tests: phones, headphones, a sofa, items without category or
brand, and a request at a fixed time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from personalization.catalog import Catalog, CatalogItem
from personalization.experiments import to_ms
from personalization.ranking import Scored
from personalization.rules import RuleRequest

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
NOW_MS = to_ms(NOW)

CATALOG = Catalog(
    [
        CatalogItem("p1", "electronics.smartphone", 500.0, 100.0, "Samsung"),
        CatalogItem("p2", "electronics.smartphone", 900.0, 90.0, "apple"),
        CatalogItem("p3", "electronics.smartphone", 150.0, 80.0, "xiaomi"),
        CatalogItem("p4", "electronics.smartphone", 120.0, 70.0, "xiaomi"),
        CatalogItem("h1", "electronics.audio.headphone", 20.0, 60.0, "xiaomi"),
        CatalogItem("h2", "electronics.audio.headphone", 190.0, 50.0, "apple"),
        CatalogItem("x1", "electronicsx", 5.0, 40.0, None),
        CatalogItem("s1", "furniture.living_room.sofa", 543.1, 30.0, None),
        CatalogItem("c1", "cat:2053013552326770905", 9.0, 20.0, "aqua"),
        CatalogItem("n1", None, None, 10.0, None),
    ]
)


def request(**changes: Any) -> RuleRequest:
    base = RuleRequest(
        slot="for-you",
        journey=None,
        segment=None,
        segment_id=None,
        variants=frozenset(),
        now_ms=NOW_MS,
        purchased={},
        cart=(),
    )
    return replace(base, **changes)


def by_popularity(catalog: Catalog = CATALOG) -> list[Scored]:
    return [Scored(item, item.popularity / 100) for item in catalog.items]


def ids(items: Sequence[Scored]) -> list[str]:
    return [scored.item.id for scored in items]
