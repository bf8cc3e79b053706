"""Profile -> model input vector. The one feature definition: the trainer and serve both call this.

The vector describes a person in the terms a merchandiser segments on: recency, visit and purchase frequency,
order value (RFM), conversion and cart abandonment, category breadth, price sensitivity against each category's
median price, what the person shops for (their category mix placed on the catalog's few category axes), and the
person's device and local time-of-day mix. Prices and axes come from the catalog the model version ships.
Nothing in it describes the current moment only (an open session, a cart left ten minutes ago), so a person's
vector, and segment, moves only as their behaviour does.

A model manifest records FEATURE_SCHEMA_VERSION; serve refuses a model trained on another version.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from personalization.events import EventType
from personalization.profile import DAYPARTS, FoldSettings, Profile, affinities_at

FEATURE_SCHEMA_VERSION = "3"

# segment.onnx takes the feature vector under this name and returns the segment label and the distance to
# every segment's centre (serve's hysteresis compares them): the exporter names the graph's tensors with
# these, serve calls them by these.
SEGMENT_INPUT = "features"
SEGMENT_LABEL = "label"
SEGMENT_DISTANCES = "distances"

_HOUR_MS = 3600 * 1000
# A person never seen is a year away: the scale's end, not infinity.
_NEVER_H = 24.0 * 365
# A category counts towards breadth while its decayed affinity is at least this (a view two half-lives ago).
_BREADTH_FLOOR = 0.05
_VIEW = EventType.VIEW_PRODUCT.value
_CART = EventType.ADD_TO_CART.value
_PURCHASE = EventType.PURCHASE.value
_BROWSED = frozenset({"v", "a"})  # type codes of the history entries that say what a person looks at
# How many category axes the vector holds (the catalog's `category_axes`; fewer in a shop of few categories,
# the rest 0).
CATEGORY_AXES = 3

FEATURE_NAMES: tuple[str, ...] = (
    "log_hours_since_last_event",
    "log_visits",
    "log_views",
    "log_carts",
    "log_orders",
    "log_order_value",
    "view_to_cart_rate",
    "cart_abandonment",
    "distinct_categories",
    "top_category_share",
    "viewed_price_index",
    "bought_price_index",
    *(f"category_axis_{n}" for n in range(1, CATEGORY_AXES + 1)),
    "share_mobile",
    "share_desktop",
    "share_tablet",
    *(f"share_{part}" for part in DAYPARTS),
)

PriceIndex = Mapping[str, float]


@dataclass(frozen=True)
class CatalogFeatures:
    """The catalog's part of the vector as plain values (picklable, for the trainer's Spark executors)."""

    relative_prices: Mapping[str, float]
    category_axes: Mapping[str, Sequence[float]]


class CatalogFacts(Protocol):
    """What the vector reads from the model version's catalog (personalization.catalog.Catalog)."""

    @property
    def relative_prices(self) -> Mapping[str, float]: ...

    @property
    def category_axes(self) -> Mapping[str, Sequence[float]]: ...


def _mean_price_index(items: Iterable[str], prices: PriceIndex) -> float:
    """Mean log2(price / category median) of the items the index knows; 0 (the median) when none."""
    found = [prices[item] for item in items if item in prices]
    return math.fsum(found) / len(found) if found else 0.0


def _category_position(affinity: Mapping[str, float], axes: Mapping[str, Sequence[float]]) -> list[float]:
    """The affinity-weighted mean of the person's categories' coordinates (0s when none is on the axes)."""
    position = [0.0] * CATEGORY_AXES
    known = [(score, axes[category]) for category, score in sorted(affinity.items()) if category in axes]
    total = math.fsum(score for score, _ in known)
    if total <= 0:
        return position
    for n in range(CATEGORY_AXES):
        position[n] = math.fsum(score * coords[n] for score, coords in known if n < len(coords)) / total
    return position


def feature_vector(
    profile: Profile, now_ms: int, catalog: CatalogFacts, settings: FoldSettings | None = None
) -> list[float]:
    """The profile as of `now_ms`, as a fixed-length vector in FEATURE_NAMES order.

    `catalog` is the model version's catalog (its `relative_prices` and `category_axes`): the same numbers in
    training and at serve.
    """
    prices = catalog.relative_prices
    settings = settings or FoldSettings()
    counts = profile.counts
    views = counts.get(_VIEW, 0)
    carts = counts.get(_CART, 0)
    last = profile.last_event_ms
    since_last_h = (now_ms - last) / _HOUR_MS if last is not None else _NEVER_H
    orders = profile.orders
    episodes = profile.cart_episodes
    affinity = affinities_at(profile, now_ms, settings)
    # fsum is exactly rounded, so the total does not depend on the dict's order: a profile read back from the
    # store (keys sorted) and the same profile replayed in memory (insertion order) give the same bits.
    total_affinity = math.fsum(affinity.values())
    browsed = dict.fromkeys(item for item, code, _ in profile.recent if code in _BROWSED)
    devices = profile.devices
    device_total = sum(devices.values())
    dayparts = profile.dayparts
    daypart_total = sum(dayparts)
    return [
        math.log1p(max(since_last_h, 0.0)),
        math.log1p(profile.visits),
        math.log1p(views),
        math.log1p(carts),
        math.log1p(orders),
        math.log1p(profile.monetary / orders) if orders else 0.0,
        min(carts / views, 1.0) if views else 0.0,
        # Cart episodes that no order followed: an approximation (an order may follow a later episode).
        1.0 - min(orders, episodes) / episodes if episodes else 0.0,
        float(sum(1 for score in affinity.values() if score >= _BREADTH_FLOOR)),
        max(affinity.values()) / total_affinity if total_affinity > 0 else 0.0,
        _mean_price_index(browsed, prices),
        _mean_price_index(profile.purchased, prices),
        *_category_position(affinity, catalog.category_axes),
        devices.get("m", 0) / device_total if device_total else 0.0,
        devices.get("d", 0) / device_total if device_total else 0.0,
        devices.get("t", 0) / device_total if device_total else 0.0,
        *(count / daypart_total if daypart_total else 0.0 for count in dayparts),
    ]
