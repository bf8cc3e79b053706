"""The collector's HTTP contract in process (an ASGI client, no sockets): statuses, per-record results, cookies."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collect.app import app
from collect.config import CollectConfig
from collect.intake import MAX_BODY_BYTES
from collect.usecase import CollectDeps, collect_request
from collect.wiring import collect_deps
from names import IDENTITY_COOKIE
from personalization.events import Event
from personalization.identity import sign_token, verify_token
from store.stream import NotWritten, PutResult, RecordOutcome, Written

KEY = b"k" * 32
PSEUDONYM = "b" * 64
# Validated from these variables alone: the constructor would also read the process's environment.
CONFIG = CollectConfig.model_validate(
    {"STREAM_NAME": "events", "IDENTITY_KEY_PARAMETER": "/identity-key", "AWS_REGION": "us-east-1"}
)


@dataclass
class FakeStream:
    """Records what would be written; answers with scripted outcomes (written unless told otherwise)."""

    failures: dict[int, NotWritten] = field(default_factory=dict)
    broken: bool = False
    puts: list[tuple[list[Event], str]] = field(default_factory=list)

    def put_events(self, events: Sequence[Event], partition_key: str) -> PutResult:
        if self.broken:
            raise RuntimeError("a bug in the writer")
        self.puts.append((list(events), partition_key))
        outcomes: list[RecordOutcome] = [self.failures.get(n, Written("shardId-0", str(n))) for n in range(len(events))]
        return PutResult(outcomes, retried=len(self.failures))


@dataclass
class FakeKey:
    """The identity key parameter, or (key None) the parameter store unreachable."""

    key: bytes | None = KEY

    def __call__(self) -> bytes:
        if self.key is None:
            raise LookupError("parameter store unreachable")
        return self.key


@pytest.fixture
def stream() -> FakeStream:
    return FakeStream()


@pytest.fixture
def identity_key() -> FakeKey:
    return FakeKey()


@pytest.fixture
def state(stream: FakeStream, identity_key: FakeKey) -> CollectDeps:
    return CollectDeps(CONFIG, stream, identity_key)


@pytest.fixture
def client(state: CollectDeps) -> Iterator[TestClient]:
    app.dependency_overrides[collect_deps] = lambda: state
    with TestClient(app, base_url="https://shop.example.com") as test_client:
        yield test_client
    app.dependency_overrides.clear()


def event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "view_product",
        "ts": datetime.now(UTC).isoformat(),
        "item_id": "i-1",
        "consent": {"analytics": True, "personalization": True},
    }
    body.update(overrides)
    return body


def token(pseudonym: str = PSEUDONYM, ttl: int = 3600) -> str:
    return sign_token(KEY, pseudonym, int(time.time()) + ttl)


def test_one_event_is_accepted_under_the_tokens_pseudonym(client: TestClient, stream: FakeStream) -> None:
    response = client.post("/v1/events", json=event(user_id="someone-else"), headers={"x-pz-token": token()})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"] == body["failed"] == 0
    [result] = body["results"]
    assert result["index"] == 0
    assert result["status"] == "accepted"
    [(events, partition_key)] = stream.puts
    assert partition_key == PSEUDONYM
    assert events[0].user_id == PSEUDONYM
    assert events[0].pseudonymous is True
    assert events[0].event_id == result["event_id"]
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"


def test_the_cookie_is_read_like_serve_reads_it(client: TestClient, stream: FakeStream) -> None:
    client.cookies.set(IDENTITY_COOKIE, token())
    response = client.post("/v1/events", json=event())
    assert response.status_code == 202
    assert stream.puts[0][1] == PSEUDONYM
    assert "set-cookie" not in response.headers


def test_a_batch_with_invalid_events_answers_per_record(client: TestClient, stream: FakeStream) -> None:
    batch = [event(), event(price=-3), "not an event", event(consent={"analytics": False, "personalization": False})]
    response = client.post("/v1/events", json={"events": batch}, headers={"x-pz-token": token()})
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"], body["failed"]) == (1, 3, 0)
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected", "rejected"]
    assert (results[1]["field"], results[1]["reason"]) == ("price", "invalid_field")
    assert "greater than or equal to 0" in results[1]["message"]
    assert (results[2]["field"], results[2]["reason"]) == ("event", "not_object")
    assert (results[3]["field"], results[3]["reason"]) == ("consent.analytics", "no_consent")
    assert len(stream.puts[0][0]) == 1  # one call, with only the valid event


def test_every_event_invalid_is_a_400_with_the_same_shape(client: TestClient, stream: FakeStream) -> None:
    response = client.post("/v1/events", json={"events": [event(type="teleport"), event(quantity=0)]})
    assert response.status_code == 400
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (0, 2)
    assert [r["field"] for r in body["results"]] == ["type", "quantity"]
    assert stream.puts == []
    # An identifier cookie is set for no one whose events were all refused
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("content", "status", "error"),
    [
        (b"{oops", 400, "invalid_request"),
        (b"[]", 400, "invalid_request"),
        (b"", 400, "invalid_request"),
        (json.dumps({"events": [{}] * 501}).encode(), 413, "payload_too_large"),
        (b" " * (MAX_BODY_BYTES + 1), 413, "payload_too_large"),
    ],
)
def test_a_malformed_or_oversized_body_is_refused_as_a_whole(
    client: TestClient, stream: FakeStream, content: bytes, status: int, error: str
) -> None:
    response = client.post("/v1/events", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["message"]
    assert stream.puts == []


def test_an_oversized_body_is_refused_from_its_declared_length(client: TestClient) -> None:
    # A chunked upload has no declared length: the limit still holds while reading
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * (64 * 1024)

    assert client.post("/v1/events", content=chunks()).status_code == 413


def test_a_visitor_without_a_token_gets_a_signed_anonymous_cookie(client: TestClient, stream: FakeStream) -> None:
    response = client.post("/v1/events", json={"events": [event(), event()]})
    assert response.status_code == 202
    cookie = response.headers["set-cookie"]
    match = re.fullmatch(rf"{IDENTITY_COOKIE}=([^;]+); Path=/; Max-Age=(\d+); Secure; HttpOnly; SameSite=Lax", cookie)
    assert match is not None
    assert int(match.group(2)) == CONFIG.anonymous_id_ttl_s
    pseudonym = verify_token(KEY, match.group(1), int(time.time()))
    assert pseudonym is not None
    assert stream.puts[0][1] == pseudonym
    assert {e.user_id for e in stream.puts[0][0]} == {pseudonym}
    assert verify_token(KEY, match.group(1), int(time.time()) + CONFIG.anonymous_id_ttl_s + 1) is None


def test_a_tampered_token_makes_a_new_anonymous_visitor(client: TestClient, stream: FakeStream) -> None:
    forged = token().replace("b" * 8, "c" * 8, 1)
    response = client.post("/v1/events", json=event(), headers={"x-pz-token": forged})
    assert response.status_code == 202
    pseudonym = stream.puts[0][1]
    assert pseudonym not in (PSEUDONYM, "c" * 8 + "b" * 56)
    assert "set-cookie" in response.headers


def test_a_consent_withdrawal_is_accepted_but_sets_no_identifier(client: TestClient, stream: FakeStream) -> None:
    withdrawal = event(type="consent", item_id=None, consent={"analytics": False, "personalization": False})
    response = client.post("/v1/events", json={k: v for k, v in withdrawal.items() if v is not None})
    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    assert "set-cookie" not in response.headers


def test_a_token_with_a_superscript_digit_in_its_expiry_makes_a_new_anonymous_visitor(
    state: CollectDeps, stream: FakeStream
) -> None:
    # "²" passes str.isdigit() and fails int(): it must be a worthless token, never a 500. (Called below the
    # HTTP client, which would re-encode the header; the uvicorn tests send the raw byte.)
    version, pseudonym, expiry, signature = token().split(".")
    forged = f"{version}.{pseudonym}.{expiry}\u00b2.{signature}"
    collected, new_token = collect_request([event()], forged, time.time(), state)
    assert collected.response.accepted == 1
    assert new_token is not None
    assert stream.puts[0][1] != PSEUDONYM


@pytest.mark.parametrize(
    "consent",
    [
        {"analytics": True, "personalization": False},
        {"analytics": False, "personalization": False},
        {"analytics": True, "personalization": "yes"},
    ],
)
def test_an_event_without_personalization_consent_drops_the_segment_cookie(
    client: TestClient, stream: FakeStream, consent: dict[str, Any]
) -> None:
    client.cookies.set("pz_seg", "s1.3.signature")
    withdrawal = event(type="consent", consent=consent)
    del withdrawal["item_id"]
    response = client.post("/v1/events", json=withdrawal, headers={"x-pz-token": token()})
    assert "pz_seg=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax" in response.headers.get_list("set-cookie")


def test_an_event_with_personalization_consent_keeps_the_segment_cookie(client: TestClient) -> None:
    client.cookies.set("pz_seg", "s1.3.signature")
    response = client.post("/v1/events", json=event(), headers={"x-pz-token": token()})
    assert response.status_code == 202
    assert "set-cookie" not in response.headers


def test_every_answer_varies_on_the_identity_and_errors_are_never_stored(client: TestClient) -> None:
    accepted = client.post("/v1/events", json=event(), headers={"x-pz-token": token()})
    refused = client.post("/v1/events", content=b"{", headers={"content-type": "application/json"})
    not_allowed = client.get("/v1/events")
    not_found = client.get("/nowhere")
    for response in (accepted, refused, not_allowed, not_found):
        assert response.headers["vary"] == "Cookie, x-pz-token"
    for response in (refused, not_allowed, not_found):
        assert response.status_code >= 400
        assert response.headers["cache-control"] == "no-store"


def test_a_throttled_record_is_reported_failed_with_its_event_id(client: TestClient, stream: FakeStream) -> None:
    stream.failures = {1: NotWritten("throttled", "ProvisionedThroughputExceededException")}
    response = client.post("/v1/events", json={"events": [event(), event(event_id="mine")]})
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["failed"]) == (1, 1)
    assert body["results"][1] == {"index": 1, "status": "failed", "reason": "throttled", "event_id": "mine"}


def test_nothing_written_is_a_503_to_retry_and_keeps_the_new_identity(client: TestClient, stream: FakeStream) -> None:
    stream.failures = {n: NotWritten("unavailable", "EndpointConnectionError") for n in range(2)}
    response = client.post("/v1/events", json={"events": [event(), event(price=-1), event()]})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert (body["accepted"], body["rejected"], body["failed"]) == (0, 1, 2)
    assert [r["status"] for r in body["results"]] == ["failed", "rejected", "failed"]
    # The retry must land under the same anonymous id
    assert response.headers["set-cookie"].startswith(f"{IDENTITY_COOKIE}=")


def test_a_writer_bug_is_a_503_never_a_500(client: TestClient, stream: FakeStream) -> None:
    stream.broken = True
    response = client.post("/v1/events", json=event())
    assert response.status_code == 503
    assert response.json()["results"] == [{"index": 0, "status": "failed", "reason": "unavailable", "event_id": None}]


def test_no_identity_key_is_a_503_for_every_event(
    client: TestClient, identity_key: FakeKey, stream: FakeStream
) -> None:
    identity_key.key = None
    response = client.post("/v1/events", json={"events": [event(), event()]}, headers={"x-pz-token": token()})
    assert response.status_code == 503
    assert response.json()["failed"] == 2
    assert stream.puts == []
    assert "set-cookie" not in response.headers


def test_only_post_is_routed(client: TestClient) -> None:
    assert client.get("/v1/events").status_code == 405


def test_the_collector_imports_none_of_serves_heavy_dependencies() -> None:
    # requirements-collect.txt ships without them; importing one would fail in Lambda
    code = (
        "import sys, collect.handler; "
        "print(sorted(m for m in ('numpy', 'onnxruntime', 'markupsafe', 'pynamodb', 'serve') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_the_config_reads_the_environment_the_template_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.local.template import Template

    env = Template.load().function_environment("CollectFunction", {"EventStream": "local-event-stream"})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = CollectConfig.from_env()
    assert config.stream_name == "local-event-stream"
    assert config.identity_key_parameter == "/personalization/identity-key"
    assert config.anonymous_id_ttl_s == 180 * 86400
    assert (config.stream_connect_timeout_s, config.stream_read_timeout_s) == (0.25, 0.5)
