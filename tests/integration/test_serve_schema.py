"""Serve against its own OpenAPI schema: schemathesis generates requests for every operation, with and without
identity (random pz_id cookies and x-pz-token headers, and valid signed tokens of real users).

The app runs in-process (schemathesis' ASGI transport) with its state pointing at the loopback stack that
`world` fills: a published model and profiles the real ingest handler wrote. Bounded and derandomized, so a
CI run always generates the same requests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from personalization.identity import pseudonymize, sign_token
from serve.app import app
from serve.wiring import serve_state
from store import parameters
from tests.helpers.serve import World

# Loading the schema only asks the app for /openapi.json: no serve state is built at import.
schema = schemathesis.openapi.from_asgi("/openapi.json", app)

BOUNDED = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, response_headers_conformance]


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[World]:
    """A serve container (state loaded anew) with the ServeFunction's environment, for the module."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in world.serve_env.items():
            monkeypatch.setenv(name, value)
        serve_state.cache_clear()
        parameters.clear_cache()
        assert serve_state().rollout.current().models is not None, "the published model should load"
        yield world
    serve_state.cache_clear()


def valid_token(world: World, rank: int) -> str:
    users = sorted({e.user_id for e in world.events})
    user = users[rank % len(users)]
    return sign_token(world.identity_key, pseudonymize(world.pepper, user), int(time.time()) + 600)


@pytest.mark.usefixtures("served")
@schema.parametrize()
@BOUNDED
def test_generated_requests_never_get_a_server_error_and_conform(case: schemathesis.Case[Any]) -> None:
    """Whatever the path, query, cookies and headers: never a 5xx, and a documented answer where one is."""
    case.call_and_validate(checks=CHECKS)


@schema.parametrize()
@BOUNDED
def test_generated_requests_of_known_visitors_never_get_a_server_error(
    case: schemathesis.Case[Any], served: World
) -> None:
    """The same, with a valid signed token for one of the ingested users in the cookie or the header."""
    token = valid_token(served, len(str(case.query)) + len(case.path))
    if case.cookies is not None and "pz_id" in case.cookies:
        case.cookies["pz_id"] = token
        case.call_and_validate(checks=CHECKS)
    else:
        case.call_and_validate(headers={"x-pz-token": token}, checks=CHECKS)
