"""The viewer's context as the CDN saw it: device class, country, local time of day and weekday, referrer channel.

Derived from the headers CloudFront adds at the edge (`CloudFront-Is-*-Viewer`, `CloudFront-Viewer-Country`,
`CloudFront-Viewer-Time-Zone`) and the `Referer`, never from what a page or tracker says about itself: CloudFront
replaces any such header a viewer sends, so these values cannot be claimed. A header missing (no CDN in front,
a viewer CloudFront could not place) leaves that field unknown (None), and a rule scoped to it does not apply.

Serve (rules, the cache key check) and the collector (events stamped before they reach the stream) read the
same derivation, so what a rule matched at request time is what the profile folds later.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from names import (
    MOBILE_VIEWER_HEADER,
    REFERER_HEADER,
    SMART_TV_VIEWER_HEADER,
    TABLET_VIEWER_HEADER,
    VIEWER_COUNTRY_HEADER,
    VIEWER_HOST_HEADER,
    VIEWER_TIME_ZONE_HEADER,
)

HOST_HEADER = "host"
ORIGIN_HEADER = "origin"
# Exactly what serve and the collector read: the origin request policies forward these (template.yaml). A
# policy holds at most 10 headers, and the desktop and smart-TV flags add nothing the other two do not say:
# neither mobile nor tablet is a desktop (a smart TV, when a policy forwards its flag, is "other").
VIEWER_HEADERS = (
    MOBILE_VIEWER_HEADER,
    TABLET_VIEWER_HEADER,
    VIEWER_COUNTRY_HEADER,
    VIEWER_TIME_ZONE_HEADER,
    REFERER_HEADER,
)


# scheme://[userinfo@]host[:port][/path][?query][#fragment]: the host, and the query without its fragment.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]*)[^?#]*(?:\?([^#]*))?")
# An IANA zone name as CloudFront sends it ("Europe/Berlin", "America/Argentina/Buenos_Aires", "UTC").
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]{0,29}(/[A-Za-z0-9_+-]{1,30}){0,2}")


# What a tracker may call a device, in one-letter classes; anything else is "o" (other).
DEVICE_CLASSES = ("m", "d", "t", "o")
DEVICE_NAMES = {"m": "mobile", "d": "desktop", "t": "tablet", "o": "other"}
DEVICE_CODES: dict[str, str] = {
    **dict.fromkeys(("mobile", "phone", "smartphone", "android", "ios", "iphone"), "m"),
    **dict.fromkeys(("desktop", "pc", "laptop", "computer", "mac", "windows", "linux"), "d"),
    **dict.fromkeys(("tablet", "ipad"), "t"),
}


def device_class(device: str) -> str:
    """A tracker's device string as one of DEVICE_CLASSES (exact names first; then by what it contains)."""
    code = DEVICE_CODES.get(device)
    if code is not None:
        return code
    lowered = device.lower()
    code = DEVICE_CODES.get(lowered)
    if code is not None:
        return code
    if "tablet" in lowered or "ipad" in lowered:
        return "t"
    if "mobile" in lowered or "phone" in lowered:
        return "m"
    if "desktop" in lowered:
        return "d"
    return "o"


class Device(StrEnum):
    MOBILE = "mobile"
    TABLET = "tablet"
    DESKTOP = "desktop"
    OTHER = "other"  # a smart TV, or a device CloudFront could not class


class Channel(StrEnum):
    """How the visitor came to the page, read from the Referer (the page itself for a fragment request)."""

    SEARCH = "search"
    SOCIAL = "social"
    EMAIL = "email"
    # Any utm_* parameter on the referring page: a tagged link from an ad, a newsletter or a partner.
    CAMPAIGN = "campaign"
    # Another site, not a search engine, social network or webmail.
    REFERRAL = "referral"
    # No Referer, or the shop's own page without campaign tags.
    DIRECT = "direct"


# Domain labels, matched as a whole label anywhere in the referring host ("www.google.de", "m.facebook.com").
_SEARCH = frozenset({"google", "bing", "duckduckgo", "yahoo", "baidu", "yandex", "ecosia", "qwant", "startpage"})
_SOCIAL = frozenset({"facebook", "instagram", "twitter", "linkedin", "pinterest", "tiktok", "reddit", "youtube"})
# Short names, matched as the whole host: as labels they would catch unrelated hosts ("x.example.org").
_SOCIAL_HOSTS = frozenset({"t.co", "x.com", "www.x.com", "lnkd.in"})
_WEBMAIL = frozenset({"mail", "webmail", "outlook"})
_EMAIL_MEDIA = frozenset({"email", "e-mail", "newsletter", "mail"})
_SOCIAL_MEDIA = frozenset({"social", "social-media", "social_media", "socialmedia"})


@dataclass(frozen=True, slots=True)
class RequestContext:
    """One request's viewer context; None where the edge did not say."""

    device: Device | None = None
    # ISO 3166-1 alpha-2, upper case.
    country: str | None = None
    # The viewer's local clock: hour 0-23, weekday 0 (Monday) - 6, and its offset from UTC in minutes.
    local_hour: int | None = None
    weekday: int | None = None
    utc_offset_min: int | None = None
    channel: Channel = Channel.DIRECT

    def describe(self) -> str:
        """For the X-Context response header and the storefront's debug strip: `device=mobile; country=DE; ...`."""
        hour = "-" if self.local_hour is None else f"{self.local_hour:02d}"
        weekday = "-" if self.weekday is None else str(self.weekday)
        return (
            f"device={self.device or '-'}; country={self.country or '-'}; local_hour={hour}; "
            f"weekday={weekday}; channel={self.channel}"
        )

    def stamp(self, sent: Any) -> Any:
        """An event's `context` object with the edge's values in place of what the tracker sent for them;
        anything the edge did not say stays as sent. Not an object: returned as is, for the schema to refuse."""
        if sent is None:
            sent = {}
        if not isinstance(sent, dict):
            return sent
        stamped = dict(sent)
        if self.device is not None:
            stamped["device"] = self.device.value
        if self.country is not None:
            stamped["country"] = self.country
        if self.utc_offset_min is not None:
            stamped["utc_offset_min"] = self.utc_offset_min
        stamped["channel"] = self.channel.value
        return stamped


UNKNOWN = RequestContext()


def device_of(headers: Mapping[str, str]) -> Device | None:
    """CloudFront sets each flag to "true" or "false"; a tablet is checked first (it is mobile too). None when
    no flag came (no CloudFront in front)."""
    tablet, mobile = headers.get(TABLET_VIEWER_HEADER), headers.get(MOBILE_VIEWER_HEADER)
    if tablet is None and mobile is None:
        return None
    if tablet == "true":
        return Device.TABLET
    if mobile == "true":
        return Device.MOBILE
    if headers.get(SMART_TV_VIEWER_HEADER) == "true":
        return Device.OTHER
    return Device.DESKTOP


def country_of(headers: Mapping[str, str]) -> str | None:
    value = headers.get(VIEWER_COUNTRY_HEADER)
    if value is None or len(value) != 2 or not value.isascii() or not value.isalpha():
        return None
    return value.upper()


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    # ZoneInfo caches zones itself, but a bad name raises every time: remember the None too. Bounded: the
    # header could carry anything a viewer behind another proxy sends.
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError; a path-like name ValueError
        return None


def local_time(headers: Mapping[str, str], now_s: float) -> tuple[int, int, int] | None:
    """(hour, weekday, offset minutes) on the viewer's clock, from the IANA time zone CloudFront names."""
    name = headers.get(VIEWER_TIME_ZONE_HEADER)
    zone = _zone(name) if name and _ZONE_NAME.fullmatch(name) else None
    if zone is None:
        return None
    local = datetime.fromtimestamp(now_s, UTC).astimezone(zone)
    offset = local.utcoffset()
    minutes = 0 if offset is None else int(offset.total_seconds() // 60)
    return local.hour, local.weekday(), minutes


def channel_of(referer: str | None, host: str | None) -> Channel:
    """The channel a Referer says: campaign tags first (they say what the link was for), then the host.

    Parsed by two regular expressions rather than urllib, and values compared undecoded: the viewer-request
    function does the same in JavaScript, and the cache key must come out the same on both sides."""
    if not referer:
        return Channel.DIRECT
    found = _URL.match(referer[:2048])
    if found is None:
        return Channel.DIRECT
    referring_host = found.group(1).lower()
    query = found.group(2) or ""
    tags = {}
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name.lower().startswith("utm_"):
            tags[name.lower()] = value.lower()
    if tags:
        medium = tags.get("utm_medium", "")
        if medium in _EMAIL_MEDIA:
            return Channel.EMAIL
        if medium in _SOCIAL_MEDIA:
            return Channel.SOCIAL
        return Channel.CAMPAIGN
    own = (host or "").split(":")[0].lower()
    if not referring_host or referring_host == own:
        return Channel.DIRECT
    labels = set(referring_host.split("."))
    if labels & _WEBMAIL:
        return Channel.EMAIL
    if labels & _SEARCH:
        return Channel.SEARCH
    if labels & _SOCIAL or referring_host in _SOCIAL_HOSTS:
        return Channel.SOCIAL
    return Channel.REFERRAL


def _viewer_host(headers: Mapping[str, str]) -> str | None:
    """The shop's host: the viewer function's copy (serve), the Origin a browser sends with a POST (the
    collector, whose path runs no viewer function), else the Host itself (no CDN in front)."""
    found = _URL.match(headers.get(ORIGIN_HEADER) or "")
    return headers.get(VIEWER_HOST_HEADER) or (found.group(1) if found else None) or headers.get(HOST_HEADER)


def request_context(headers: Mapping[str, str], now_s: float) -> RequestContext:
    """The context of a request with these (case-insensitive) headers, at `now_s` (epoch seconds)."""
    clock = local_time(headers, now_s)
    hour, weekday, offset = clock if clock is not None else (None, None, None)
    return RequestContext(
        device=device_of(headers),
        country=country_of(headers),
        local_hour=hour,
        weekday=weekday,
        utc_offset_min=offset,
        channel=channel_of(headers.get(REFERER_HEADER), _viewer_host(headers)),
    )


# --- The cache key's context part -------------------------------------------------------------------------------
# The CloudFront viewer-request function (infra/cloudfront/viewer_request.js) sets CONTEXT_KEY_HEADER to the
# normalized context key; the fragment cache policy keys on it, and serve checks it (serve/edge_context.py).
# A rules `when` field -> the cache key dimension that tells its values apart, in the key's order. Dayparts
# key on the viewer's time zone: a CloudFront Function has no time zone database to find the local hour, so
# the edge keys on the zone and serve ends a cached answer's life at the zone's next daypart boundary.
DIMENSION_OF_FIELD = {"devices": "device", "countries": "country", "dayparts": "timezone", "channels": "channel"}
DIMENSIONS = tuple(DIMENSION_OF_FIELD.values())
NONE = "-"


def context_key(headers: Mapping[str, str], dimensions: Collection[str]) -> str:
    """The normalized context key for the dimensions the live rules use, exactly as the viewer function makes it
    from the same headers: `device=mobile;timezone=Europe/Berlin`, "" when no rule uses a context."""
    parts = []
    for dimension in DIMENSIONS:
        if dimension not in dimensions:
            continue
        if dimension == "device":
            device = device_of(headers)
            value = NONE if device is None else device.value
        elif dimension == "country":
            value = country_of(headers) or NONE
        elif dimension == "timezone":
            zone = headers.get(VIEWER_TIME_ZONE_HEADER) or ""
            value = zone if _ZONE_NAME.fullmatch(zone) else NONE
        else:
            value = channel_of(headers.get(REFERER_HEADER), _viewer_host(headers)).value
        parts.append(f"{dimension}={value}")
    return ";".join(parts)


# --- Scoping a rule or an experiment to a context ----------------------------------------------------------------
DeviceName = Literal["mobile", "tablet", "desktop", "other"]
ChannelName = Literal["search", "social", "email", "campaign", "referral", "direct"]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, upper case")]


class Daypart(BaseModel):
    """A named range of the visitor's local hours, [start, end); it wraps past midnight when start > end
    (22 to 6 is 22:00-05:59)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Annotated[int, Field(ge=0, le=23)]
    end: Annotated[int, Field(ge=1, le=24)]

    @model_validator(mode="after")
    def _not_empty(self) -> Daypart:
        if self.start == self.end % 24:
            raise ValueError("start and end must differ (a daypart of no hours, or of the whole day, scopes nothing)")
        return self

    def hours(self) -> list[int]:
        if self.start < self.end:
            return list(range(self.start, self.end))
        return [*range(self.start, 24), *range(self.end)]


class ContextScope(BaseModel):
    """The viewer contexts a rule (or an experiment) applies to; a field left out (None) does not restrict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    devices: Annotated[list[DeviceName], Field(min_length=1)] | None = None
    countries: Annotated[list[CountryCode], Field(min_length=1)] | None = None
    # Names of the document's dayparts (RulesDocument.dayparts).
    dayparts: Annotated[list[Annotated[str, Field(max_length=32)]], Field(min_length=1)] | None = None
    channels: Annotated[list[ChannelName], Field(min_length=1)] | None = None

    def admits_context(self, context: RequestContext, daypart: str | None) -> bool:
        """Whether the viewer's context is in scope: an unknown value (no header) is in no list."""
        if self.devices is not None and (context.device is None or context.device.value not in self.devices):
            return False
        if self.countries is not None and context.country not in self.countries:
            return False
        if self.dayparts is not None and daypart not in self.dayparts:
            return False
        return self.channels is None or context.channel.value in self.channels
