"""The serve use case: one `FragmentRequest` and the sources of one version -> the fragment to answer with.

Never raises: whatever fails below the request (a bug included) answers with the popular fallback, flagged
`internal_error`, so a page is never left with a 5xx in a slot.
"""

from __future__ import annotations

from observability import logger
from personalization.fragments import Fragment, Reason
from serve.pipeline import fallback, for_person, for_segment, trending
from serve.requests import FragmentRequest
from serve.sources import Sources

# Slots named segment* show the visitor's segment's best-sellers: shared by the segment, cached at the edge.
SEGMENT_SLOT_PREFIX = "segment"
# What is selling right now: anonymous and public (the same for everyone), shared by the edge for seconds.
TRENDING_SLOT = "trending"


def personalize(request: FragmentRequest, sources: Sources) -> Fragment:
    try:
        if request.slot == TRENDING_SLOT:
            return trending(request, sources)
        if request.slot.startswith(SEGMENT_SLOT_PREFIX):
            return for_segment(request, sources)
        return for_person(request, sources)
    except Exception:
        logger.exception("fragment pipeline failed; serving the popular fallback")
        return fallback(request, sources, Reason.INTERNAL_ERROR)
