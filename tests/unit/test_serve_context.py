"""Serve with CloudFront viewer headers: context-scoped rules and experiments, and caching that stays right."""

from __future__ import annotations

import time
from typing import Any

from names import CONTEXT_KEY_HEADER
from personalization.context import context_key
from personalization.identity import sign_token
from personalization.profile import Profile
from store.profiles import StoredProfile
from tests.helpers.serve_app import CONFIG, IDENTITY_KEY, App, Bucket, Served, start


def zone_at(local_hour: int) -> str:
    """An Etc/GMT zone whose local hour is `local_hour` now (Etc/GMT-2 is UTC+2: the sign is POSIX's)."""
    utc_hour = time.gmtime().tm_hour
    offset = (local_hour - utc_hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" + ("" if offset == 0 else f"{-offset:+d}")


DOCUMENT: dict[str, Any] = {
    "version": "context-1",
    "dayparts": {"early": {"start": 5, "end": 9}, "late": {"start": 21, "end": 2}},
    "rules": [
        {"id": "mobile-pin", "kind": "pin", "items": ["i11"], "position": 1, "when": {"devices": ["mobile"]}},
        {"id": "spain-pin", "kind": "pin", "items": ["i10"], "position": 2, "when": {"countries": ["ES"]}},
        {"id": "early-pin", "kind": "pin", "items": ["i9"], "position": 3, "when": {"dayparts": ["early"]}},
        {"id": "search-pin", "kind": "pin", "items": ["i8"], "position": 4, "when": {"channels": ["search"]}},
    ],
}


def viewer(
    device: str = "desktop", country: str = "DE", zone: str | None = None, referer: str | None = None
) -> dict[str, str]:
    headers = {
        "cloudfront-is-mobile-viewer": "true" if device in ("mobile", "tablet") else "false",
        "cloudfront-is-tablet-viewer": "true" if device == "tablet" else "false",
        "cloudfront-viewer-country": country,
        "cloudfront-viewer-time-zone": zone or zone_at(12),
        "x-pz-host": "shop.example",
    }
    if referer is not None:
        headers["referer"] = referer
    return headers


def world(served: App, document: dict[str, Any] = DOCUMENT, profiles: Any = None) -> App:
    bucket = Bucket()
    bucket.publish("v1")
    bucket.put_rules(document)
    state = start(bucket)
    served.state = state if profiles is None else Served(CONFIG, profiles, state.rollout)
    return served


def ids(response: Any) -> list[str]:
    return [item["id"] for item in response.json()["items"]]


def fetch(served: App, headers: dict[str, str], slot: str = "for-you", query: str = "") -> Any:
    response = served.client.get(f"/v1/fragments/{slot}?format=json&k=6{query}", headers=headers)
    assert response.status_code == 200
    return response


def test_a_mobile_viewer_gets_the_mobile_rule_and_a_desktop_one_does_not(served: App) -> None:
    world(served)
    assert ids(fetch(served, viewer("mobile")))[0] == "i11"
    assert "i11" not in ids(fetch(served, viewer("desktop")))[:1]
    assert ids(fetch(served, viewer("tablet")))[0] != "i11"


def test_country_daypart_and_channel_rules_follow_the_headers(served: App) -> None:
    world(served)
    assert ids(fetch(served, viewer(country="ES")))[1] == "i10"
    assert "i10" not in ids(fetch(served, viewer(country="DE")))[1:2]
    # 07:00 on the viewer's clock is early; noon is not
    assert ids(fetch(served, viewer(zone=zone_at(7))))[2] == "i9"
    assert ids(fetch(served, viewer(zone=zone_at(12))))[2] != "i9"
    # The late daypart wraps past midnight
    late = world(served, {**DOCUMENT, "rules": [{**DOCUMENT["rules"][2], "when": {"dayparts": ["late"]}}]})
    assert ids(fetch(late, viewer(zone=zone_at(1))))[2] == "i9"
    assert ids(fetch(late, viewer(zone=zone_at(2))))[2] != "i9"
    world(served)
    assert ids(fetch(served, viewer(referer="https://www.google.com/search?q=shoes")))[3] == "i8"
    assert ids(fetch(served, viewer(referer="https://shop.example/p/1")))[3] != "i8"


def test_the_browser_cannot_claim_a_context(served: App) -> None:
    world(served)
    claimed = fetch(served, viewer("desktop", "DE"), query="&device=mobile&country=ES&daypart=early")
    assert ids(claimed) == ids(fetch(served, viewer("desktop", "DE")))
    # Without the edge's headers nothing is known: no context rule applies
    bare = served.client.get("/v1/fragments/for-you?format=json&k=6", headers={"user-agent": "iPhone Mobile"})
    assert not {"i11", "i10", "i9", "i8"} & set(ids(bare)[:4])


def test_the_context_serve_derived_is_in_a_header(served: App) -> None:
    world(served)
    response = fetch(served, viewer("mobile", "ES", zone_at(7), "https://t.co/x"))
    described = dict(part.split("=") for part in response.headers["x-context"].split("; "))
    assert (described["device"], described["country"], described["local_hour"]) == ("mobile", "ES", "07")
    assert (described["channel"], described["daypart"]) == ("social", "early")


def test_a_shared_fragment_is_cached_only_when_the_edge_keyed_it_on_every_dimension_the_rules_read(
    served: App,
) -> None:
    world(served)
    headers = viewer("mobile", "ES", zone_at(12), "https://www.google.com/")
    dimensions = {"device", "country", "timezone", "channel"}
    keyed = fetch(served, {**headers, CONTEXT_KEY_HEADER: context_key(headers, dimensions)})
    assert keyed.headers["cache-control"].startswith("public")
    vary = keyed.headers["vary"].lower()
    for name in (CONTEXT_KEY_HEADER, "cloudfront-is-mobile-viewer", "cloudfront-viewer-country", "referer"):
        assert name in vary
    # The edge's copy of the dimensions lags a new document (or there is no edge): never shared
    stale = fetch(served, {**headers, CONTEXT_KEY_HEADER: context_key(headers, {"device"})})
    assert stale.headers["cache-control"].startswith("private")
    assert fetch(served, headers).headers["cache-control"].startswith("private")


def test_a_daypart_rules_shared_answer_expires_at_the_zones_next_boundary(served: App) -> None:
    world(served)
    # 08:xx on the viewer's clock: the early daypart ends at 09:00, within the hour
    headers = viewer(zone=zone_at(8))
    dimensions = {"device", "country", "timezone", "channel"}
    cache = fetch(served, {**headers, CONTEXT_KEY_HEADER: context_key(headers, dimensions)}).headers["cache-control"]
    directives = dict(part.strip().partition("=")[::2] for part in cache.split(","))
    remaining = 3600 - int(time.time()) % 3600
    assert int(directives["s-maxage"]) <= min(60, remaining)
    assert int(directives["s-maxage"]) + int(directives["stale-while-revalidate"]) <= remaining


def test_without_context_rules_nothing_changes(served: App) -> None:
    world(served, {"version": "plain", "rules": []})
    response = fetch(served, viewer("mobile"))
    assert response.headers["vary"] == "Cookie, x-pz-token"
    assert response.headers["cache-control"] == "public, max-age=0, s-maxage=60, stale-while-revalidate=300"


class Profiles:
    def get(self, user_id: str) -> StoredProfile:
        profile = Profile(user_id, affinity={"shoes": 5.0}, affinity_at_ms=int(time.time() * 1000))
        return StoredProfile(profile, version=1)


def test_personal_fragments_and_experiments_honour_the_context_too(served: App) -> None:
    experiment = {
        "id": "mobile-test",
        "devices": ["mobile"],
        "dayparts": ["early"],
        "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}],
    }
    world(served, {**DOCUMENT, "experiments": [experiment]}, Profiles())
    token = {"x-pz-token": sign_token(IDENTITY_KEY, "c" * 64, int(time.time()) + 3600)}
    mobile_early = fetch(served, {**viewer("mobile", zone=zone_at(7)), **token})
    assert mobile_early.headers["x-personalization"].startswith("personalized")
    assert ids(mobile_early)[0] == "i11"
    assert mobile_early.headers["x-experiment-variant"].startswith("mobile-test:")
    mobile_noon = fetch(served, {**viewer("mobile", zone=zone_at(12)), **token})
    assert mobile_noon.headers["x-experiment-variant"] == "none"
    desktop_early = fetch(served, {**viewer("desktop", zone=zone_at(7)), **token})
    assert desktop_early.headers["x-experiment-variant"] == "none"
    assert ids(desktop_early)[0] != "i11"
