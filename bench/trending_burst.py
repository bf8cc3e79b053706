"""Trending freshness for `python -m bench.load`: how long a burst of purchases of one item takes to reach the
trending slot's top 3, through the collector, the stream, the live ingest poller and serve (all on loopback).

Each trial picks an item the slot does not show in its top 10 and has one new visitor buy it through the
collector, in one POST, as many times as it takes to pass the third: the third item's score now (read from the
trending rows, decayed to now) x LEAD / the purchase weight, so that the rules' boosts and buries cannot keep it
out of the top 3 (the load before it makes some items hot, and each burst makes its item the hottest: so the
bursts grow, and there are only TRIALS of them). Then it polls GET /v1/fragments/trending?k=3 every POLL_S
until the item is in it. The clock runs from the first POST to the answer that shows it; a trial that
does not see it within GIVE_UP_S counts as GIVE_UP_S. What this measures on loopback: the collector's put, the
ingest batch window (template.yaml's IngestBatchWindowSeconds), the handler's batch, and serve's refresh of the
trending rows (ServeConfig.trending_max_age_s); a CDN in front adds its s-maxage on top.

The write cost: every trending write bumps its row's version, so the rows' versions summed are the writes made
(the table starts empty), and each write costs ceil(row size / 1 KB) write units.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

PURCHASE_WEIGHT = 5.0
# How far past the third item a burst takes the item: beyond a boost (x1.3) of the others and a bury (x0.5) of it.
LEAD = 3.0
MIN_BURST = 10
MAX_BURST = 500  # the collector's limit per POST
TRIALS = 5
POLL_S = 0.05
GIVE_UP_S = 30.0
CONSENT = {"analytics": True, "personalization": True}
KB = 1024


def _top(client: Any, serve_url: str, k: int) -> list[str]:
    response = client.get(f"{serve_url}/v1/fragments/trending", params={"format": "json", "k": str(k)})
    response.raise_for_status()
    return [item["id"] for item in response.json()["items"]]


def _buy(client: Any, collect_url: str, item_id: str, times: int) -> None:
    events = [
        {"event_id": uuid.uuid4().hex, "type": "purchase", "item_id": item_id, "quantity": 1, "consent": CONSENT}
        for _ in range(times)
    ]
    client.post(f"{collect_url}/v1/events", json={"events": events}).raise_for_status()


def third_score(dynamodb: Any, table: str, half_life_ms: int) -> float:
    """The score of the third trending item now, from every shard's row (as serve sums them)."""
    from personalization.trending import combined
    from store.trending import decode

    items = [item for page in dynamodb.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]
    ranked = combined([decode(bytes(item["d"]["B"])) for item in items], int(time.time() * 1000), half_life_ms)
    return ranked[min(2, len(ranked) - 1)][1] if ranked else 0.0


def freshness(
    collect_url: str, serve_url: str, item_ids: Sequence[str], third: Callable[[], float], trials: int = TRIALS
) -> list[float]:
    """Seconds from a burst's purchases to the item in the trending top 3, per trial (quietest items first)."""
    import httpx

    seconds: list[float] = []
    tried: set[str] = set()
    with httpx.Client(timeout=10, trust_env=False) as client:
        for _ in range(trials):
            shown = set(_top(client, serve_url, 10))
            item = next((i for i in reversed(item_ids) if i not in shown and i not in tried), None)
            if item is None:
                break
            tried.add(item)
            burst = min(max(math.ceil(third() * LEAD / PURCHASE_WEIGHT), MIN_BURST), MAX_BURST)
            started = time.monotonic()
            _buy(client, collect_url, item, burst)
            while item not in _top(client, serve_url, 3):
                if time.monotonic() - started >= GIVE_UP_S:
                    break
                time.sleep(POLL_S)
            seconds.append(min(time.monotonic() - started, GIVE_UP_S))
    return seconds


def write_cost(dynamodb: Any, table: str, batches: int) -> dict[str, Any]:
    """Writes to the trending rows and their write units, per ingest batch."""
    from bench.ingest import item_size

    rows = [item for page in dynamodb.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]
    writes = sum(int(row["v"]["N"]) for row in rows)
    units = max((math.ceil(item_size(row) / KB) for row in rows), default=0)
    return {
        "trending_rows": len(rows),
        "trending_writes": writes,
        "trending_row_kb_max": round(max((item_size(row) for row in rows), default=0) / KB, 3),
        # Every write of a row costs at most its largest size's units: an upper bound.
        "trending_wcu_per_batch": round(writes * units / batches, 2) if batches else None,
    }
