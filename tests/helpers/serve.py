"""A served world for serve tests: a published model and real profiles (the `world` and `serve` fixtures in
tests/integration/conftest.py build it and run serve under uvicorn on loopback)."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.local.poller import KinesisPoller
from infra.local.producer import put_events
from infra.local.stack import LocalStack, conflicting_env_vars
from ingest.wiring import ingest_deps
from model_export.data.canonical import to_events
from model_export.publishing.folder import train_version
from personalization.events import Event
from personalization.identity import pseudonymize, sign_token
from store import parameters
from store.artifacts import ArtifactStore
from tests.helpers.data import rees46_sample


@dataclass
class World:
    stack: LocalStack
    serve_env: dict[str, str]
    events: list[Event]
    pepper: bytes
    identity_key: bytes


def build_world(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> World:
    """Reset the stack, publish a model trained on the sample, and ingest the sample through the handler."""
    from datetime import UTC, datetime

    stack.reset()
    for name in conflicting_env_vars(os.environ):
        monkeypatch.delenv(name)
    for name, value in stack.aws_env().items():
        monkeypatch.setenv(name, value)
    ingest_env = stack.function_env("IngestFunction")
    for name, value in ingest_env.items():
        monkeypatch.setenv(name, value)
    ingest_deps.cache_clear()
    parameters.clear_cache()
    # The template's 20/30 ms profile timeouts make serve fall back rather than keep a page waiting; on a
    # shared test machine a loaded moment would turn a test about personalization into a fallback, so the
    # served world waits up to a second (the fast-fail path has its own test in test_serve_degraded).
    serve_env = {
        **stack.function_env("ServeFunction"),
        "PROFILE_CONNECT_TIMEOUT_S": "1.0",
        "PROFILE_READ_TIMEOUT_S": "1.0",
    }

    frame = rees46_sample()
    shift = datetime.now(UTC) - frame["timestamp"].max().to_pydatetime()
    events = list(to_events(frame, shift))
    with tempfile.TemporaryDirectory() as models:
        folder = train_version(frame, Path(models))
        ArtifactStore(serve_env["ARTIFACT_BUCKET"], stack.region).publish(folder)
    pepper = stack.secret_values[ingest_env["PEPPER_PARAMETER"]].encode()
    put_events(stack.client("kinesis"), stack.physical_names["EventStream"], events, pepper)

    from ingest.handler import lambda_handler

    KinesisPoller(stack.client("kinesis"), stack.physical_names["EventStream"], lambda_handler, 500).drain()
    identity_key = stack.secret_values[serve_env["IDENTITY_KEY_PARAMETER"]].encode()
    return World(stack, serve_env, events, pepper, identity_key)


def most_active(world: World, rank: int = 0) -> str:
    """The world's `rank`-th most active person (by events; ties by id)."""
    counts: dict[str, int] = {}
    for event in world.events:
        counts[event.user_id] = counts.get(event.user_id, 0) + 1
    return sorted(counts, key=lambda u: (-counts[u], u))[rank]


def token_for(world: World, raw_user: str, ttl: int = 3600, key: bytes | None = None) -> str:
    """An identity token for `raw_user`, signed with the world's key unless another is given."""
    return sign_token(key or world.identity_key, pseudonymize(world.pepper, raw_user), int(time.time()) + ttl)
