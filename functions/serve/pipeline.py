"""From a (maybe) known visitor and a page context to a fragment: profile -> ranking -> fragment.

Every failure below the request degrades to a popular fragment flagged with a reason; nothing raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from observability import logger
from personalization.fragments import Fragment, Mode, build
from personalization.ranking import by_affinity, popular
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


def personalize(
    state: ServeState, pseudonym: str | None, slot: str, k: int, context: PageContext, now_ms: int
) -> Fragment:
    if state.model_error:
        return fallback(state, slot, k, context, state.model_error)
    if pseudonym is None:
        return fallback(state, slot, k, context, "anonymous")
    try:
        stored = state.profiles.get(pseudonym)
    except Exception as exc:
        logger.warning("profile read failed", extra={"error": type(exc).__name__})
        return fallback(state, slot, k, context, "profile_unavailable")
    if stored is None:
        return fallback(state, slot, k, context, "no_profile")
    if not stored.profile.personalization:
        return fallback(state, slot, k, context, "no_personalization_consent")
    ranked = by_affinity(state.catalog, stored.profile, now_ms, k, state.config.fold_settings)
    return build(slot, Mode.PERSONALIZED, ranked, state.model_version)
