"""Fixtures for unit tests (no sockets)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.helpers.serve_app import App


@pytest.fixture
def served() -> Iterator[App]:
    """Serve's app in-process (TestClient) answering from the state a test sets on `served.state`."""
    # Imported here, not at collection: only the serve tests need the app.
    from fastapi.testclient import TestClient

    from serve.app import _state, app
    from serve.wiring import ServeState
    from tests.helpers.serve_app import App

    holder = App(TestClient(app, raise_server_exceptions=False))

    def current() -> ServeState:
        assert holder.state is not None
        return holder.state

    app.dependency_overrides[_state] = current
    try:
        yield holder
    finally:
        app.dependency_overrides.pop(_state, None)
