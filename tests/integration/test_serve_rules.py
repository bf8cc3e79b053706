"""Rules and experiments in the running serve app: published to the loopback bucket, picked up without a restart."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.serve_process import ServeProcess
from infra.local.stream_dump import dump_stream
from personalization.events import Event, EventType
from personalization.experiments import Experiment, assign
from personalization.identity import pseudonymize
from personalization.provenance import impression_key, signed_by_serve
from store.rules_source import CURRENT, RulesSource
from tests.helpers.serve import World, most_active, token_for

MAX_AGE_S = 1


def publish(world: World, document: dict[str, Any]) -> None:
    source = RulesSource(world.serve_env["ARTIFACT_BUCKET"], world.stack.region, MAX_AGE_S)
    source.publish(document["version"], json.dumps(document).encode())


@pytest.fixture(scope="module")
def serve(world: World) -> Iterator[ServeProcess]:
    with ServeProcess({**world.serve_env, "RULES_MAX_AGE_S": str(MAX_AGE_S)}) as process:
        yield process


def fragment(serve: ServeProcess, world: World, user: str | None, query: str = "") -> httpx.Response:
    cookies = {"pz_id": token_for(world, user)} if user else {}
    return httpx.get(f"{serve.url}/v1/fragments/for-you?format=json&k=8{query}", cookies=cookies, timeout=10)


def wait_for_version(serve: ServeProcess, world: World, user: str, version: str) -> httpx.Response:
    deadline = time.monotonic() + 10
    while True:
        response = fragment(serve, world, user)
        if response.headers["x-rules-version"] == version or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_rules_shape_the_fragment_and_a_change_is_live_without_a_restart(serve: ServeProcess, world: World) -> None:
    user = most_active(world)
    before = fragment(serve, world, user).json()
    assert before["rules_version"] == "none"
    shown = [item["id"] for item in before["items"]]
    popular_elsewhere = next(
        item["id"] for item in fragment(serve, world, None, "&k=50").json()["items"] if item["id"] not in shown
    )
    document = {
        "version": "t1",
        "rules": [
            {"id": "out-of-stock", "kind": "exclude", "match": {"items": shown[:2]}},
            {
                "id": "campaign",
                "kind": "pin",
                "items": [popular_elsewhere],
                "position": 1,
                "when": {"slots": ["for-you"]},
            },
            {"id": "pin-excluded", "kind": "pin", "items": [shown[0]], "position": 3},
            {"id": "checkout", "kind": "curated", "items": shown[2:5], "when": {"journeys": ["checkout"]}},
        ],
    }
    publish(world, document)
    after = wait_for_version(serve, world, user, "t1")
    assert after.headers["x-rules-version"] == "t1"
    body = after.json()
    ids = [item["id"] for item in body["items"]]
    assert ids[0] == popular_elsewhere
    assert not set(shown[:2]) & set(ids)
    # The exclusion is applied inside the model's mask, so the list is still full.
    assert len(ids) == 8
    assert any("pin-excluded" in note and "out-of-stock" in note for note in body["notes"])
    checkout = fragment(serve, world, user, "&journey=checkout").json()
    assert [item["id"] for item in checkout["items"]][1:] == shown[2:5]  # the campaign pin still leads
    # Anonymous visitors get the rules that need no person.
    anonymous = fragment(serve, world, None).json()
    assert anonymous["items"][0]["id"] == popular_elsewhere
    assert not set(shown[:2]) & {item["id"] for item in anonymous["items"]}


def test_a_bad_document_is_refused_and_the_last_good_one_stays_in_force(serve: ServeProcess, world: World) -> None:
    user = most_active(world)
    publish(world, {"version": "t2", "rules": [{"id": "fine", "kind": "exclude_cart"}]})
    assert wait_for_version(serve, world, user, "t2").headers["x-rules-version"] == "t2"
    # Bypass the publisher's validation, as a hand edit in the bucket would.
    s3 = world.stack.client("s3")
    bad = {"version": "t3", "rules": [{"id": "boost", "kind": "boost", "match": {"brands": ["x"]}, "factor": -1}]}
    s3.put_object(Bucket=world.serve_env["ARTIFACT_BUCKET"], Key=CURRENT, Body=json.dumps(bad).encode())
    time.sleep(MAX_AGE_S + 0.5)
    for _ in range(3):
        response = fragment(serve, world, user)
        assert response.status_code == 200
        assert response.headers["x-rules-version"] == "t2"
    s3.put_object(Bucket=world.serve_env["ARTIFACT_BUCKET"], Key=CURRENT, Body=b"{not json")
    time.sleep(MAX_AGE_S + 0.5)
    assert fragment(serve, world, user).headers["x-rules-version"] == "t2"


def test_experiment_variants_are_stable_and_every_personal_impression_is_logged(
    serve: ServeProcess, world: World
) -> None:
    experiment = {
        "id": "recs-vs-popular",
        "slots": ["for-you"],
        "variants": [
            {"name": "control", "share": 0.5, "strategy": "model"},
            {"name": "popular", "share": 0.5, "strategy": "popular"},
        ],
    }
    publish(world, {"version": "t4", "rules": [], "experiments": [experiment]})
    users = [most_active(world, rank) for rank in range(12)]
    wait_for_version(serve, world, users[0], "t4")
    start = time.time()
    served: dict[str, tuple[str, list[str]]] = {}
    for user in users:
        first, again = fragment(serve, world, user), fragment(serve, world, user)
        variant = first.headers["x-experiment-variant"]
        assert variant == again.headers["x-experiment-variant"]
        expected = assign(Experiment.model_validate(experiment), pseudonymize(world.pepper, user)).name
        assert variant == f"recs-vs-popular:{expected}"
        # The popular arm answers without the model, and says so
        mode = {"control": "personalized", "popular": "experiment; strategy=popular"}[expected]
        assert first.headers["x-personalization"] == mode
        served[pseudonymize(world.pepper, user)] = (expected, [item["id"] for item in first.json()["items"]])
    assert {variant for variant, _ in served.values()} == {"control", "popular"}
    # Another slot is outside the experiment.
    other = httpx.get(
        f"{serve.url}/v1/fragments/home?format=json", cookies={"pz_id": token_for(world, users[0])}, timeout=10
    )
    assert other.headers["x-experiment-variant"] == "none"

    impressions: list[Event] = []
    deadline = time.monotonic() + 10
    while len(impressions) < 2 * len(users) and time.monotonic() < deadline:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "stream.jsonl"
            dump_stream(world.stack, world.stack.physical_names["EventStream"], path)
            events = [Event.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]
        impressions = [
            e
            for e in events
            if e.type is EventType.IMPRESSION and e.ts.timestamp() >= start and e.impression is not None
            if e.impression.slot == "for-you"
        ]
        time.sleep(0.3)
    assert len(impressions) == 2 * len(users)
    for event in impressions:
        assert event.pseudonymous
        assert event.impression is not None
        variant, items = served[event.user_id]
        assert event.impression.experiment == "recs-vs-popular"
        assert event.impression.variant == variant
        assert event.impression.items == items
        assert event.impression.rules_version == "t4"
        # Signed by serve, so a report given the identity key counts it (and nothing a browser forged)
        assert signed_by_serve(impression_key(world.identity_key), event)
