"""The Mangum handler with every collector Function URL event in events/, in process, against the loopback stack."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from collect.wiring import collect_deps
from infra.local.poller import LocalLambdaContext
from infra.local.stack import LocalStack
from personalization.identity import verify_token
from store import parameters
from tests.helpers.collector import streamed
from tests.helpers.events import EVENTS_DIR, load_event

FUNCTION_URL_EVENTS = sorted(p.name for p in EVENTS_DIR.glob("collect_function_url_*.json"))


@pytest.fixture
def handler(stack_env: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in stack_env.function_env("CollectFunction").items():
        monkeypatch.setenv(name, value)
    # A fresh container: config, stream client and the cached identity key come from this environment.
    collect_deps.cache_clear()
    parameters.clear_cache()
    from collect.handler import handler as mangum_handler

    yield mangum_handler
    collect_deps.cache_clear()


def test_there_are_samples_of_a_batch_and_of_a_malformed_body() -> None:
    assert {"collect_function_url_events.json", "collect_function_url_malformed.json"} <= set(FUNCTION_URL_EVENTS)


@pytest.mark.parametrize("name", FUNCTION_URL_EVENTS)
def test_every_function_url_sample_gets_a_non_5xx_answer(handler: Any, name: str) -> None:
    response = handler(load_event(name), LocalLambdaContext("CollectFunction"))
    assert response["statusCode"] < 500
    body = json.loads(response["body"])
    if "malformed" in name:
        assert response["statusCode"] == 400
        assert body["error"] == "invalid_request"
    else:
        assert response["statusCode"] == 202
        assert body["accepted"] == len(json.loads(load_event(name)["body"])["events"])


def test_the_batch_sample_is_written_under_a_minted_cookie(handler: Any, stack_env: LocalStack) -> None:
    # Given the sample a CloudFront-signed Function URL request would bring (no identity cookie)
    sample = load_event("collect_function_url_events.json")

    # When Lambda would invoke the handler with it
    response = handler(sample, LocalLambdaContext("CollectFunction"))

    # Then the payload v2 answer sets the identity cookie, and the stream holds every event under its pseudonym
    assert response["statusCode"] == 202
    [cookie] = response["cookies"]
    token = cookie.split(";", 1)[0].removeprefix("pz_id=")
    key = stack_env.secret_values[stack_env.function_env("CollectFunction")["IDENTITY_KEY_PARAMETER"]].encode()
    pseudonym = verify_token(key, token, int(time.time()))
    assert pseudonym is not None
    records = streamed(stack_env, pseudonym)
    assert [r.event["type"] for r in records] == ["view_product", "add_to_cart", "page_view"]
    assert records[0].event["event_id"] == "4f1c2a9e8b7d4c3fa1e2d3c4b5a69788"
    assert {r.partition_key for r in records} == {pseudonym}
