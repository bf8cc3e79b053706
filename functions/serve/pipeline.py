"""From a (maybe) known visitor and a page context to a fragment: profile -> candidates -> rules -> fragment.

Candidates come from the recommendation graph, with every item the rules exclude masked inside it, so the top
K is filled with eligible items; the rules then boost, cap, pin or replace. Every failure below the request
degrades to a popular fragment flagged with a reason (the rules still apply to it); nothing raises. The
fragment's mode says what answered: the person's model, the page item's similar items, an experiment arm's
strategy, or the popular fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from observability import logger
from personalization.experiments import Experiment, Variant, active_experiment, assign
from personalization.fatigue import dismissed_since
from personalization.features import feature_vector
from personalization.fragments import Fragment, Labels, Mode, Reason, build
from personalization.models import Models
from personalization.profile import Profile
from personalization.ranking import Candidates, Scored, by_affinity, excluded_for, popular
from personalization.rules import POOL_CAP, RulePlan, RuleRequest
from serve.requests import FragmentRequest, PageContext
from serve.sources import RulesInForce, Sources
from serve.trending import TrendingUnavailable

# Slots named because* with a page item show items like it (for anyone), not the person's general picks.
CONTEXT_SLOT_PREFIX = "because"


@dataclass(frozen=True, slots=True)
class Decision:
    """The rules in force and the visitor's experiment variant for this request."""

    engine: RulesInForce | None
    experiment: Experiment | None = None
    variant: Variant | None = None

    @property
    def variants(self) -> frozenset[str]:
        if self.experiment is None or self.variant is None:
            return frozenset()
        return frozenset({f"{self.experiment.id}:{self.variant.name}"})

    def labels(self, notes: Collection[str] = ()) -> Labels:
        return Labels(
            rules_version=self.engine.version if self.engine else "none",
            experiment=self.experiment.id if self.experiment and self.variant else None,
            variant=self.variant.name if self.variant else None,
            notes=tuple(notes),
        )


def decide(sources: Sources, request: FragmentRequest) -> Decision:
    """The live rules, and the variant of the slot's running experiment for a known visitor (anonymous
    visitors have no stable id to assign, so they see control's default behaviour and are not counted)."""
    engine = sources.rules
    pseudonym = request.identity.pseudonym
    if engine is None or pseudonym is None:
        return Decision(engine)
    viewer = request.context.viewer
    document = engine.document
    daypart = document.daypart_at(viewer.local_hour)
    experiment = active_experiment(document.experiments, request.slot, request.now_ms, viewer, daypart)
    if experiment is None:
        return Decision(engine)
    return Decision(engine, experiment, assign(experiment, pseudonym))


def _context_category(sources: Sources, context: PageContext) -> str | None:
    item = sources.catalog.by_id.get(context.item) if context.item else None
    return item.category if item else None


def _plan(
    decision: Decision,
    request: FragmentRequest,
    segment: tuple[str, int] | None = None,
    purchased: Mapping[str, int] | None = None,
    cart: Collection[str] = (),
    seen: Mapping[str, tuple[int, ...]] | None = None,
    dismissed: frozenset[str] = frozenset(),
) -> RulePlan | None:
    if decision.engine is None:
        return None
    return decision.engine.plan(
        RuleRequest(
            slot=request.slot,
            journey=request.journey,
            segment=segment[0] if segment else None,
            segment_id=segment[1] if segment else None,
            variants=decision.variants,
            now_ms=request.now_ms,
            purchased=purchased or {},
            cart=cart,
            context=request.context.viewer,
            seen=seen or {},
            dismissed=dismissed,
        )
    )


def _finish(plan: RulePlan | None, candidates: Candidates, k: int) -> tuple[list[Scored], list[str]]:
    """At most k items; only the ones shown become objects."""
    if plan is None:
        return candidates.scored(k), []
    ruled = plan.apply(candidates, k)
    return ruled.items, ruled.notes


def _ruled(plan: RulePlan | None, k: int, fetch: Callable[[int], Candidates]) -> tuple[list[Scored], list[str]]:
    """Candidates from `fetch(pool)`, through the rules; a curated list replaces them (the rules hold it)."""
    if plan is not None and plan.curated_items is not None:
        ruled = plan.apply((), k)
        return ruled.items, ruled.notes
    pool = plan.pool_size(k) if plan else k
    candidates = fetch(pool)
    ranked, notes = _finish(plan, candidates, k)
    if plan is not None and len(ranked) < k and len(candidates) >= pool < POOL_CAP:
        # The rules passed over more than the pool allowed for (a diversity cap over a list of one category):
        # one wider look rather than a short fragment.
        ranked, notes = _finish(plan, fetch(POOL_CAP), k)
    return ranked, notes


def fallback(
    request: FragmentRequest,
    sources: Sources,
    reason: Reason,
    decision: Decision | None = None,
) -> Fragment:
    """The model's items like the page item on a because* slot (Mode.SIMILAR), else popular items (in the page
    item's category first); the rules that need no person applied; `reason` says why it is not personal."""
    decision = decision or Decision(None)
    try:
        plan = _plan(decision, request)
    except Exception:
        logger.exception("rules failed on a fallback; serving it without them")
        plan, decision = None, Decision(None)
    excluded = plan.excluded if plan else frozenset()
    category = _context_category(sources, request.context)

    answered: list[Mode] = []  # what the last fetch took its candidates from (none: a curated list)

    def fetch(pool: int) -> Candidates:
        similar = _like_page_item(sources, request, pool, excluded)
        answered.append(Mode.SIMILAR if similar else Mode.FALLBACK)
        if similar:
            return similar
        return Candidates.of(sources.catalog, popular(sources.catalog, pool, category=category, exclude=excluded))

    ranked, notes = _ruled(plan, request.k, fetch)
    mode = answered[-1] if answered else Mode.FALLBACK
    return build(request.slot, mode, ranked, sources.models.version, reason=reason, labels=decision.labels(notes))


def _like_page_item(
    sources: Sources,
    request: FragmentRequest,
    pool: int,
    excluded: Collection[str],
    models: Models | None = None,
) -> Candidates:
    models = models or sources.models.models
    if models is None or request.item is None or not request.slot.startswith(CONTEXT_SLOT_PREFIX):
        return Candidates.empty(sources.catalog)
    return models.recs.similar(request.item, pool, excluded)


def _usable_profile(sources: Sources, pseudonym: str) -> Profile | Reason:
    """The visitor's profile, or the reason there is none to personalize from (never raises)."""
    try:
        stored = sources.profiles.get(pseudonym)
    except Exception as exc:
        logger.warning("profile read failed", extra={"error": type(exc).__name__})
        return Reason.PROFILE_UNAVAILABLE
    if stored is None:
        return Reason.NO_PROFILE
    if not stored.profile.personalization:
        return Reason.NO_PERSONALIZATION_CONSENT
    return stored.profile


def _popular_arm(variant: Variant | None) -> bool:
    return variant is not None and variant.strategy == "popular"


def _candidates(
    sources: Sources,
    models: Models | None,
    profile: Profile,
    pool: int,
    excluded: Collection[str],
    now_ms: int,
) -> Candidates:
    settings = sources.fold_settings
    catalog = sources.catalog
    if models is None:
        return Candidates.of(catalog, by_affinity(catalog, profile, now_ms, pool, settings, exclude=excluded))
    ranked = models.recs.recommend(profile, pool, excluded)
    if len(ranked) < pool:
        # A history of items the model does not know, or a short list: top up from the profile's categories.
        shown = set(ranked.ids())
        more = by_affinity(catalog, profile, now_ms, pool + len(shown), settings, exclude=excluded)
        ranked = ranked.then(Candidates.of(catalog, [s for s in more if s.item.id not in shown][: pool - len(ranked)]))
    return ranked


def for_person(request: FragmentRequest, sources: Sources) -> Fragment:
    """A person's fragment. The signed cookie's segment (of the live model version) is kept until another is
    clearly nearer (hysteresis), so the segment does not flip between requests."""
    decision = decide(sources, request)
    live = sources.models
    if live.error:
        return fallback(request, sources, live.error, decision)
    pseudonym = request.identity.pseudonym
    if pseudonym is None:
        return fallback(request, sources, Reason.ANONYMOUS, decision)
    profile = _usable_profile(sources, pseudonym)
    if isinstance(profile, Reason):
        return fallback(request, sources, profile, decision)
    models, model_version = live.models_for(decision.variant.model_version if decision.variant else None)
    segment = None
    if models is not None:
        # The cookie names a segment of the live version; an experiment's other version starts afresh.
        current = request.identity.segment if model_version == live.version else None
        predicted = models.segments.predict(
            feature_vector(profile, request.now_ms, sources.catalog, sources.fold_settings), current
        )
        segment = (predicted.name, predicted.id)
    # What the person said "not interested" to stays out for the configured time, rules or not.
    dismissed = dismissed_since(profile.dismissed, request.now_ms - sources.dismiss_ms)
    plan = _plan(decision, request, segment, profile.purchased, profile.cart.keys(), profile.seen, dismissed)
    # Without a rules document in force, what a person bought or has in the cart is never offered again.
    excluded = plan.excluded if plan else excluded_for(profile, dismissed)

    answered: list[Mode] = []  # what the last fetch took its candidates from (none: a curated list)

    def fetch(pool: int) -> Candidates:
        # On a because* slot the page item's neighbours come first, whatever the arm: the model answered.
        similar = _like_page_item(sources, request, pool, excluded, models)
        if similar:
            answered.append(Mode.PERSONALIZED)
            return similar
        if _popular_arm(decision.variant):
            # The arm's baseline, not the model: said so in the mode, so no reader takes it for the model's work.
            answered.append(Mode.EXPERIMENT)
            return Candidates.of(sources.catalog, popular(sources.catalog, pool, exclude=excluded))
        answered.append(Mode.PERSONALIZED)
        return _candidates(sources, models, profile, pool, excluded, request.now_ms)

    ranked, notes = _ruled(plan, request.k, fetch)
    mode = answered[-1] if answered else Mode.PERSONALIZED
    return build(
        request.slot,
        mode,
        ranked,
        model_version,
        segment=segment[0] if segment else None,
        segment_id=segment[1] if segment else None,
        labels=decision.labels(notes),
        strategy=decision.variant.strategy if mode is Mode.EXPERIMENT and decision.variant else None,
    )


def trending(request: FragmentRequest, sources: Sources) -> Fragment:
    """What is selling right now, the same for everyone (no identity read): the live aggregate's items the
    catalog knows, through the rules that need no person, topped up with popular items. When the aggregate
    cannot be read, the model's popularity answers, flagged `fallback; reason=trending_unavailable`."""
    shared = Decision(sources.rules)
    ranked: list[tuple[str, float]] | None = None
    if sources.trending is not None:
        try:
            ranked = sources.trending.ranked(request.now_ms)
        except TrendingUnavailable as exc:
            logger.warning("trending unavailable", extra={"error": str(exc)})
    if ranked is None:
        return fallback(request, sources, Reason.TRENDING_UNAVAILABLE, shared)
    plan = _plan(shared, request)
    excluded = plan.excluded if plan else frozenset()
    catalog = sources.catalog
    top = ranked[0][1] if ranked else 1.0

    def fetch(pool: int) -> Candidates:
        known = [
            Scored(catalog.by_id[item], score / top)
            for item, score in ranked
            if item in catalog.by_id and item not in excluded
        ][:pool]
        if len(known) < pool:
            # The aggregate's scores are relative to its top item; popular items fill in below them.
            shown = {s.item.id for s in known} | set(excluded)
            known += [Scored(s.item, s.score * 1e-3) for s in popular(catalog, pool - len(known), exclude=shown)]
        return Candidates.of(catalog, known)

    items, notes = _ruled(plan, request.k, fetch)
    return build(request.slot, Mode.TRENDING, items, sources.models.version, labels=shared.labels(notes))


def for_segment(request: FragmentRequest, sources: Sources) -> Fragment:
    """A segment slot: the segment's own best-sellers, the same for all its members (so the CDN can share it).

    A known visitor's segment comes from their profile, never from the signed cookie alone: the cookie lives a
    day, and a person who withdrew personalization consent or was erased since must not be targeted by it (no
    profile or no consent: the anonymous fragment). The cookie's segment is kept while the profile is not
    clearly nearer another (hysteresis). The cookie alone names the segment only for a visitor with
    no identity token. Only rules that need no person apply (segment, slot, journey and time scopes), and no
    experiment: the fragment is shared by everyone in the segment.
    """
    shared = Decision(sources.rules)
    live = sources.models
    if live.error or live.models is None:
        return fallback(request, sources, live.error or Reason.NO_SEGMENT_MODEL, shared)
    segments = live.models.segments
    known_segment = request.identity.segment
    segment_id = known_segment
    if request.identity.pseudonym is not None:
        profile = _usable_profile(sources, request.identity.pseudonym)
        if isinstance(profile, Reason):
            return fallback(request, sources, profile, shared)
        vector = feature_vector(profile, request.now_ms, sources.catalog, sources.fold_settings)
        segment_id = segments.predict(vector, known_segment).id
    if segment_id is None:
        return fallback(request, sources, Reason.ANONYMOUS, shared)
    segment = segments.segments.get(segment_id)
    name = segment.name if segment else f"segment {segment_id}"
    plan = _plan(shared, request, (name, segment_id))
    excluded = plan.excluded if plan else frozenset()

    def fetch(pool: int) -> Candidates:
        candidates = [s for s in segments.popular(segment_id, pool) if s.item.id not in excluded]
        if len(candidates) < pool:
            shown = {s.item.id for s in candidates} | set(excluded)
            candidates += popular(sources.catalog, pool - len(candidates), exclude=shown)
        return Candidates.of(sources.catalog, candidates)

    ranked, notes = _ruled(plan, request.k, fetch)
    return build(
        request.slot,
        Mode.SEGMENT,
        ranked,
        live.version,
        segment=name,
        segment_id=segment_id,
        labels=shared.labels(notes),
    )
