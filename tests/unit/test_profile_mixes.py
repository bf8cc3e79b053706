"""The fold's frequencies and mixes: orders, cart episodes, visits, the local time-of-day and device mixes."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.catalog import PRICE_RATIO_CLIP, Catalog, CatalogItem
from personalization.context import device_class
from personalization.events import Consent, Context, Event, EventType
from personalization.features import FEATURE_NAMES, feature_vector
from personalization.profile import MIX_CAP, PositionedEvent, Profile, daypart, fold, to_ms
from store import codec

T0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday, 00:00 UTC
USER = "b" * 64
CONSENT = Consent(analytics=True, personalization=True)
WITHDRAWN = Consent(analytics=True, personalization=False)


def event(
    n: int,
    kind: EventType = EventType.VIEW_PRODUCT,
    minutes: float = 0,
    item: str = "i1",
    device: str | None = None,
    offset: int | None = None,
    **kw: object,
) -> PositionedEvent:
    e = Event(
        event_id=f"e{n}",
        user_id=USER,
        type=kind,
        ts=T0 + timedelta(minutes=minutes),
        item_id=item,
        category=kw.pop("category", "shoes"),  # type: ignore[arg-type]
        context=Context(device=device, utc_offset_min=offset),
        consent=kw.pop("consent", CONSENT),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return PositionedEvent(e, "shard", n)


def vector(profile: Profile, now_minutes: float, catalog: Catalog | None = None) -> dict[str, float]:
    now_ms = int((T0 + timedelta(minutes=now_minutes)).timestamp() * 1000)
    return dict(zip(FEATURE_NAMES, feature_vector(profile, now_ms, catalog or Catalog([])), strict=True))


def test_purchases_close_together_are_one_order_and_order_value_is_per_order() -> None:
    # Given a basket of two lines, then a second order two days later, and an add to cart that was never bought
    profile, _ = fold(
        None,
        USER,
        [
            event(1, EventType.ADD_TO_CART, 0, "i1"),
            event(2, EventType.PURCHASE, 5, "i1", price=30.0),
            event(3, EventType.PURCHASE, 6, "i2", price=10.0, quantity=2),
            event(4, EventType.PURCHASE, 2 * 24 * 60, "i3", price=50.0),
            event(5, EventType.ADD_TO_CART, 3 * 24 * 60, "i4"),
        ],
    )
    # Then there are two orders worth 50 each, two cart episodes of which none is left unmatched by an order
    assert (profile.orders, profile.cart_episodes, profile.monetary) == (2, 2, 100.0)
    features = vector(profile, 3 * 24 * 60 + 60)
    assert features["log_orders"] == features["log_carts"]  # log1p(2) both
    assert round(features["log_order_value"], 6) == round(__import__("math").log1p(50.0), 6)
    assert features["cart_abandonment"] == 0.0


def test_cart_episodes_without_orders_are_abandonment() -> None:
    profile, _ = fold(
        None,
        USER,
        [event(n, EventType.ADD_TO_CART, n * 24 * 60, f"i{n}") for n in range(1, 5)]
        + [event(9, EventType.PURCHASE, 5 * 24 * 60, "i1", price=5.0)],
    )
    assert (profile.cart_episodes, profile.orders) == (4, 1)
    assert vector(profile, 6 * 24 * 60)["cart_abandonment"] == 0.75


def test_local_time_of_day_comes_from_the_trackers_offset() -> None:
    # 23:30 UTC is evening in UTC, night at UTC+1, afternoon at UTC-6
    late = to_ms(event(1, minutes=23 * 60 + 30).event)
    assert daypart(late, None) == 3
    assert daypart(late, 60) == 0
    assert daypart(late, -6 * 60) == 2
    # And the profile counts each event in its local part of the day
    profile, _ = fold(
        None, USER, [event(1, minutes=23 * 60 + 30, offset=60), event(2, minutes=9 * 60), event(3, minutes=13 * 60)]
    )
    assert profile.dayparts == [1, 1, 1, 0]
    features = vector(profile, 24 * 60)
    assert features["share_night"] == features["share_morning"] == features["share_afternoon"]
    assert features["share_evening"] == 0.0


def test_devices_are_classified_and_mixed() -> None:
    assert [device_class(d) for d in ("mobile", "Desktop", "iPad Pro", "Android phone", "smart-tv")] == [
        "m",
        "d",
        "t",
        "m",
        "o",
    ]
    profile, _ = fold(
        None, USER, [event(1, device="mobile"), event(2, minutes=1, device="mobile"), event(3, minutes=2)]
    )
    assert profile.devices == {"m": 2}
    assert vector(profile, 10)["share_mobile"] == 1.0


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(st.tuples(st.integers(0, 24 * 60 - 1), st.sampled_from(["mobile", "desktop", None])), max_size=40),
    repeat=st.integers(1, 3 * MIX_CAP),
)
def test_mixes_stay_bounded_and_keep_their_proportions(parts: list[tuple[int, str | None]], repeat: int) -> None:
    # Given many events at a few times of day and devices (the same pattern repeated)
    events = [
        event(n, minutes=(n // max(len(parts), 1)) * 24 * 60 + minute, device=device)
        for n, (minute, device) in enumerate(parts * min(repeat, 300))
    ]
    profile, _ = fold(None, USER, events)
    # Then no count reaches the cap, and a daypart never seen stays at zero
    assert all(count < MIX_CAP for count in profile.dayparts)
    assert all(count < MIX_CAP for count in profile.devices.values())
    seen = {daypart(to_ms(p.event), None) for p in events}
    assert all(count == 0 for part, count in enumerate(profile.dayparts) if part not in seen)
    # And the stored form holds exactly the same
    assert codec.decode(USER, codec.encode(profile)) == profile


def test_a_withdrawal_forgets_the_frequencies_and_mixes_too() -> None:
    profile, _ = fold(
        None,
        USER,
        [event(1, EventType.ADD_TO_CART, device="mobile", offset=60), event(2, EventType.PURCHASE, 1, price=3.0)],
    )
    assert profile.has_history
    after, _ = fold(profile, USER, [event(3, minutes=2, consent=WITHDRAWN)])
    assert not after.has_history
    assert (after.orders, after.cart_episodes, after.visits, after.dayparts, after.devices) == (0, 0, 0, [0] * 4, {})


def test_items_stored_before_the_mixes_existed_decode_to_zeros() -> None:
    profile, _ = fold(None, USER, [event(1)])
    data = codec.profile_to_dict(profile)
    for key in ("vi", "o", "ce", "h", "d"):
        data.pop(key, None)
    old = codec.profile_from_dict(USER, data)
    assert (old.visits, old.orders, old.cart_episodes, old.dayparts, old.devices) == (0, 0, 0, [0] * 4, {})


def test_price_sensitivity_is_against_the_median_of_the_same_category() -> None:
    # Given a catalog where "cheap" is cheap for its category, however it compares with other categories
    catalog = Catalog(
        [
            CatalogItem("cable-cheap", "cables", 5.0, 1.0),
            CatalogItem("cable-mid", "cables", 10.0, 1.0),
            CatalogItem("cable-dear", "cables", 20.0, 1.0),
            CatalogItem("phone-cheap", "phones", 200.0, 1.0),
            CatalogItem("phone-mid", "phones", 400.0, 1.0),
            CatalogItem("phone-dear", "phones", 800.0, 1.0),
            CatalogItem("odd", None, 1e6, 1.0),
            CatalogItem("free", "cables", 0.0, 1.0),
        ]
    )
    prices = catalog.relative_prices
    assert (prices["cable-cheap"], prices["cable-dear"]) == (-1.0, 1.0)
    assert (prices["phone-cheap"], prices["phone-mid"]) == (-1.0, 0.0)
    assert prices["odd"] == PRICE_RATIO_CLIP
    assert "free" not in prices
    # When a person views the cheap cable and phone and buys the middle phone
    profile, _ = fold(
        None,
        USER,
        [
            event(1, item="cable-cheap", category="cables"),
            event(2, minutes=1, item="phone-cheap", category="phones"),
            event(3, EventType.PURCHASE, 2, item="phone-mid", category="phones", price=400.0),
        ],
    )
    features = vector(profile, 10, catalog)
    # Then they look below their categories' medians and buy at it; unknown items say nothing
    assert features["viewed_price_index"] == -1.0
    assert features["bought_price_index"] == 0.0
    assert vector(profile, 10)["viewed_price_index"] == 0.0


def located(n: int, minutes: float, country: str | None) -> PositionedEvent:
    positioned = event(n, minutes=minutes)
    context = Context(country=country)
    return PositionedEvent(positioned.event.model_copy(update={"context": context}), "shard", n)


def test_the_last_country_is_the_newest_events_whatever_the_arrival_order() -> None:
    profile, _ = fold(None, USER, [located(1, 0, "DE"), located(2, 10, "ES"), located(3, 20, None)])
    assert profile.last_country == "ES"
    # A late event from before (an earlier trip) does not move it back
    late, _ = fold(profile, USER, [located(4, 5, "FR")])
    assert late.last_country == "ES"
    assert codec.decode(USER, codec.encode(late)) == late
    # And a withdrawal forgets it with the rest of the history
    after, _ = fold(late, USER, [event(5, minutes=30, consent=WITHDRAWN)])
    assert after.last_country is None
    assert not after.has_history


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["DE", "ES", "FR", None])), min_size=1, max_size=12))
def test_the_last_country_does_not_depend_on_how_the_events_are_batched(
    stamped: list[tuple[int, str | None]],
) -> None:
    events = [located(n, minutes, country) for n, (minutes, country) in enumerate(stamped)]
    whole, _ = fold(None, USER, events)
    one_by_one = None
    for positioned in events:
        one_by_one, _ = fold(one_by_one, USER, [positioned])
    assert one_by_one is not None
    assert one_by_one.last_country == whole.last_country
    # The newest event, when it alone is the newest and names a country, decides
    newest = max(minutes for minutes, _ in stamped)
    at_newest = [country for minutes, country in stamped if minutes == newest]
    if len(at_newest) == 1 and at_newest[0] is not None:
        assert whole.last_country == at_newest[0]
    assert whole.last_country in {None, *(country for _, country in stamped)}


def test_what_a_person_shops_for_is_their_affinity_weighted_place_on_the_catalog_axes() -> None:
    # Given a catalog whose axes put shoes at (1, 0) and hats at (0, 1); bags are not on the axes
    catalog = Catalog([CatalogItem("i1", "shoes", 10.0, 1.0)]).with_category_axes(
        {"shoes": [1.0, 0.0], "hats": [0.0, 1.0]}
    )
    # When a person views shoes three times and adds a hat to the cart once (affinity weights 1 and 3), and
    # looks at bags
    profile, _ = fold(
        None,
        USER,
        [
            event(1, category="shoes"),
            event(2, minutes=1, category="shoes"),
            event(3, minutes=2, category="shoes"),
            event(4, EventType.ADD_TO_CART, 3, item="i2", category="hats"),
            event(5, minutes=4, item="i3", category="bags"),
        ],
    )
    features = vector(profile, 5, catalog)
    # Then they stand halfway between shoes and hats (bags say nothing), and at 0 on the axis the catalog lacks
    assert abs(features["category_axis_1"] - 0.5) < 1e-3
    assert abs(features["category_axis_2"] - 0.5) < 1e-3
    assert features["category_axis_3"] == 0.0
    # And a catalog without axes places nobody
    assert [vector(profile, 5)[f"category_axis_{n}"] for n in (1, 2, 3)] == [0.0, 0.0, 0.0]
