"""Trending freshness for `python -m bench.load`: how long a burst of purchases of one item takes to reach the
trending slot's top 3, through the collector, the stream, the live ingest poller and serve (all on loopback).

Each trial picks an item the slot does not show in its top 10, has BURST_BUYERS new visitors buy it through the
collector (one POST each, as fast as they are answered), and polls GET /v1/fragments/trending?k=3 every
POLL_S until the item is in it. The clock runs from the first POST to the answer that shows it; a trial that
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
from collections.abc import Sequence
from typing import Any

BURST_BUYERS = 10
TRIALS = 8
POLL_S = 0.05
GIVE_UP_S = 30.0
CONSENT = {"analytics": True, "personalization": True}
KB = 1024


def _top(client: Any, serve_url: str, k: int) -> list[str]:
    response = client.get(f"{serve_url}/v1/fragments/trending", params={"format": "json", "k": str(k)})
    response.raise_for_status()
    return [item["id"] for item in response.json()["items"]]


def _buy(client: Any, collect_url: str, item_id: str) -> None:
    event = {"event_id": uuid.uuid4().hex, "type": "purchase", "item_id": item_id, "quantity": 1, "consent": CONSENT}
    client.post(f"{collect_url}/v1/events", json={"events": [event]}).raise_for_status()


def freshness(collect_url: str, serve_url: str, item_ids: Sequence[str], trials: int = TRIALS) -> list[float]:
    """Seconds from a burst's first purchase to the item in the trending top 3, per trial (quietest items first)."""
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
            started = time.monotonic()
            for _ in range(BURST_BUYERS):
                _buy(client, collect_url, item)
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
