"""The serve app over real HTTP (uvicorn on loopback), reading profiles the real ingest handler wrote."""

from __future__ import annotations

import time

import httpx
import pytest

from infra.local.serve_process import ServeProcess
from tests.helpers.serve import World, most_active, token_for


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


def test_an_anonymous_because_you_viewed_is_labelled_as_the_models_similar_items(
    serve: ServeProcess, world: World
) -> None:
    viewed = most_viewed_item(world)
    response = get(serve, f"/v1/fragments/because-you-viewed?format=json&k=4&item={viewed}")
    assert response.headers["x-personalization"] == "similar; source=item; reason=anonymous"
    assert response.json()["mode"] == "similar"
    assert viewed not in {item["id"] for item in response.json()["items"]}
    # An item the model does not know has no similar items: the popular fallback, flagged as such
    unknown = get(serve, "/v1/fragments/because-you-viewed?format=json&k=4&item=no-such-item")
    assert unknown.headers["x-personalization"] == "fallback; reason=anonymous"
    assert unknown.json()["mode"] == "fallback"


def most_viewed_item(world: World) -> str:
    counts: dict[str, int] = {}
    for event in world.events:
        if event.item_id:
            counts[event.item_id] = counts.get(event.item_id, 0) + 1
    return sorted(counts, key=lambda i: (-counts[i], i))[0]


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


# -- hostile tokens, headers and segment targeting (issue 21) ----------------------------------------------


def superscript_token(world: World, raw_user: str) -> bytes:
    """A valid token with "²" appended to its expiry, as the raw latin-1 byte a client may send."""
    version, pseudonym, expiry, signature = token_for(world, raw_user).split(".")
    return f"{version}.{pseudonym}.{expiry}\u00b2.{signature}".encode("latin-1")


def test_a_superscript_digit_in_a_token_or_segment_cookie_is_never_a_500(serve: ServeProcess, world: World) -> None:
    forged = superscript_token(world, most_active(world))
    fragment = get(serve, "/v1/fragments/for-you?format=json", headers=[(b"x-pz-token", forged)])
    assert fragment.status_code == 200
    assert fragment.headers["x-personalization"] == "fallback; reason=anonymous"
    profile = get(serve, "/v1/profile", headers=[(b"x-pz-token", forged)])
    assert profile.status_code == 401
    segment = get(serve, "/v1/fragments/segment-banner?format=json", headers=[(b"cookie", b"pz_seg=s1.\xb2.AAAA")])
    assert segment.status_code == 200
    assert segment.headers["x-personalization"] == "fallback; reason=anonymous"


def test_every_answer_varies_on_the_identity_and_errors_are_never_stored(serve: ServeProcess, world: World) -> None:
    fragment = get(serve, "/v1/fragments/for-you?format=json")
    invalid = get(serve, "/v1/fragments/for-you?k=0")
    unauthorized = get(serve, "/v1/profile")
    missing = get(serve, "/nowhere")
    not_allowed = httpx.post(f"{serve.url}/v1/health", timeout=10)
    for response in (fragment, invalid, unauthorized, missing, not_allowed):
        assert response.headers["vary"] == "Cookie, x-pz-token"
    for response in (invalid, missing, not_allowed):
        assert response.status_code >= 400
        assert response.headers["cache-control"] == "no-store"
    assert unauthorized.headers["cache-control"] == "private, no-store"


def segment_cookie_of(serve: ServeProcess, token: str) -> str:
    first = get(serve, "/v1/fragments/for-you?format=json", cookies={"pz_id": token})
    assert first.headers["x-personalization"] == "personalized"
    return first.cookies["pz_seg"]


def test_a_known_visitor_who_withdraws_personalization_leaves_segment_targeting(
    serve: ServeProcess, world: World
) -> None:
    from datetime import UTC, datetime

    from infra.local.poller import KinesisPoller
    from infra.local.producer import put_events
    from ingest.handler import lambda_handler
    from personalization.events import Consent, Event, EventType

    # Given a known visitor with a signed segment cookie
    user = most_active(world, 7)
    token = token_for(world, user)
    segment_cookie = segment_cookie_of(serve, token)
    cookies = {"pz_id": token, "pz_seg": segment_cookie}
    assert get(serve, "/v1/fragments/segment-banner?format=json", cookies=cookies).headers["x-segment"] != "none"

    # When they withdraw personalization consent (ingest folds it into the profile)
    withdrawal = Event(
        event_id="withdrawal-" + user,
        user_id=user,
        type=EventType.CONSENT,
        ts=datetime.now(UTC),
        consent=Consent(analytics=True, personalization=False),
    )
    stack = world.stack
    put_events(stack.client("kinesis"), stack.physical_names["EventStream"], [withdrawal], world.pepper)
    KinesisPoller(stack.client("kinesis"), stack.physical_names["EventStream"], lambda_handler, 500).drain()

    # Then the segment slot no longer targets them, though their cookie is still signed and current, and the
    # answer drops the cookie (privately: it sets one)
    response = get(serve, "/v1/fragments/segment-banner?format=json", cookies=cookies)
    assert response.status_code == 200
    assert response.headers["x-personalization"] == "fallback; reason=no_personalization_consent"
    assert response.headers["x-segment"] == "none"
    assert response.headers["set-cookie"].startswith("pz_seg=;")
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert response.headers["cache-control"].startswith("private")


def test_an_erased_person_leaves_segment_targeting_and_loses_both_cookies(serve: ServeProcess, world: World) -> None:
    # Given a known visitor with a signed segment cookie
    user = most_active(world, 8)
    token = token_for(world, user)
    cookies = {"pz_id": token, "pz_seg": segment_cookie_of(serve, token)}

    # When they erase their data themselves
    erased = httpx.delete(f"{serve.url}/v1/profile", headers={"x-pz-token": token}, timeout=10)
    assert erased.status_code == 200

    # Then the answer expires both the identity and the segment cookie
    expired = erased.headers.get_list("set-cookie")
    assert sorted(cookie.split("=")[0] for cookie in expired) == ["pz_id", "pz_seg"]
    assert all("Max-Age=0" in cookie for cookie in expired)

    # And a browser that kept them anyway is not targeted by its segment any more
    response = get(serve, "/v1/fragments/segment-banner?format=json", cookies=cookies)
    assert response.headers["x-personalization"] == "fallback; reason=no_profile"
    assert response.headers["set-cookie"].startswith("pz_seg=;")
