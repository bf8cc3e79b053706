"""What a fragment request asks, as one typed value: the handler parses it, the use case answers it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from personalization.context import UNKNOWN, RequestContext

Format = Literal["html", "json"]


@dataclass(frozen=True, slots=True)
class PageContext:
    page: str | None = None
    item: str | None = None
    journey: str | None = None
    # The viewer's context, from the CloudFront viewer headers (never from the query).
    viewer: RequestContext = UNKNOWN


@dataclass(frozen=True, slots=True)
class Identity:
    """Who asks, as far as serve verified it: the signed token's pseudonym and the signed segment cookie's id
    (of the live model version). Both None: an anonymous visitor."""

    pseudonym: str | None = None
    segment: int | None = None


ANONYMOUS = Identity()


@dataclass(frozen=True, slots=True)
class FragmentRequest:
    slot: str
    k: int
    now_ms: int
    identity: Identity = ANONYMOUS
    context: PageContext = field(default_factory=PageContext)
    format: Format = "html"

    @property
    def item(self) -> str | None:
        """The page's item, for the because* slots' similar items and the fallback's category."""
        return self.context.item

    @property
    def journey(self) -> str | None:
        return self.context.journey
