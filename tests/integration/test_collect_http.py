"""The collector over real HTTP (uvicorn on loopback) writing to the loopback Kinesis stream, read back."""

from __future__ import annotations

import json
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from infra.local.serve_process import ServeProcess, free_port
from infra.local.stack import LocalStack
from personalization.identity import sign_token, verify_token
from tests.helpers.collector import FaultyKinesis, collect_env, start_collector, streamed
from tests.helpers.ingest import Ingest

COOKIE = re.compile(r"pz_id=([^;]+); Path=/; Max-Age=(\d+); Secure; HttpOnly; SameSite=Lax")


def event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "view_product",
        "ts": datetime.now(UTC).isoformat(),
        "item_id": "44600062",
        "category": "electronics.smartphone",
        "price": 489.07,
        "consent": {"analytics": True, "personalization": True},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def post(collector: ServeProcess, body: Any, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(f"{collector.url}/v1/events", content=content, headers=headers, timeout=10, **kwargs)


def known_visitor(key: bytes) -> tuple[str, str]:
    """A fresh pseudonym, and a token for it as the shop's login would sign it."""
    pseudonym = secrets.token_hex(32)
    return pseudonym, sign_token(key, pseudonym, int(time.time()) + 3600)


def minted(response: httpx.Response, key: bytes) -> str:
    match = COOKIE.fullmatch(response.headers["set-cookie"])
    assert match is not None, response.headers["set-cookie"]
    pseudonym = verify_token(key, match.group(1), int(time.time()))
    assert pseudonym is not None
    return pseudonym


def test_one_event_reaches_the_stream_under_the_tokens_pseudonym(
    collector: ServeProcess, identity_key: bytes, local_stack: LocalStack
) -> None:
    # Given a visitor with a valid token, who sends a user_id of their own choosing
    pseudonym, token = known_visitor(identity_key)

    # When one event is posted
    response = post(collector, event(user_id="alice@example.com"), headers={"x-pz-token": token})

    # Then it is accepted, and the stream holds it keyed and attributed to the token's pseudonym only
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {"accepted": 1, "rejected": 0, "failed": 0, "results": body["results"]}
    [result] = body["results"]
    [record] = streamed(local_stack, pseudonym)
    assert record.partition_key == pseudonym
    assert record.event["user_id"] == pseudonym
    assert record.event["pseudonymous"] is True
    assert record.event["event_id"] == result["event_id"]
    assert "alice" not in json.dumps(record.event)
    assert "set-cookie" not in response.headers


def test_a_batch_goes_in_one_call_in_order_on_one_shard(
    collector: ServeProcess, identity_key: bytes, local_stack: LocalStack
) -> None:
    pseudonym, token = known_visitor(identity_key)
    batch = [event(item_id=f"item-{n}", event_id=f"evt-{n}") for n in range(50)]
    response = post(collector, {"events": batch}, cookies={"pz_id": token})
    assert response.status_code == 202
    assert response.json()["accepted"] == 50
    records = streamed(local_stack, pseudonym)
    # One partition key per person: one shard, in the order sent
    assert len({r.shard_id for r in records}) == 1
    assert [r.event["event_id"] for r in records] == [f"evt-{n}" for n in range(50)]


def test_invalid_events_in_a_batch_are_refused_naming_the_field_and_the_rest_written(
    collector: ServeProcess, identity_key: bytes, local_stack: LocalStack
) -> None:
    pseudonym, token = known_visitor(identity_key)
    batch = [
        event(event_id="good-1"),
        event(price="expensive"),
        event(type="teleport"),
        event(ts="2999-01-01T00:00:00+00:00"),
        event(event_id="good-2"),
    ]
    response = post(collector, {"events": batch}, headers={"x-pz-token": token})
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"], body["failed"]) == (2, 3, 0)
    rejected = [(r["index"], r["field"], r["reason"]) for r in body["results"] if r["status"] == "rejected"]
    assert rejected == [(1, "price", "invalid_field"), (2, "type", "unknown_type"), (3, "ts", "future_timestamp")]
    assert [r.event["event_id"] for r in streamed(local_stack, pseudonym)] == ["good-1", "good-2"]


def test_every_event_invalid_is_a_400_and_nothing_is_written(
    collector: ServeProcess, identity_key: bytes, local_stack: LocalStack
) -> None:
    pseudonym, token = known_visitor(identity_key)
    response = post(collector, {"events": [event(quantity=0), event(item_id=None)]}, headers={"x-pz-token": token})
    assert response.status_code == 400
    assert [r["field"] for r in response.json()["results"]] == ["quantity", "event"]
    assert streamed(local_stack, pseudonym) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"events": [event()] * 501}, 413),
        ({"events": [event(category="c" * 200)] * 500, "padding": "x" * 1_048_576}, 413),
        (b"not json", 400),
        (b'[{"type": "view_product"}]', 400),
    ],
)
def test_a_body_over_the_limits_or_malformed_is_refused_as_a_whole(
    collector: ServeProcess, identity_key: bytes, local_stack: LocalStack, body: Any, status: int
) -> None:
    pseudonym, token = known_visitor(identity_key)
    response = post(collector, body, headers={"x-pz-token": token})
    assert response.status_code == status
    assert response.json()["error"] in {"payload_too_large", "invalid_request"}
    assert response.json()["message"]
    assert streamed(local_stack, pseudonym) == []


def test_over_a_megabyte_even_within_500_events_is_413(collector: ServeProcess) -> None:
    # Every field within its limit (in characters), but escaped non-ASCII text takes six bytes a character
    batch = [event(context={"page": "\u00e9" * 256, "referrer": "\u00e8" * 256, "device": "\u00ea" * 256})] * 500
    body = json.dumps({"events": batch}).encode()
    assert len(body) > 1_048_576
    response = post(collector, body)
    assert response.status_code == 413
    assert "1048576" in response.json()["message"]


def test_without_a_token_a_cookie_is_minted_and_the_events_carry_its_pseudonym(
    collector: ServeProcess, identity_key: bytes, local_stack: LocalStack
) -> None:
    response = post(collector, {"events": [event(), event(type="page_view", item_id=None)]})
    assert response.status_code == 202
    cookie = COOKIE.fullmatch(response.headers["set-cookie"])
    assert cookie is not None
    assert int(cookie.group(2)) == 180 * 86400
    pseudonym = minted(response, identity_key)
    records = streamed(local_stack, pseudonym)
    assert len(records) == 2
    assert {(r.partition_key, r.event["user_id"], r.event["pseudonymous"]) for r in records} == {
        (pseudonym, pseudonym, True)
    }

    # And the next request with that cookie lands under the same pseudonym, minting nothing
    again = post(collector, event(), cookies={"pz_id": cookie.group(1)})
    assert again.status_code == 202
    assert "set-cookie" not in again.headers
    assert len(streamed(local_stack, pseudonym)) == 3


def test_a_tampered_token_gets_a_new_anonymous_id_never_the_named_one(
    collector: ServeProcess, identity_key: bytes, local_stack: LocalStack
) -> None:
    pseudonym, token = known_visitor(identity_key)
    victim = secrets.token_hex(32)
    tampered = token.replace(pseudonym, victim)
    response = post(collector, event(), cookies={"pz_id": tampered})
    assert response.status_code == 202
    fresh = minted(response, identity_key)
    assert fresh not in (pseudonym, victim)
    assert streamed(local_stack, victim) == []
    assert len(streamed(local_stack, fresh)) == 1


def test_events_without_analytics_consent_are_refused_and_nothing_is_written(
    collector: ServeProcess, identity_key: bytes, local_stack: LocalStack
) -> None:
    pseudonym, token = known_visitor(identity_key)
    refused = event(consent={"analytics": False, "personalization": True})
    response = post(collector, {"events": [refused, refused]}, headers={"x-pz-token": token})
    assert response.status_code == 400
    assert {(r["field"], r["reason"]) for r in response.json()["results"]} == {("consent.analytics", "no_consent")}
    assert streamed(local_stack, pseudonym) == []
    # No identifier cookie for an anonymous visitor who did not consent
    anonymous = post(collector, refused)
    assert anonymous.status_code == 400
    assert "set-cookie" not in anonymous.headers


def test_a_consent_withdrawal_is_accepted_and_reaches_the_stream(
    collector: ServeProcess, identity_key: bytes, local_stack: LocalStack
) -> None:
    pseudonym, token = known_visitor(identity_key)
    withdrawal = event(
        type="consent", item_id=None, price=None, category=None, consent={"analytics": False, "personalization": False}
    )
    response = post(collector, withdrawal, headers={"x-pz-token": token})
    assert response.status_code == 202
    [record] = streamed(local_stack, pseudonym)
    assert record.event["type"] == "consent"
    assert record.event["consent"] == {"analytics": False, "personalization": False}


def test_one_throttled_record_of_a_batch_is_retried_alone_and_accepted(
    identity_key: bytes, local_stack: LocalStack
) -> None:
    # Given a Kinesis endpoint that throttles the third record of the first PutRecords call
    with FaultyKinesis(local_stack.endpoint_url, throttle=[[2]]) as kinesis:
        process = start_collector(collect_env(local_stack, AWS_ENDPOINT_URL_KINESIS=kinesis.url))
        try:
            pseudonym, token = known_visitor(identity_key)
            batch = [event(event_id=f"t-{n}") for n in range(5)]

            # When the batch is posted
            response = post(process, {"events": batch}, headers={"x-pz-token": token})
        finally:
            process.stop()

    # Then the throttled record alone was sent again, and every record is accepted and in the stream once
    assert kinesis.calls == [[f"t-{n}" for n in range(5)], ["t-2"]]
    assert kinesis.throttled == [["t-2"], []]
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["failed"]) == (5, 0)
    assert sorted(r.event["event_id"] for r in streamed(local_stack, pseudonym)) == [f"t-{n}" for n in range(5)]


def test_a_record_throttled_on_every_attempt_is_reported_failed_with_its_id(
    identity_key: bytes, local_stack: LocalStack
) -> None:
    with FaultyKinesis(local_stack.endpoint_url, throttle=[[0]] * 10) as kinesis:
        process = start_collector(collect_env(local_stack, AWS_ENDPOINT_URL_KINESIS=kinesis.url))
        try:
            pseudonym, token = known_visitor(identity_key)
            response = post(
                process, {"events": [event(event_id="x-0"), event(event_id="x-1")]}, headers={"x-pz-token": token}
            )
        finally:
            process.stop()
    assert response.status_code == 202
    assert response.json()["results"][0] == {"index": 0, "status": "failed", "reason": "throttled", "event_id": "x-0"}
    # The first attempt and three retries, then it gives up (the backoff's delays are a unit test's, not timed here).
    assert len(kinesis.calls) == 4
    assert [r.event["event_id"] for r in streamed(local_stack, pseudonym)] == ["x-1"]


def test_kinesis_down_is_a_503_with_every_valid_event_failed(identity_key: bytes, local_stack: LocalStack) -> None:
    # Given nothing listening where the collector looks for Kinesis
    process = start_collector(collect_env(local_stack, AWS_ENDPOINT_URL_KINESIS=f"http://127.0.0.1:{free_port()}"))
    try:
        response = post(process, {"events": [event(), event(price=-1), event()]})
    finally:
        process.stop()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert (body["accepted"], body["rejected"], body["failed"]) == (0, 1, 2)
    failed = [r for r in body["results"] if r["status"] == "failed"]
    assert [(r["index"], r["reason"]) for r in failed] == [(0, "unavailable"), (2, "unavailable")]
    assert all(re.fullmatch(r"[0-9a-f]{32}", r["event_id"]) for r in failed)


def test_collected_events_are_folded_into_the_profile_serve_reads_for_the_cookie(
    collector: ServeProcess, identity_key: bytes, ingest: Ingest
) -> None:
    # Given an anonymous visitor whose tracker posts three events
    batch = [
        event(type="view_product", item_id="44600062"),
        event(type="view_product", item_id="3900746"),
        event(type="add_to_cart", item_id="44600062", quantity=2),
    ]
    response = post(collector, {"events": batch})
    assert response.status_code == 202
    cookie = COOKIE.fullmatch(response.headers["set-cookie"])
    assert cookie is not None

    # When the stream is drained through the real ingest handler
    stats = ingest.poller().drain()

    # Then the profile under the cookie's pseudonym (what serve reads for that token) holds them
    pseudonym = verify_token(identity_key, cookie.group(1), int(time.time()))
    assert pseudonym is not None
    assert stats.records == 3
    stored = ingest.profiles.get(pseudonym)
    assert stored is not None
    assert stored.profile.counts == {"view_product": 2, "add_to_cart": 1}
    assert ingest.quarantine.all() == []
