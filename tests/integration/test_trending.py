"""Trending now end to end: events through the real ingest handler into the trending rows, the trending slot
over real HTTP, and its fallback when the aggregate cannot be read."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx

from infra.local.poller import KinesisPoller
from infra.local.producer import put_events
from infra.local.serve_process import ServeProcess
from ingest.handler import lambda_handler
from personalization.events import Consent, Event, EventType
from store.trending import TrendingStore
from tests.helpers.serve import World


def trending(serve: ServeProcess, k: int = 3) -> httpx.Response:
    return httpx.get(f"{serve.url}/v1/fragments/trending?format=json&k={k}", timeout=10)


def purchases(item: str, people: int) -> list[Event]:
    now = datetime.now(UTC)
    consent = Consent(analytics=True, personalization=True)
    return [
        Event(
            event_id=uuid.uuid4().hex,
            user_id=f"burst-buyer-{n}",
            type=EventType.PURCHASE,
            ts=now,
            item_id=item,
            consent=consent,
        )
        for n in range(people)
    ]


def drain(world: World) -> None:
    stream = world.stack.physical_names["EventStream"]
    KinesisPoller(world.stack.client("kinesis"), stream, lambda_handler, 500).drain()


def test_an_item_bought_in_a_burst_climbs_into_the_trending_top_three(serve: ServeProcess, world: World) -> None:
    # Given an item that is in the catalog but hardly ever touched
    counts = Counter(e.item_id for e in world.events if e.item_id)
    quiet = min(sorted(counts), key=lambda item: counts[item])
    before = [item["id"] for item in trending(serve, 10).json()["items"]]
    assert quiet not in before[:3]

    # When twenty people buy it, through the stream and the real ingest handler
    put_events(
        world.stack.client("kinesis"), world.stack.physical_names["EventStream"], purchases(quiet, 20), world.pepper
    )
    drain(world)

    # Then, within the slot's refresh, it is among the top three, for everyone, shared briefly by caches
    response = trending(serve)
    for _ in range(50):  # the slot reads the rows again once its copy is two seconds old
        if quiet in [item["id"] for item in response.json()["items"]]:
            break
        time.sleep(0.1)
        response = trending(serve)
    assert quiet in [item["id"] for item in response.json()["items"]]
    assert response.headers["x-personalization"] == "trending"
    assert response.headers["cache-control"] == "public, max-age=0, s-maxage=2, stale-while-revalidate=2"
    assert "set-cookie" not in response.headers


def test_each_batch_writes_one_row_per_shard_and_a_redelivery_adds_nothing(world: World) -> None:
    store = TrendingStore(world.serve_env["TRENDING_TABLE"], world.stack.region)
    # Given the rows as the stream left them
    drain(world)
    rows = store.read_all()
    shards = world.stack.client("kinesis").list_shards(StreamName=world.stack.physical_names["EventStream"])["Shards"]
    assert 1 <= len(rows) <= len(shards)
    # When the whole stream is delivered again from the trim horizon
    drain(world)
    # Then no score grew: every event was counted once already
    again = {item: score for row in store.read_all() for item, score in row.scores.items()}
    once = {item: score for row in rows for item, score in row.scores.items()}
    assert again == once


def test_the_slot_falls_back_to_popularity_flagged_when_the_aggregate_is_unavailable(world: World) -> None:
    env = {**world.serve_env, "TRENDING_TABLE": "no-such-table"}
    with ServeProcess(env) as broken:
        response = trending(broken, 5)
    assert response.status_code == 200
    assert response.headers["x-personalization"] == "fallback; reason=trending_unavailable"
    assert len(response.json()["items"]) == 5
