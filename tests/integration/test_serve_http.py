"""The serve app over real HTTP (uvicorn on loopback), reading profiles the real ingest handler wrote."""

from __future__ import annotations

import time

import httpx
import pytest

from infra.local.serve_process import ServeProcess
from personalization.identity import pseudonymize, sign_token
from tests.integration.serve_support import World, serve, world

__all__ = ["serve", "world"]


def most_active(world: World, rank: int = 0) -> str:
    counts: dict[str, int] = {}
    for event in world.events:
        counts[event.user_id] = counts.get(event.user_id, 0) + 1
    return sorted(counts, key=lambda u: (-counts[u], u))[rank]


def token_for(world: World, raw_user: str, ttl: int = 3600, key: bytes | None = None) -> str:
    return sign_token(key or world.identity_key, pseudonymize(world.pepper, raw_user), int(time.time()) + ttl)


def get(serve: ServeProcess, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(f"{serve.url}{path}", timeout=10, **kwargs)  # type: ignore[arg-type]


def test_a_known_user_gets_a_private_personal_fragment_from_their_profile(serve: ServeProcess, world: World) -> None:
    user = most_active(world)
    response = get(serve, "/v1/fragments/for-you?format=json&k=6", cookies={"pz_id": token_for(world, user)})
    assert response.status_code == 200
    assert response.headers["x-personalization"] == "personalized"
    assert response.headers["cache-control"].startswith("private")
    assert response.headers["x-rules-version"] == "none"
    assert response.headers["x-experiment-variant"] == "none"
    body = response.json()
    assert body["mode"] == "personalized"
    assert len(body["items"]) == 6
    # The profile's strongest category leads the fragment
    viewed = [e.category for e in world.events if e.user_id == user and e.category]
    favourite = max(set(viewed), key=viewed.count)
    assert body["items"][0]["category"] == favourite


def test_bought_items_are_not_recommended_again(serve: ServeProcess, world: World) -> None:
    buyers = {e.user_id for e in world.events if e.type.value == "purchase"}
    for user in sorted(buyers)[:5]:
        bought = {e.item_id for e in world.events if e.user_id == user and e.type.value == "purchase"}
        response = get(serve, "/v1/fragments/for-you?format=json&k=50", headers={"x-pz-token": token_for(world, user)})
        shown = {item["id"] for item in response.json()["items"]}
        assert response.headers["x-personalization"] == "personalized"
        assert not bought & shown


def test_anonymous_visitors_get_a_cacheable_popular_fragment(serve: ServeProcess) -> None:
    response = get(serve, "/v1/fragments/for-you?format=html&k=3")
    assert response.status_code == 200
    assert response.headers["x-personalization"] == "fallback; reason=anonymous"
    assert "public" in response.headers["cache-control"]
    assert "s-maxage=" in response.headers["cache-control"]
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.count('class="pz-item"') == 3


def test_a_user_id_in_the_query_is_never_trusted(serve: ServeProcess, world: World) -> None:
    alice, bob = most_active(world, 0), most_active(world, 1)
    as_alice = get(serve, "/v1/fragments/for-you?format=json", cookies={"pz_id": token_for(world, alice)})
    forged = get(
        serve,
        f"/v1/fragments/for-you?format=json&user_id={bob}&user={bob}",
        cookies={"pz_id": token_for(world, alice)},
    )
    as_bob = get(serve, "/v1/fragments/for-you?format=json", cookies={"pz_id": token_for(world, bob)})
    assert forged.json() == as_alice.json()
    assert forged.json() != as_bob.json()


@pytest.mark.parametrize("case", ["expired", "tampered", "wrong-key", "malformed", "raw-id"])
def test_bad_tokens_get_the_anonymous_fragment(serve: ServeProcess, world: World, case: str) -> None:
    user = most_active(world)
    token = {
        "expired": token_for(world, user, ttl=-10),
        "tampered": token_for(world, user)[:-3] + "abc",
        "wrong-key": token_for(world, user, key=b"not-the-key" * 3),
        "malformed": "v1.%%%.1.x",
        "raw-id": f"v1.{user}.{int(time.time()) + 60}.sig",
    }[case]
    response = get(serve, "/v1/fragments/for-you?format=json", cookies={"pz_id": token})
    assert response.status_code == 200
    assert response.headers["x-personalization"] == "fallback; reason=anonymous"


def test_etag_revalidation_answers_304(serve: ServeProcess) -> None:
    first = get(serve, "/v1/fragments/for-you?format=json&k=4")
    again = get(serve, "/v1/fragments/for-you?format=json&k=4", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["etag"] == first.headers["etag"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/fragments/for-you?k=0",
        "/v1/fragments/for-you?k=51",
        "/v1/fragments/for-you?k=three",
        "/v1/fragments/for-you?format=xml",
        "/v1/fragments/NOT%20A%20SLOT",
        "/v1/fragments/for-you?journey=%3Cscript%3E",
        "/v1/fragments/for-you?page=" + "x" * 300,
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(serve: ServeProcess, path: str) -> None:
    response = get(serve, path)
    assert 400 <= response.status_code < 500
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["problems"][0]["message"]


def test_health_reports_the_model_version(serve: ServeProcess) -> None:
    body = get(serve, "/v1/health").json()
    assert body["status"] == "ok"
    assert body["catalog_items"] > 0
    assert body["model_version"] != "none"


def test_a_known_visitor_gets_a_signed_segment_cookie_on_a_private_response(serve: ServeProcess, world: World) -> None:
    response = get(serve, "/v1/fragments/for-you?format=json", cookies={"pz_id": token_for(world, most_active(world))})
    assert response.headers["cache-control"].startswith("private")
    assert response.headers["x-segment"] != "none"
    cookie = response.cookies.get("pz_seg")
    assert cookie is not None
    assert cookie.startswith("s1.")
    assert "HttpOnly" in response.headers["set-cookie"]
    assert "Secure" in response.headers["set-cookie"]


def test_a_segment_slot_is_served_publicly_from_the_segment_cookie_alone(serve: ServeProcess, world: World) -> None:
    first = get(serve, "/v1/fragments/for-you?format=json", cookies={"pz_id": token_for(world, most_active(world))})
    segment_cookie = first.cookies["pz_seg"]

    # No identity at all: only the signed segment cookie, as CloudFront keys it
    response = get(serve, "/v1/fragments/segment-banner?format=json&k=4", cookies={"pz_seg": segment_cookie})
    assert response.status_code == 200
    assert response.headers["x-personalization"] == "segment"
    assert response.headers["x-segment"] == first.headers["x-segment"]
    assert "public" in response.headers["cache-control"]
    assert "set-cookie" not in response.headers
    assert len(response.json()["items"]) == 4


def test_a_forged_segment_cookie_gets_the_anonymous_fragment(serve: ServeProcess) -> None:
    response = get(
        serve, "/v1/fragments/segment-banner?format=json", cookies={"pz_seg": "s1.0.AAAAAAAAAAAAAAAAAAAAAAAA"}
    )
    assert response.headers["x-personalization"] == "fallback; reason=anonymous"
    assert "set-cookie" not in response.headers
