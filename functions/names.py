"""Every cookie and header name a visitor's request or our answer travels under, in one place.

Serve, collect, the local edge (infra/local/edge.py) and the tests read them from here. CloudFront's cache and
origin request policies and its viewer-request function (template.yaml, infra/cloudfront/viewer_request.js) and
the storefront's scripts spell them in their own languages; tests/infrastructure checks those against these.
"""

from __future__ import annotations

from typing import Final

# The signed identity token: set by the collector, read by serve and collect (the header wins over the cookie).
IDENTITY_COOKIE: Final = "pz_id"
IDENTITY_HEADER: Final = "x-pz-token"
# Serve's signed segment cookie: the one cookie the edge cache keys on.
SEGMENT_COOKIE: Final = "pz_seg"
# Set by the viewer-request function: "1" when the request carries the identity cookie (its value unread).
KNOWN_VISITOR_HEADER: Final = "x-pz-known"
# Set by the viewer-request function: the normalized viewer context for the dimensions the live rules read
# (the cache key's context part), and the viewer's Host (an origin behind CloudFront sees its own).
CONTEXT_KEY_HEADER: Final = "x-pz-ctx"
VIEWER_HOST_HEADER: Final = "x-pz-host"
# What CloudFront says of the viewer (origin request policies ask for them): personalization/context.py.
MOBILE_VIEWER_HEADER: Final = "cloudfront-is-mobile-viewer"
TABLET_VIEWER_HEADER: Final = "cloudfront-is-tablet-viewer"
SMART_TV_VIEWER_HEADER: Final = "cloudfront-is-smarttv-viewer"
VIEWER_COUNTRY_HEADER: Final = "cloudfront-viewer-country"
VIEWER_TIME_ZONE_HEADER: Final = "cloudfront-viewer-time-zone"
REFERER_HEADER: Final = "referer"

# What answered a fragment, and with which versions: the debug headers of every fragment answer.
PERSONALIZATION_HEADER: Final = "X-Personalization"
MODEL_VERSION_HEADER: Final = "X-Model-Version"
SEGMENT_HEADER: Final = "X-Segment"
RULES_VERSION_HEADER: Final = "X-Rules-Version"
EXPERIMENT_VARIANT_HEADER: Final = "X-Experiment-Variant"
# The viewer context serve derived (device, country, local hour, weekday, channel, daypart).
CONTEXT_HEADER: Final = "X-Context"
DEBUG_HEADERS: Final = (
    PERSONALIZATION_HEADER,
    SEGMENT_HEADER,
    MODEL_VERSION_HEADER,
    RULES_VERSION_HEADER,
    EXPERIMENT_VARIANT_HEADER,
    CONTEXT_HEADER,
)


def set_cookie(name: str, value: str, max_age_s: int) -> str:
    """A `Set-Cookie` value for one of our cookies: HTTPS only, out of scripts' reach, sent on top-level
    navigation."""
    return f"{name}={value}; Path=/; Max-Age={max_age_s}; Secure; HttpOnly; SameSite=Lax"


def expire_cookie(name: str) -> str:
    """A `Set-Cookie` value that makes the browser drop one of our cookies at once."""
    return set_cookie(name, "", 0)
