"""Trending now: decayed per-item activity, aggregated per ingest batch into a bounded top list.

Each event adds its weight (the profile's view < cart < purchase weights) decayed by a half-life (default one
hour), so an item's score says how much it is being bought and looked at right now. Scores are kept as of an
anchor time, like the profile's affinities: an event at ts adds weight * 2^((ts - anchor) / half-life), and
reading at `now` multiplies by 2^-((now - anchor) / half-life).

Write cost stays bounded whatever a batch touches: ingest sums a batch's activity in memory and merges it into
ONE stored row per writer (the Kinesis shard the batch came from), which keeps only the top TREND_LIMIT items.
So a batch costs one conditional write (a few write units) however many items, or how hot one item, it holds;
concurrent batches of one shard (parallelization factor) meet on that row's version and merge on retry, and
the rows of different shards never contend: serve reads them all and sums them (`combined`). The price is an
approximation: an item outside a row's top list loses its score there (a heavy-hitters list, not a full count).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from personalization.events import Event, EventType

TREND_LIMIT = 100
# Below this a score is noise (an hour-old view, fourteen half-lives ago, is 6e-5).
TREND_FLOOR = 1e-3
# The item weights of the profile's affinities (personalization.profile.AFFINITY_WEIGHTS): view < cart < purchase.
TREND_WEIGHTS: dict[EventType, float] = {
    EventType.VIEW_PRODUCT: 1.0,
    EventType.ADD_TO_CART: 3.0,
    EventType.PURCHASE: 5.0,
}


@dataclass(slots=True)
class Trend:
    """One writer's top items: scores as of `at_ms`."""

    at_ms: int = 0
    scores: dict[str, float] = field(default_factory=dict)


def activity(events: Iterable[tuple[Event, int]], anchor_ms: int, half_life_ms: int) -> dict[str, float]:
    """A batch's (event, ts ms) pairs as decayed scores per item, as of `anchor_ms`."""
    scores: dict[str, float] = {}
    weights = TREND_WEIGHTS
    for event, ts_ms in events:
        weight = weights.get(event.type)
        item = event.item_id
        if weight is None or item is None:
            continue
        scores[item] = scores.get(item, 0.0) + weight * 2.0 ** ((ts_ms - anchor_ms) / half_life_ms)
    return scores


def decayed(trend: Trend, now_ms: int, half_life_ms: int) -> dict[str, float]:
    factor = 2.0 ** (-(now_ms - trend.at_ms) / half_life_ms)
    return {item: score * factor for item, score in trend.scores.items()}


def merge(trend: Trend | None, added: dict[str, float], anchor_ms: int, half_life_ms: int) -> Trend:
    """`trend` moved to `anchor_ms` (never backwards) plus `added` (scores as of `anchor_ms`), cut to the top
    TREND_LIMIT; scores below TREND_FLOOR are dropped."""
    if trend is not None and trend.at_ms > anchor_ms:
        # A batch older than the row's anchor: bring its scores to the row's anchor instead.
        factor = 2.0 ** (-(trend.at_ms - anchor_ms) / half_life_ms)
        added = {item: score * factor for item, score in added.items()}
        anchor_ms = trend.at_ms
    scores = decayed(trend, anchor_ms, half_life_ms) if trend is not None else {}
    for item, score in added.items():
        scores[item] = scores.get(item, 0.0) + score
    ranked = sorted((kv for kv in scores.items() if kv[1] >= TREND_FLOOR), key=lambda kv: (-kv[1], kv[0]))
    return Trend(anchor_ms, dict(ranked[:TREND_LIMIT]))


def combined(trends: Iterable[Trend], now_ms: int, half_life_ms: int) -> list[tuple[str, float]]:
    """Every writer's row decayed to `now_ms` and summed: items by score descending, then id."""
    total: dict[str, float] = {}
    for trend in trends:
        for item, score in decayed(trend, now_ms, half_life_ms).items():
            total[item] = total.get(item, 0.0) + score
    return sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))
