"""The Mangum handler with every Function URL event in events/, in-process against the loopback stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.poller import LocalLambdaContext
from serve.wiring import serve_state
from tests.helpers.events import EVENTS_DIR, load_event
from tests.helpers.serve import World

FUNCTION_URL_EVENTS = sorted(p.name for p in EVENTS_DIR.glob("serve_function_url_*.json"))


@pytest.fixture
def handler(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in world.serve_env.items():
        monkeypatch.setenv(name, value)
    serve_state.cache_clear()
    from serve.handler import handler as mangum_handler

    yield mangum_handler
    serve_state.cache_clear()


def test_there_is_a_sample_for_every_route() -> None:
    assert {"serve_function_url_fragment.json", "serve_function_url_health.json"} <= set(FUNCTION_URL_EVENTS)


@pytest.mark.parametrize("name", FUNCTION_URL_EVENTS)
def test_every_function_url_sample_gets_a_non_5xx_answer(handler: Any, name: str) -> None:
    response = handler(load_event(name), LocalLambdaContext("ServeFunction"))
    assert response["statusCode"] < 500
    if "bad_request" in name:
        assert response["statusCode"] == 422
        assert json.loads(response["body"])["error"] == "invalid_request"
    else:
        assert response["statusCode"] == 200


def test_an_on_demand_start_is_not_primed_and_its_first_request_is_answered(handler: Any) -> None:
    """The loopback world names no kind of start (an on-demand one): no request runs through the app at init,
    and the app answers all the same."""
    import serve.handler

    assert serve.handler.PRIMED is False
    response = handler(load_event("serve_function_url_bad_request.json"), LocalLambdaContext("ServeFunction"))
    assert response["statusCode"] == 422


def test_the_fragment_sample_returns_json_items(handler: Any) -> None:
    response = handler(load_event("serve_function_url_fragment.json"), LocalLambdaContext("ServeFunction"))
    body = json.loads(response["body"])
    assert len(body["items"]) == 5
    assert response["headers"]["x-personalization"] == "fallback; reason=anonymous"
