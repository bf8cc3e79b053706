"""The viewer context: derived from the CloudFront viewer headers only, the same way in serve and the collector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collect.intake import admit
from names import (
    MOBILE_VIEWER_HEADER,
    REFERER_HEADER,
    SMART_TV_VIEWER_HEADER,
    TABLET_VIEWER_HEADER,
    VIEWER_COUNTRY_HEADER,
    VIEWER_TIME_ZONE_HEADER,
)
from personalization.context import (
    DIMENSIONS,
    VIEWER_HEADERS,
    Channel,
    Device,
    RequestContext,
    channel_of,
    context_key,
    request_context,
)
from personalization.events import Event

# 2026-12-07 07:30 UTC, a Monday: 08:30 in Berlin, 02:30 in New York (still Monday), 16:30 in Tokyo.
NOW = datetime(2026, 12, 7, 7, 30, tzinfo=UTC).timestamp()
SHOP = "shop.example"


def cloudfront(
    device: str | None = "desktop", country: str | None = "DE", zone: str | None = "Europe/Berlin"
) -> dict[str, str]:
    headers: dict[str, str] = {"host": SHOP}
    if device is not None:
        for name, flag in (
            (MOBILE_VIEWER_HEADER, device in ("mobile", "tablet")),
            (TABLET_VIEWER_HEADER, device == "tablet"),
            (SMART_TV_VIEWER_HEADER, device == "tv"),
        ):
            headers[name] = "true" if flag else "false"
    if country is not None:
        headers[VIEWER_COUNTRY_HEADER] = country
    if zone is not None:
        headers[VIEWER_TIME_ZONE_HEADER] = zone
    return headers


@pytest.mark.parametrize(
    ("device", "expected"),
    [("mobile", Device.MOBILE), ("tablet", Device.TABLET), ("desktop", Device.DESKTOP), ("tv", Device.OTHER)],
)
def test_the_device_class_comes_from_cloudfronts_device_headers(device: str, expected: Device) -> None:
    assert request_context(cloudfront(device), NOW).device is expected


def test_the_local_clock_comes_from_the_viewers_time_zone() -> None:
    berlin = request_context(cloudfront(zone="Europe/Berlin"), NOW)
    assert (berlin.local_hour, berlin.weekday, berlin.utc_offset_min) == (8, 0, 60)
    new_york = request_context(cloudfront(zone="America/New_York"), NOW)
    assert (new_york.local_hour, new_york.weekday, new_york.utc_offset_min) == (2, 0, -300)
    kolkata = request_context(cloudfront(zone="Asia/Kolkata"), NOW)
    assert (kolkata.local_hour, kolkata.utc_offset_min) == (13, 330)
    # Summer time: Berlin is two hours ahead in July
    july = datetime(2026, 7, 6, 7, 30, tzinfo=UTC).timestamp()
    assert request_context(cloudfront(), july).utc_offset_min == 120


def test_without_the_edge_headers_nothing_is_known_and_nothing_is_guessed() -> None:
    bare = request_context({"user-agent": "Mozilla/5.0 (iPhone)", "accept-language": "de-DE"}, NOW)
    assert bare == RequestContext()
    assert request_context(cloudfront(country="Germany", zone="Mars/Olympus_Mons"), NOW).country is None
    assert request_context(cloudfront(zone="../../etc/passwd"), NOW).local_hour is None


@pytest.mark.parametrize(
    ("referer", "channel"),
    [
        (None, Channel.DIRECT),
        ("https://shop.example/p/1", Channel.DIRECT),
        ("https://shop.example/?utm_source=spring&utm_medium=cpc", Channel.CAMPAIGN),
        ("https://shop.example/?utm_source=letter&utm_medium=email", Channel.EMAIL),
        ("https://shop.example/?UTM_MEDIUM=Social", Channel.SOCIAL),
        ("https://www.google.de/search?q=sofa", Channel.SEARCH),
        ("https://duckduckgo.com/", Channel.SEARCH),
        ("https://m.facebook.com/story", Channel.SOCIAL),
        ("https://t.co/xyz", Channel.SOCIAL),
        ("https://mail.google.com/mail/u/0/", Channel.EMAIL),
        ("https://outlook.live.com/", Channel.EMAIL),
        ("https://blog.example.org/best-sofas", Channel.REFERRAL),
        ("not a url", Channel.DIRECT),
    ],
)
def test_the_channel_comes_from_the_referer(referer: str | None, channel: Channel) -> None:
    assert channel_of(referer, SHOP) is channel


@given(st.dictionaries(st.sampled_from([*VIEWER_HEADERS, "host"]), st.text(max_size=80)), st.floats(0, 4e9))
def test_any_header_values_give_a_context_and_a_key_never_an_error(headers: dict[str, str], now: float) -> None:
    context = request_context(headers, now)
    assert context.local_hour is None or 0 <= context.local_hour < 24
    assert context.country is None or (len(context.country) == 2 and context.country.isupper())
    key = context_key(headers, DIMENSIONS)
    assert [part.split("=")[0] for part in key.split(";")] == list(DIMENSIONS)


def test_the_key_names_only_the_dimensions_asked_for_in_a_fixed_order() -> None:
    headers = {**cloudfront("mobile", "ES", "Europe/Madrid"), REFERER_HEADER: "https://www.bing.com/"}
    assert context_key(headers, ()) == ""
    assert context_key(headers, {"timezone", "device"}) == "device=mobile;timezone=Europe/Madrid"
    assert context_key(headers, set(DIMENSIONS)) == "device=mobile;country=ES;timezone=Europe/Madrid;channel=search"
    assert context_key({}, {"device", "country"}) == "device=-;country=-"


def client_event(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "view_product",
        "item_id": "i1",
        "consent": {"analytics": True, "personalization": True},
        **overrides,
    }


def test_the_collector_stamps_the_edges_context_over_what_the_tracker_claims() -> None:
    now = datetime.fromtimestamp(NOW, UTC)
    context = request_context({**cloudfront("mobile", "DE"), REFERER_HEADER: "https://www.google.com/"}, NOW)
    claimed = {"device": "desktop", "country": "US", "utc_offset_min": -480, "page": "/p/1", "channel": "email"}
    event = admit(client_event(context=claimed), "a" * 64, now, timedelta(days=30), context)
    assert isinstance(event, Event)
    assert event.context.model_dump() == {
        "device": "mobile",
        "country": "DE",
        "utc_offset_min": 60,
        "channel": "search",
        "page": "/p/1",  # not the edge's to say: kept
        "referrer": None,
    }


def test_without_edge_headers_the_trackers_own_context_stands() -> None:
    now = datetime.fromtimestamp(NOW, UTC)
    sent = {"device": "desktop", "utc_offset_min": -480}
    event = admit(client_event(context=sent), "a" * 64, now, timedelta(days=30), request_context({}, NOW))
    assert isinstance(event, Event)
    assert (event.context.device, event.context.utc_offset_min, event.context.channel) == ("desktop", -480, "direct")
    # A context that is not an object is refused by the schema, not silently replaced
    refused = admit(client_event(context="mobile"), "a" * 64, now, timedelta(days=30), request_context({}, NOW))
    assert not isinstance(refused, Event)
    assert refused.field == "context"
