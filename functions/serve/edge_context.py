"""What a fragment's caching headers owe to the viewer context the live rules read (issue 19, "caching stays
right"): which request headers it varies on, whether the edge keyed the request by the context the rules use,
and how long a shared answer stays true when a rule follows the visitor's time of day."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from names import (
    CONTEXT_KEY_HEADER,
    MOBILE_VIEWER_HEADER,
    REFERER_HEADER,
    TABLET_VIEWER_HEADER,
    VIEWER_COUNTRY_HEADER,
    VIEWER_TIME_ZONE_HEADER,
)
from personalization.context import RequestContext, context_key
from personalization.rules import RulesDocument

DAY_S = 24 * 3600
# The request headers each cache key dimension is derived from. The CloudFront headers are named for a cache
# between CloudFront and serve; User-Agent and Referer also for one between the viewer and CloudFront.
VARY_OF_DIMENSION: Mapping[str, tuple[str, ...]] = {
    "device": (MOBILE_VIEWER_HEADER, TABLET_VIEWER_HEADER, "user-agent"),
    "country": (VIEWER_COUNTRY_HEADER,),
    "timezone": (VIEWER_TIME_ZONE_HEADER,),
    "channel": (REFERER_HEADER,),
}


def vary(base: str, dimensions: Collection[str]) -> str:
    """`base` plus the headers of every dimension the rules use, and the key header the edge sets from them."""
    if not dimensions:
        return base
    names = [name for dimension, headers in VARY_OF_DIMENSION.items() if dimension in dimensions for name in headers]
    return ", ".join([base, CONTEXT_KEY_HEADER, *names])


def keyed_right(headers: Mapping[str, str], dimensions: Collection[str]) -> bool:
    """Whether the edge keyed this request on every dimension the live rules use, with the values serve
    derives: not so (the edge's copy of the rules' dimensions is behind a just-published document, or no edge
    in front), a shared answer must not be cached, or it would reach visitors of another context."""
    if not dimensions:
        return True
    return headers.get(CONTEXT_KEY_HEADER) == context_key(headers, dimensions)


def seconds_until_daypart_changes(document: RulesDocument, viewer: RequestContext, now_s: float) -> int | None:
    """Seconds until the viewer's local clock crosses a daypart boundary of the document; None when the
    viewer's time zone is unknown (every request of that kind is in no daypart) or no daypart is defined."""
    if viewer.utc_offset_min is None or not document.dayparts:
        return None
    boundaries = sorted({hour * 3600 for part in document.dayparts.values() for hour in (part.start, part.end % 24)})
    local = int(now_s + viewer.utc_offset_min * 60) % DAY_S
    following = next((boundary for boundary in boundaries if boundary > local), boundaries[0] + DAY_S)
    return following - local


def shared_lifetime(
    max_age_s: int,
    swr_s: int,
    document: RulesDocument | None,
    dimensions: Collection[str],
    viewer: RequestContext,
    now_s: float,
) -> tuple[int, int]:
    """(s-maxage, stale-while-revalidate) of a shared fragment: ended at the next daypart boundary when the
    rules read dayparts, so no cached copy outlives the daypart it was made for, stale or not."""
    if document is None or "timezone" not in dimensions:
        return max_age_s, swr_s
    remaining = seconds_until_daypart_changes(document, viewer, now_s)
    if remaining is None:
        return max_age_s, swr_s
    max_age = min(max_age_s, remaining)
    return max_age, max(0, min(swr_s, remaining - max_age))
