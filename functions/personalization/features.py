"""Profile -> model input vector. The one feature definition: the trainer and serve both call this.

A model manifest records FEATURE_SCHEMA_VERSION; serve refuses a model trained on another version.
"""

from __future__ import annotations

import math

from personalization.events import EventType
from personalization.profile import SESSION_TIMEOUT_MS, FoldSettings, Profile, affinities_at

FEATURE_SCHEMA_VERSION = "1"

# segment.onnx takes the feature vector under this name and returns the segment label (and distances): the
# exporter names the graph's tensors with these, serve calls them by these.
SEGMENT_INPUT = "features"
SEGMENT_LABEL = "label"
SEGMENT_DISTANCES = "distances"

_HOUR_MS = 3600 * 1000
_TYPES = [kind.value for kind in EventType]

FEATURE_NAMES: tuple[str, ...] = (
    *(f"log_count_{kind}" for kind in _TYPES),
    "log_hours_since_last_event",
    "log_hours_since_first_seen",
    "log_monetary",
    "cart_items",
    "cart_abandoned",
    "session_active",
    "log_session_events",
    "session_distinct_items",
    "distinct_categories",
    "top_category_share",
    "view_to_cart_rate",
    "cart_to_purchase_rate",
)


def feature_vector(profile: Profile, now_ms: int, settings: FoldSettings | None = None) -> list[float]:
    """The profile as of `now_ms`, as a fixed-length vector in FEATURE_NAMES order."""
    settings = settings or FoldSettings()
    counts = [float(profile.counts.get(kind, 0)) for kind in _TYPES]
    last = profile.last_event_ms
    since_last_h = (now_ms - last) / _HOUR_MS if last is not None else 24.0 * 365
    since_first_h = (now_ms - profile.first_seen_ms) / _HOUR_MS if profile.first_seen_ms is not None else 0.0
    session = profile.session
    active = session is not None and now_ms - session.last_ms <= SESSION_TIMEOUT_MS
    last_cart = profile.last_seen_ms.get(EventType.ADD_TO_CART.value)
    abandoned = bool(profile.cart) and last_cart is not None and now_ms - last_cart > SESSION_TIMEOUT_MS
    affinity = affinities_at(profile, now_ms, settings)
    # fsum is exactly rounded, so the total does not depend on the dict's order: a profile read back from the
    # store (keys sorted) and the same profile replayed in memory (insertion order) give the same bits.
    total_affinity = math.fsum(affinity.values())
    views = profile.counts.get(EventType.VIEW_PRODUCT.value, 0)
    carts = profile.counts.get(EventType.ADD_TO_CART.value, 0)
    purchases = profile.counts.get(EventType.PURCHASE.value, 0)
    return [
        *(math.log1p(c) for c in counts),
        math.log1p(max(since_last_h, 0.0)),
        math.log1p(max(since_first_h, 0.0)),
        math.log1p(profile.monetary),
        float(len(profile.cart)),
        1.0 if abandoned else 0.0,
        1.0 if active else 0.0,
        math.log1p(session.events) if active and session is not None else 0.0,
        float(len(session.items)) if active and session is not None else 0.0,
        float(sum(1 for score in affinity.values() if score >= 0.05)),
        max(affinity.values()) / total_affinity if total_affinity > 0 else 0.0,
        carts / views if views else 0.0,
        purchases / carts if carts else 0.0,
    ]
