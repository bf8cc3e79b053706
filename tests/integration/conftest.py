"""Fixtures for tests that talk to the loopback AWS stack (moto_server built from template.yaml)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from infra.local.stack import LocalStack, conflicting_env_vars

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
