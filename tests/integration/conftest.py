"""Fixtures for tests that talk to the loopback AWS stack (moto_server built from template.yaml): the stack, each
function's environment on it, the served world, the collector and serve under uvicorn, captured logs."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from infra.local.serve_process import ServeProcess
from infra.local.stack import LocalStack, conflicting_env_vars
from store import parameters
from tests.helpers.collector import collect_env, start_collector
from tests.helpers.ingest import Ingest
from tests.helpers.privacy import CapturedLogs, Privacy
from tests.helpers.serve import World, build_world

INTEGRATION_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The hook sees every collected item once this conftest is loaded, unit tests included.
    for item in items:
        if item.path.resolve().is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """One stack for the whole session: starting moto and creating the resources takes seconds."""
    stack = LocalStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def clean_stack(local_stack: LocalStack) -> LocalStack:
    """The session's stack with no data in it: every resource re-created empty, same names."""
    local_stack.reset()
    return local_stack


@pytest.fixture
def stack_env(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    """os.environ points in-process boto3/pynamodb clients at the stack, for this test only."""
    for name in conflicting_env_vars(os.environ):
        monkeypatch.delenv(name)
    for name, value in local_stack.aws_env().items():
        monkeypatch.setenv(name, value)
    # boto3's default session caches the credentials it first resolved; start and end with a fresh one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    return local_stack


@pytest.fixture
def ingest(clean_stack: LocalStack, stack_env: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Ingest:
    """The ingest function's environment on an empty stack, in a fresh container."""
    from ingest.wiring import ingest_deps

    env = clean_stack.function_env("IngestFunction")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # A fresh container: config, stores and the cached pepper are built again from this environment.
    ingest_deps.cache_clear()
    parameters.clear_cache()
    return Ingest(clean_stack, env)


@pytest.fixture
def captured_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[CapturedLogs]:
    """The powertools logger's output (as it would reach CloudWatch) and the root logger's warnings."""
    from observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    root = logging.StreamHandler(stream)
    root.setLevel(logging.WARNING)
    # The standard logger under powertools' Logger: it has addHandler but no removeHandler of its own.
    functions_logger = logging.getLogger(logger.name)
    functions_logger.addHandler(handler)
    logging.getLogger().addHandler(root)
    try:
        yield CapturedLogs(stream, capsys)
    finally:
        functions_logger.removeHandler(handler)
        logging.getLogger().removeHandler(root)


@pytest.fixture
def privacy(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Privacy]:
    """Ingest's stack and environment, plus serve's and the erase function's (fresh containers of each)."""
    # Imported here, not at collection: serve's app is only for the tests that use this fixture.
    from fastapi.testclient import TestClient

    from erase.wiring import erase_deps
    from serve.app import app
    from serve.wiring import serve_eraser, serve_state

    stack = ingest.stack
    env = {**ingest.env, **stack.function_env("ServeFunction"), **stack.function_env("EraseFunction")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for cached in (serve_state, serve_eraser, erase_deps):
        cached.cache_clear()
    parameters.clear_cache()
    identity_key = stack.secret_values[env["IDENTITY_KEY_PARAMETER"]].encode()
    with TestClient(app) as client:
        yield Privacy(ingest, client, identity_key, env)
    for cached in (serve_state, serve_eraser, erase_deps):
        cached.cache_clear()


@pytest.fixture(scope="module")
def world(local_stack: LocalStack) -> Iterator[World]:
    """A served world: a model trained on the sample and published, the sample ingested through the handler."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield build_world(local_stack, monkeypatch)


@pytest.fixture(scope="module")
def serve(world: World) -> Iterator[ServeProcess]:
    """The serve app under uvicorn on loopback, over the world's stack."""
    with ServeProcess(world.serve_env) as process:
        yield process


@pytest.fixture(scope="module")
def collector(local_stack: LocalStack) -> Iterator[ServeProcess]:
    """The collector app under uvicorn on loopback, writing to the stack's stream."""
    process = start_collector(collect_env(local_stack))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def identity_key(local_stack: LocalStack) -> bytes:
    """The key the collector and serve sign identity tokens with (the stack's random secret)."""
    name = local_stack.function_env("CollectFunction")["IDENTITY_KEY_PARAMETER"]
    return local_stack.secret_values[name].encode()
