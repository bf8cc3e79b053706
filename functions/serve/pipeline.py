"""From a (maybe) known visitor and a page context to a fragment: profile -> ranking -> fragment.

Every failure below the request degrades to a popular fragment flagged with a reason; nothing raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from observability import logger
from personalization.features import feature_vector
from personalization.fragments import Fragment, Mode, build
from personalization.profile import Profile
from personalization.ranking import by_affinity, excluded_for, popular
from serve.state import ServeState


@dataclass(frozen=True, slots=True)
class PageContext:
    page: str | None = None
    item: str | None = None
    journey: str | None = None


def _context_category(state: ServeState, context: PageContext) -> str | None:
    item = state.catalog.by_id.get(context.item) if context.item else None
    return item.category if item else None


def fallback(state: ServeState, slot: str, k: int, context: PageContext, reason: str) -> Fragment:
    ranked = popular(state.catalog, k, category=_context_category(state, context))
    return build(slot, Mode.FALLBACK, ranked, state.model_version, reason=reason)


PROFILE_UNAVAILABLE = "profile_unavailable"


def _usable_profile(state: ServeState, pseudonym: str) -> Profile | str:
    """The visitor's profile, or the reason there is none to personalize from (never raises)."""
    try:
        stored = state.profiles.get(pseudonym)
    except Exception as exc:
        logger.warning("profile read failed", extra={"error": type(exc).__name__})
        return PROFILE_UNAVAILABLE
    if stored is None:
        return "no_profile"
    if not stored.profile.personalization:
        return "no_personalization_consent"
    return stored.profile


def personalize(
    state: ServeState, pseudonym: str | None, slot: str, k: int, context: PageContext, now_ms: int
) -> Fragment:
    if state.model_error:
        return fallback(state, slot, k, context, state.model_error)
    if pseudonym is None:
        return fallback(state, slot, k, context, "anonymous")
    profile = _usable_profile(state, pseudonym)
    if isinstance(profile, str):
        return fallback(state, slot, k, context, profile)
    settings = state.config.fold_settings
    if state.models is None:
        ranked = by_affinity(state.catalog, profile, now_ms, k, settings)
        return build(slot, Mode.PERSONALIZED, ranked, state.model_version)
    segment = state.models.segments.predict(feature_vector(profile, now_ms, settings))
    exclude = excluded_for(profile)
    ranked = state.models.recs.recommend(profile, k, exclude)
    if len(ranked) < k:
        # A history of items the model does not know, or a short list: top up from the profile's categories.
        shown = {s.item.id for s in ranked}
        ranked += [
            s for s in by_affinity(state.catalog, profile, now_ms, k + len(shown), settings) if s.item.id not in shown
        ][: k - len(ranked)]
    return build(slot, Mode.PERSONALIZED, ranked, state.model_version, segment=segment.name, segment_id=segment.id)


def for_segment(
    state: ServeState,
    pseudonym: str | None,
    known_segment: int | None,
    slot: str,
    k: int,
    context: PageContext,
    now_ms: int,
) -> Fragment:
    """A segment slot: the segment's own best-sellers, the same for all its members (so the CDN can share it).

    The segment comes from the signed cookie when there is one, else from the visitor's profile.
    """
    if state.model_error or state.models is None:
        return fallback(state, slot, k, context, state.model_error or "no_segment_model")
    segment_id = known_segment
    if segment_id is None and pseudonym is not None:
        profile = _usable_profile(state, pseudonym)
        if profile == PROFILE_UNAVAILABLE:
            return fallback(state, slot, k, context, PROFILE_UNAVAILABLE)
        if isinstance(profile, Profile):
            vector = feature_vector(profile, now_ms, state.config.fold_settings)
            segment_id = state.models.segments.predict(vector).id
    if segment_id is None:
        return fallback(state, slot, k, context, "anonymous")
    segment = state.models.segments.segments.get(segment_id)
    ranked = state.models.segments.popular(segment_id, k)
    if len(ranked) < k:
        shown = {s.item.id for s in ranked}
        ranked += popular(state.catalog, k - len(ranked), exclude=shown)
    name = segment.name if segment else f"segment {segment_id}"
    return build(slot, Mode.SEGMENT, ranked, state.model_version, segment=name, segment_id=segment_id)
