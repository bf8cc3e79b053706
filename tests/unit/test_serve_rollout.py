"""A warm container follows models/current.json: a new version (or a rollback) takes over whole after the max age,
a version that cannot be used leaves the running one in force, and nothing is fetched that need not be."""

from __future__ import annotations

import json

import pytest

from store.artifacts import POINTER, PREFIX
from tests.helpers.serve_app import App, Bucket, Clock, start

PIN_I9 = {"version": "r1", "rules": [{"id": "pin", "kind": "pin", "items": ["i9"], "position": 1}]}
NEW_ITEMS = [{"id": f"n{n}", "category": "hats", "price": 5.0, "popularity": 50.0 - n} for n in range(6)] + [
    {"id": "i9", "category": "shoes", "price": 1.0, "popularity": 0.5}
]


def headers(served: App) -> tuple[str, str, str]:
    response = served.get("/v1/fragments/for-you?format=json&k=3")
    assert response.status_code == 200
    return (
        response.headers["x-model-version"],
        response.headers["x-rules-version"],
        ",".join(item["id"] for item in response.json()["items"]),
    )


def test_a_promoted_version_takes_over_after_the_max_age_with_its_catalog_and_the_rules(served: App) -> None:
    bucket, clock = Bucket(), Clock()
    bucket.publish("v1")
    bucket.put_rules(PIN_I9)
    served.state = start(bucket, clock, model_max_age_s=30)
    assert headers(served) == ("v1", "r1", "i9,i0,i1")
    before = served.state.rollout.current()

    bucket.publish("v2", items=NEW_ITEMS)
    clock.now += 29
    assert headers(served)[0] == "v1"  # within the max age: not looked at
    clock.now += 1
    # The rules in force, compiled against v2's catalog: its own best-sellers, the pinned item first.
    assert headers(served) == ("v2", "r1", "i9,n0,n1")
    # The old snapshot was never touched: a request that took it finishes on v1 whole.
    assert before.version == "v1"
    assert before.catalog.items[0].id == "i0"
    assert before.rules is not None
    assert before.rules is not served.state.rollout.current().rules


def test_a_look_with_nothing_new_reads_only_the_pointer_and_the_rules(served: App) -> None:
    bucket, clock = Bucket(), Clock()
    bucket.publish("v1")
    served.state = start(bucket, clock, model_max_age_s=10, rules_max_age_s=10)
    snapshot = served.state.rollout.current()
    bucket.reads.clear()
    for _ in range(5):
        clock.now += 10
        headers(served)
    assert sorted(set(bucket.reads)) == [POINTER, "rules/current.json"]
    assert bucket.reads.count(POINTER) == 5
    assert served.state.rollout.current() is snapshot  # the same snapshot: nothing rebuilt


@pytest.mark.parametrize(
    "damage",
    ["manifest", "digest", "catalog", "pointer", "missing"],
)
def test_a_version_that_cannot_be_used_leaves_the_running_one_in_force(served: App, damage: str) -> None:
    bucket, clock = Bucket(), Clock()
    bucket.publish("v1")
    served.state = start(bucket, clock, model_max_age_s=5)
    if damage == "manifest":
        bucket.publish("v2", manifest=b'{"version": "v2", "files": "catalog.json"}')
    elif damage == "digest":
        bucket.publish("v2")
        bucket.objects[f"{PREFIX}/v2/catalog.json"] += b" "
    elif damage == "catalog":
        bucket.publish("v2", catalog=b'{"items": [null]}')
    elif damage == "pointer":
        bucket.point(b"[]")
    else:
        bucket.point("v404")
    for _ in range(3):
        clock.now += 5
        assert headers(served)[0] == "v1"
    assert served.get("/v1/health").json()["status"] == "ok"


def test_a_refused_version_is_fetched_once_and_a_later_good_one_still_takes_over(served: App) -> None:
    bucket, clock = Bucket(), Clock()
    bucket.publish("v1")
    served.state = start(bucket, clock, model_max_age_s=5)
    bucket.publish("v2", catalog=b'{"items": "abc"}')
    for _ in range(4):
        clock.now += 5
        headers(served)
    assert bucket.reads.count(f"{PREFIX}/v2/manifest.json") == 1
    bucket.publish("v3", items=NEW_ITEMS)
    clock.now += 5
    assert headers(served)[0] == "v3"


def test_a_version_that_could_not_be_read_is_tried_again(served: App) -> None:
    bucket, clock = Bucket(), Clock()
    bucket.publish("v1")
    served.state = start(bucket, clock, model_max_age_s=5)
    bucket.publish("v2", items=NEW_ITEMS)
    catalog = bucket.objects.pop(f"{PREFIX}/v2/catalog.json")  # the pointer raced ahead of a copy, say
    clock.now += 5
    assert headers(served)[0] == "v1"
    bucket.objects[f"{PREFIX}/v2/catalog.json"] = catalog
    clock.now += 5
    assert headers(served)[0] == "v2"


def test_a_version_whose_models_do_not_load_never_replaces_working_ones_but_may_replace_a_fallback(
    served: App,
) -> None:
    bucket, clock = Bucket(), Clock()
    bucket.publish("v1")
    served.state = start(bucket, clock, model_max_age_s=5)
    broken = {
        "recs_model": {
            "file": "catalog.json",
            "index_file": "catalog.json",
            "recent_weighting": {"decay": 0.7, "max_events": 50},
        },
        "segment_model": {"file": "catalog.json"},
    }
    bucket.publish("v2", manifest=broken)
    clock.now += 5
    assert headers(served)[0] == "v1"

    # A container that started with nothing usable takes whatever is better than nothing.
    empty = Bucket()
    empty.point(b"null")
    served.state = start(empty, clock, model_max_age_s=5)
    assert headers(served)[0] == "none"
    empty.publish("v2", manifest=broken)
    clock.now += 5
    response = served.get("/v1/fragments/for-you?format=json&k=3")
    assert response.headers["x-model-version"] == "v2"
    assert response.headers["x-personalization"] == "fallback; reason=model_unavailable"
    assert len(response.json()["items"]) == 3


def test_a_rollback_is_a_pointer_to_an_older_version_and_switches_the_same_way(served: App) -> None:
    bucket, clock = Bucket(), Clock()
    bucket.publish("v1")
    bucket.publish("v2", items=NEW_ITEMS)
    served.state = start(bucket, clock, model_max_age_s=5)
    assert headers(served)[0] == "v2"
    bucket.point("v1")
    clock.now += 5
    assert headers(served) == ("v1", "none", "i0,i1,i2")


def test_a_container_started_before_the_first_publish_picks_it_up(served: App) -> None:
    bucket, clock = Bucket(), Clock()
    served.state = start(bucket, clock, model_max_age_s=5)
    response = served.get("/v1/fragments/for-you?format=json&k=3")
    assert (response.headers["x-model-version"], response.json()["items"]) == ("none", [])
    bucket.publish("v1")
    clock.now += 5
    assert headers(served)[0] == "v1"


def test_rules_that_do_not_compile_against_a_new_catalog_keep_the_running_version(
    served: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket, clock = Bucket(), Clock()
    bucket.publish("v1")
    bucket.put_rules(PIN_I9)
    served.state = start(bucket, clock, model_max_age_s=5)

    def failing(catalog: object) -> None:
        raise RuntimeError("does not compile")

    monkeypatch.setattr(served.state.rollout.rules, "compile", failing)
    bucket.publish("v2", items=NEW_ITEMS)
    clock.now += 5
    assert headers(served)[:2] == ("v1", "r1")


def test_a_first_version_refused_after_its_catalog_leaves_the_rules_in_force_read_once(served: App) -> None:
    """The rules are read and compiled as soon as the first version's catalog is parsed (while its other files
    still arrive); when a later file then fails its digest, the empty fallback keeps that document in force."""
    import hashlib

    bucket, clock = Bucket(), Clock()
    bucket.put_rules(PIN_I9)
    graph = b"not the graph the manifest names"
    bucket.publish("v1", manifest={"files": {"catalog.json": "", "graph.onnx": hashlib.sha256(graph).hexdigest()}})
    written = bucket.objects[f"{PREFIX}/v1/manifest.json"]
    manifest = json.loads(written)
    manifest["files"]["catalog.json"] = hashlib.sha256(bucket.objects[f"{PREFIX}/v1/catalog.json"]).hexdigest()
    bucket.objects[f"{PREFIX}/v1/manifest.json"] = json.dumps(manifest).encode()
    bucket.objects[f"{PREFIX}/v1/graph.onnx"] = graph + b"!"  # arrives damaged
    served.state = start(bucket, clock, model_max_age_s=5)
    response = served.get("/v1/fragments/for-you?format=json&k=3")
    assert (response.headers["x-model-version"], response.headers["x-rules-version"]) == ("none", "r1")
    assert bucket.reads.count("rules/current.json") == 1
    bucket.objects[f"{PREFIX}/v1/graph.onnx"] = graph  # not fetched again: its bytes were wrong
    clock.now += 5
    assert headers(served)[:2] == ("none", "r1")
