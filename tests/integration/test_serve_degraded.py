"""Serve when something it depends on is missing, broken or hanging: a flagged 200, never a 5xx.

The app runs in-process (FastAPI's TestClient) against real loopback servers: the moto stack, a port with
nothing listening, and a socket that accepts connections and never answers.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from infra.local.serve_process import free_port
from personalization.identity import pseudonymize, sign_token
from serve.wiring import serve_state
from store import parameters
from store.artifacts import POINTER, PREFIX
from store.tables import forget_bindings
from tests.helpers.serve import World


class Blackhole:
    """A TCP server on loopback that accepts connections and never sends a byte (a hung dependency)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def client_for(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Builds a fresh serve container (state loaded anew) with some environment overrides."""

    def make(**overrides: str) -> TestClient:
        for name, value in {**world.serve_env, **overrides}.items():
            monkeypatch.setenv(name, value)
        serve_state.cache_clear()
        parameters.clear_cache()
        forget_bindings()  # a fresh container: serve makes its table client at init, with these endpoints
        from serve.app import app

        return TestClient(app)

    yield make
    serve_state.cache_clear()


def personal_cookie(world: World) -> dict[str, str]:
    user = next(e.user_id for e in world.events if e.type.value == "purchase")
    token = sign_token(world.identity_key, pseudonymize(world.pepper, user), int(time.time()) + 600)
    return {"pz_id": token}


def fetch(client: TestClient, world: World) -> tuple[int, str, dict[str, object]]:
    client.cookies.update(personal_cookie(world))
    response = client.get("/v1/fragments/for-you?format=json&k=5")
    return response.status_code, response.headers["x-personalization"], response.json()


def test_a_missing_table_gives_the_popular_fragment_flagged(client_for, world: World) -> None:  # type: ignore[no-untyped-def]
    status, mode, body = fetch(client_for(PROFILES_TABLE="no-such-table"), world)
    assert (status, mode) == (200, "fallback; reason=profile_unavailable")
    assert len(body["items"]) == 5  # type: ignore[arg-type]


def test_an_unreachable_table_gives_the_popular_fragment_flagged(client_for, world: World) -> None:  # type: ignore[no-untyped-def]
    dead = f"http://127.0.0.1:{free_port()}"
    status, mode, body = fetch(client_for(AWS_ENDPOINT_URL_DYNAMODB=dead), world)
    assert (status, mode) == (200, "fallback; reason=profile_unavailable")
    assert len(body["items"]) == 5  # type: ignore[arg-type]


def test_a_hanging_table_times_out_into_the_fallback(client_for, world: World) -> None:  # type: ignore[no-untyped-def]
    hole = Blackhole()
    try:
        # The template's own tight timeouts (the served world relaxes them for a loaded test machine)
        template = world.stack.function_env("ServeFunction")
        tight = {name: template[name] for name in ("PROFILE_CONNECT_TIMEOUT_S", "PROFILE_READ_TIMEOUT_S")}
        status, mode, _ = fetch(client_for(AWS_ENDPOINT_URL_DYNAMODB=hole.url, **tight), world)
    finally:
        hole.close()
    assert (status, mode) == (200, "fallback; reason=profile_unavailable")


def _publish_variant(world: World, version: str, *, corrupt: bool = False, schema: str | None = None) -> None:
    s3 = world.stack.client("s3")
    bucket = world.serve_env["ARTIFACT_BUCKET"]
    current = json.loads(s3.get_object(Bucket=bucket, Key=POINTER)["Body"].read())["version"]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{PREFIX}/{current}/manifest.json")["Body"].read())
    for name in manifest["files"]:
        data = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/{current}/{name}")["Body"].read()
        if corrupt and name == manifest.get("catalog_file", "catalog.json"):
            data = data[:-1] + bytes([data[-1] ^ 1])  # the bytes no longer match the manifest
        s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{version}/{name}", Body=data)
        assert corrupt or hashlib.sha256(data).hexdigest() == manifest["files"][name]
    if schema is not None:
        manifest["feature_schema_version"] = schema
    manifest["version"] = version
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{version}/manifest.json", Body=json.dumps(manifest).encode())
    s3.put_object(Bucket=bucket, Key=POINTER, Body=json.dumps({"version": version}).encode())


@pytest.fixture
def restore_pointer(world: World) -> Iterator[None]:
    s3 = world.stack.client("s3")
    bucket = world.serve_env["ARTIFACT_BUCKET"]
    pointer = s3.get_object(Bucket=bucket, Key=POINTER)["Body"].read()
    yield
    s3.put_object(Bucket=bucket, Key=POINTER, Body=pointer)


@pytest.mark.usefixtures("restore_pointer")
def test_a_corrupt_model_is_refused_and_flagged(client_for, world: World) -> None:  # type: ignore[no-untyped-def]
    _publish_variant(world, "corrupt-1", corrupt=True)
    client = client_for()
    status, mode, _ = fetch(client, world)
    assert (status, mode) == (200, "fallback; reason=model_unavailable")
    assert client.get("/v1/health").json()["status"] == "degraded"


@pytest.mark.usefixtures("restore_pointer")
def test_a_model_of_an_unknown_feature_schema_is_refused_and_flagged(client_for, world: World) -> None:  # type: ignore[no-untyped-def]
    _publish_variant(world, "future-schema-1", schema="999")
    status, mode, body = fetch(client_for(), world)
    assert (status, mode) == (200, "fallback; reason=unknown_feature_schema")
    assert len(body["items"]) == 5  # type: ignore[arg-type]


@pytest.mark.usefixtures("restore_pointer")
def test_no_published_model_is_flagged(client_for, world: World) -> None:  # type: ignore[no-untyped-def]
    world.stack.client("s3").delete_object(Bucket=world.serve_env["ARTIFACT_BUCKET"], Key=POINTER)
    status, mode, body = fetch(client_for(), world)
    assert (status, mode) == (200, "fallback; reason=model_unavailable")
    assert body["items"] == []
