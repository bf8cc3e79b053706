from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from personalization.catalog import Catalog, CatalogItem
from personalization.events import Consent, Event, EventType
from personalization.profile import PositionedEvent, fold
from personalization.ranking import by_affinity, popular

USER = "c" * 64
NOW = datetime(2026, 11, 24, tzinfo=UTC)
CATALOG = Catalog(
    [CatalogItem(f"s{i}", "shoes", 10.0, 100.0 - i) for i in range(20)]
    + [CatalogItem(f"h{i}", "hats", 5.0, 200.0 - i) for i in range(20)]
)


def profile_with(*events: tuple[EventType, str, str]):  # type: ignore[no-untyped-def]
    positioned = [
        PositionedEvent(
            Event(
                event_id=f"e{n}",
                user_id=USER,
                type=kind,
                ts=NOW,
                item_id=item,
                category=category,
                consent=Consent(analytics=True, personalization=True),
            ),
            "shard",
            n,
        )
        for n, (kind, item, category) in enumerate(events)
    ]
    return fold(None, USER, positioned)[0]


def test_popular_fills_from_the_page_category_first() -> None:
    ranked = popular(CATALOG, 5, category="shoes")
    assert [s.item.id for s in ranked] == ["s0", "s1", "s2", "s3", "s4"]
    assert [s.item.id for s in popular(CATALOG, 3)] == ["h0", "h1", "h2"]


def test_personal_ranking_leans_to_the_profile_and_excludes_bought_and_carted_items() -> None:
    profile = profile_with(
        (EventType.VIEW_PRODUCT, "s5", "shoes"),
        (EventType.PURCHASE, "s0", "shoes"),
        (EventType.ADD_TO_CART, "s1", "shoes"),
    )
    ranked = by_affinity(CATALOG, profile, int(NOW.timestamp() * 1000), 5)
    ids = [s.item.id for s in ranked]
    assert "s0" not in ids
    assert "s1" not in ids
    assert all(i.startswith("s") for i in ids)


@given(st.integers(min_value=1, max_value=60), st.sampled_from(["shoes", "hats", "socks", None]))
def test_popular_returns_min_k_distinct_items(k: int, category: str | None) -> None:
    ids = [s.item.id for s in popular(CATALOG, k, category=category)]
    assert len(ids) == min(k, len(CATALOG))
    assert len(set(ids)) == len(ids)
