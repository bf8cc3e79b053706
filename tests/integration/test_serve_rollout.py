"""A running serve follows models/current.json on the loopback S3: a promoted version (and a rollback) is live in
every fragment within the max age, with no 5xx and no restart; damaged artifacts and rules never take it down."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.local.poller import LocalLambdaContext
from infra.local.serve_process import ServeProcess
from personalization.catalog import Catalog
from serve.wiring import serve_state
from store import parameters
from store.artifacts import POINTER, PREFIX
from store.rules_source import CURRENT as RULES_KEY
from tests.helpers.events import load_event
from tests.helpers.serve import World, most_active, token_for

MAX_AGE_S = 1.0
# How long past the max age a switch may take on this shared machine: one look plus one version's download.
SLACK_S = 4.0


def s3_get(world: World, key: str) -> bytes:
    body: bytes = world.stack.client("s3").get_object(Bucket=world.serve_env["ARTIFACT_BUCKET"], Key=key)["Body"].read()
    return body


def s3_put(world: World, key: str, body: bytes) -> None:
    world.stack.client("s3").put_object(Bucket=world.serve_env["ARTIFACT_BUCKET"], Key=key, Body=body)


def live_version(world: World) -> str:
    return str(json.loads(s3_get(world, POINTER))["version"])


def copy_version(world: World, source: str, version: str) -> None:
    """`source`'s files under another version name, its manifest saying so, the pointer switched last (as
    publish does). The trainer's output either way; a copy keeps the test to seconds."""
    manifest = json.loads(s3_get(world, f"{PREFIX}/{source}/manifest.json"))
    for name in manifest["files"]:
        s3_put(world, f"{PREFIX}/{version}/{name}", s3_get(world, f"{PREFIX}/{source}/{name}"))
    s3_put(world, f"{PREFIX}/{version}/manifest.json", json.dumps({**manifest, "version": version}).encode())
    s3_put(world, POINTER, json.dumps({"version": version}).encode())


@pytest.fixture(scope="module")
def serve(world: World) -> Iterator[ServeProcess]:
    pointer = s3_get(world, POINTER)
    env = {**world.serve_env, "MODEL_MAX_AGE_S": str(MAX_AGE_S), "RULES_MAX_AGE_S": "1"}
    with ServeProcess(env) as process:
        yield process
    s3_put(world, POINTER, pointer)
    world.stack.client("s3").delete_object(Bucket=world.serve_env["ARTIFACT_BUCKET"], Key=RULES_KEY)


def fragments(serve: ServeProcess, world: World) -> list[httpx.Response]:
    """One of each kind a page asks for: personal, anonymous, segment."""
    with httpx.Client(base_url=serve.url, timeout=10) as anonymous:
        plain = anonymous.get("/v1/fragments/for-you?format=json&k=5")
    with httpx.Client(base_url=serve.url, timeout=10, cookies={"pz_id": token_for(world, most_active(world))}) as known:
        return [
            known.get("/v1/fragments/for-you?format=json&k=5"),
            plain,
            known.get("/v1/fragments/segment-banner?format=json&k=5"),
        ]


def switch_to(serve: ServeProcess, world: World, version: str) -> tuple[float, list[str]]:
    """Seconds until every fragment carries `version`; every status seen on the way."""
    published = time.monotonic()
    statuses: list[str] = []
    while True:
        answers = fragments(serve, world)
        statuses += [str(r.status_code) for r in answers]
        if all(r.headers["x-model-version"] == version for r in answers):
            return time.monotonic() - published, statuses
        assert time.monotonic() - published < MAX_AGE_S + SLACK_S, [r.headers["x-model-version"] for r in answers]
        time.sleep(0.1)


def test_a_promoted_version_then_a_rollback_reach_every_fragment_within_the_max_age(
    serve: ServeProcess, world: World
) -> None:
    pid = serve.pid
    first = live_version(world)
    assert {r.headers["x-model-version"] for r in fragments(serve, world)} == {first}

    copy_version(world, first, "rollout-2")
    took, statuses = switch_to(serve, world, "rollout-2")
    assert took < MAX_AGE_S + SLACK_S
    assert set(statuses) == {"200"}
    for _ in range(5):  # and it stays: no container goes back
        answers = fragments(serve, world)
        assert {r.headers["x-model-version"] for r in answers} == {"rollout-2"}
        assert answers[0].headers["x-personalization"] == "personalized"

    s3_put(world, POINTER, json.dumps({"version": first}).encode())  # the rollback
    took, statuses = switch_to(serve, world, first)
    assert set(statuses) == {"200"}
    assert serve.pid == pid
    assert httpx.get(f"{serve.url}/v1/health", timeout=10).json()["model_version"] == first


def copy_as_published_before_catalog_bin(world: World, source: str, version: str) -> None:
    """`source` as trainers wrote a version before catalog.bin: the catalog as a catalog.json document, the recs
    graph's index in items.json, a manifest that names neither `catalog_file` nor goes without `index_file`."""
    manifest = json.loads(s3_get(world, f"{PREFIX}/{source}/manifest.json"))
    catalog = Catalog.from_bytes(s3_get(world, f"{PREFIX}/{source}/{manifest['catalog_file']}"))
    files = {name: s3_get(world, f"{PREFIX}/{source}/{name}") for name in manifest["files"]}
    del files[manifest.pop("catalog_file")]
    files["catalog.json"] = json.dumps(catalog.to_dict()).encode()
    files["items.json"] = json.dumps({"items": catalog.ids}).encode()
    manifest["recs_model"]["index_file"] = "items.json"
    manifest["files"] = {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}
    for name, body in files.items():
        s3_put(world, f"{PREFIX}/{version}/{name}", body)
    s3_put(world, f"{PREFIX}/{version}/manifest.json", json.dumps({**manifest, "version": version}).encode())
    s3_put(world, POINTER, json.dumps({"version": version}).encode())


def test_a_version_published_before_catalog_bin_still_serves_the_same_fragments(
    serve: ServeProcess, world: World
) -> None:
    first = live_version(world)
    before = [{**answer.json(), "model_version": None} for answer in fragments(serve, world)]
    copy_as_published_before_catalog_bin(world, first, "before-catalog-bin-1")
    try:
        _, statuses = switch_to(serve, world, "before-catalog-bin-1")
        assert set(statuses) == {"200"}
        answers = fragments(serve, world)
        assert answers[0].headers["x-personalization"] == "personalized"
        assert [{**answer.json(), "model_version": None} for answer in answers] == before
    finally:
        s3_put(world, POINTER, json.dumps({"version": first}).encode())
    switch_to(serve, world, first)


@pytest.mark.parametrize(
    "pointer",
    [b"[]", b"null", b'"rollout-2"', b'{"version": "no-such-version"}', b"[" * 100_000 + b"]" * 100_000],
)
def test_a_damaged_pointer_published_while_serving_keeps_the_version_in_force(
    serve: ServeProcess, world: World, pointer: bytes
) -> None:
    before = live_version(world)
    s3_put(world, POINTER, pointer)
    try:
        time.sleep(MAX_AGE_S + 0.5)
        for answer in fragments(serve, world):
            assert answer.status_code == 200
            assert answer.headers["x-model-version"] == before
    finally:
        s3_put(world, POINTER, json.dumps({"version": before}).encode())


@pytest.mark.parametrize(
    "document",
    [b"[" * 100_000 + b"]" * 100_000, b'{"version": "x", "rules": [], "n": ' + b"9" * 5000 + b"}", b"[]", b"null"],
)
def test_bad_rules_published_while_serving_leave_the_last_good_ones_in_force(
    serve: ServeProcess, world: World, document: bytes
) -> None:
    good = {"version": "good-1", "rules": [{"id": "no-cart", "kind": "exclude_cart"}]}
    s3_put(world, RULES_KEY, json.dumps(good).encode())
    deadline = time.monotonic() + 1 + SLACK_S
    while fragments(serve, world)[0].headers["x-rules-version"] != "good-1":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    s3_put(world, RULES_KEY, document)
    time.sleep(1.5)
    for answer in fragments(serve, world):
        assert answer.status_code == 200
        assert answer.headers["x-rules-version"] == "good-1"
        assert "internal_error" not in answer.headers["x-personalization"]


@pytest.fixture
def lambda_init(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in world.serve_env.items():
        monkeypatch.setenv(name, value)
    pointer = s3_get(world, POINTER)
    serve_state.cache_clear()
    parameters.clear_cache()
    yield
    s3_put(world, POINTER, pointer)
    world.stack.client("s3").delete_object(Bucket=world.serve_env["ARTIFACT_BUCKET"], Key=RULES_KEY)
    serve_state.cache_clear()


@pytest.mark.usefixtures("lambda_init")
@pytest.mark.parametrize(
    ("key", "body"),
    [
        (POINTER, b"[]"),
        (POINTER, b"null"),
        (POINTER, b'"a bare string"'),
        ("manifest", b"[]"),
        ("manifest", b'{"version": "v", "feature_schema_version": "1", "files": "catalog.json"}'),
        (RULES_KEY, b"[" * 100_000 + b"]" * 100_000),
        (RULES_KEY, b'{"version": "x", "rules": [], "n": ' + b"9" * 5000 + b"}"),
    ],
)
def test_the_lambda_init_never_fails_and_every_answer_is_a_200(world: World, key: str, body: bytes) -> None:
    if key == "manifest":
        key = f"{PREFIX}/{live_version(world)}/manifest.json"
        original = s3_get(world, key)
    s3_put(world, key, body)
    try:
        serve_state()  # what serve.handler's module body runs at init
        from serve.handler import handler

        for name in ("serve_function_url_health.json", "serve_function_url_fragment.json"):
            response = handler(load_event(name), LocalLambdaContext("ServeFunction"))
            assert response["statusCode"] == 200, response["body"]
            assert "internal_error" not in response["headers"].get("x-personalization", "")
    finally:
        if key.endswith("manifest.json"):
            s3_put(world, key, original)
