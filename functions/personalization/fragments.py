"""Fragments: what a page receives. HTML with every value escaped, JSON through a typed model."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from markupsafe import escape
from pydantic import BaseModel

from personalization.ranking import Scored


class Mode(StrEnum):
    """What answered a fragment: the one vocabulary of `X-Personalization`, the JSON `mode` and `data-mode`."""

    # The model (or the person's categories) for this person.
    PERSONALIZED = "personalized"
    # The same for every member of a segment: cacheable at the edge, keyed by the signed segment cookie.
    SEGMENT = "segment"
    # The model's items like the page item, for a visitor it cannot personalize for ("Because you viewed").
    SIMILAR = "similar"
    # A known person's experiment arm that answers without the model (the popular baseline).
    EXPERIMENT = "experiment"
    # What is selling right now (ingest's decayed activity), the same for everyone.
    TRENDING = "trending"
    FALLBACK = "fallback"


class Reason(StrEnum):
    """Why a fragment is not personal: the `reason=` of `X-Personalization`."""

    ANONYMOUS = "anonymous"
    NO_PROFILE = "no_profile"
    NO_PERSONALIZATION_CONSENT = "no_personalization_consent"
    PROFILE_UNAVAILABLE = "profile_unavailable"
    MODEL_UNAVAILABLE = "model_unavailable"
    UNKNOWN_FEATURE_SCHEMA = "unknown_feature_schema"
    NO_SEGMENT_MODEL = "no_segment_model"
    # The trending slot could not read the live aggregate: the model's popularity answered instead.
    TRENDING_UNAVAILABLE = "trending_unavailable"
    INTERNAL_ERROR = "internal_error"


# Reasons that mean something is broken (alarmed), as opposed to visitors serve simply does not know.
DEGRADED_REASONS = frozenset(
    {
        Reason.PROFILE_UNAVAILABLE,
        Reason.MODEL_UNAVAILABLE,
        Reason.UNKNOWN_FEATURE_SCHEMA,
        Reason.INTERNAL_ERROR,
        Reason.TRENDING_UNAVAILABLE,
    }
)
# A known visitor whose profile forbids segment targeting (their segment cookie is expired).
UNTARGETABLE_REASONS = frozenset({Reason.NO_PROFILE, Reason.NO_PERSONALIZATION_CONSENT})


class FragmentItem(BaseModel):
    id: str
    category: str | None
    price: float | None
    score: float


class Fragment(BaseModel):
    slot: str
    mode: Mode
    reason: Reason | None = None
    segment: str | None = None
    segment_id: int | None = None
    model_version: str
    rules_version: str = "none"
    experiment: str | None = None
    variant: str | None = None
    # What the rules did that a merchandiser may wonder about (a pin dropped because a filter excluded it).
    notes: list[str] = []
    # Mode.EXPERIMENT: the arm's strategy that answered instead of the model.
    strategy: str | None = None
    items: list[FragmentItem]

    def label(self) -> str:
        """`X-Personalization`: the mode, then what answered (similar, experiment) and why it is not personal."""
        parts = [self.mode.value]
        if self.mode is Mode.SIMILAR:
            parts.append("source=item")
        if self.mode is Mode.EXPERIMENT:
            parts.append(f"strategy={self.strategy}")
        if self.reason is not None:
            parts.append(f"reason={self.reason.value}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Labels:
    """Which rules and experiment variant shaped a fragment (response headers, impression events)."""

    rules_version: str = "none"
    experiment: str | None = None
    variant: str | None = None
    notes: tuple[str, ...] = ()


def build(
    slot: str,
    mode: Mode,
    ranked: list[Scored],
    model_version: str,
    reason: Reason | None = None,
    segment: str | None = None,
    segment_id: int | None = None,
    labels: Labels = Labels(),
    strategy: str | None = None,
) -> Fragment:
    return Fragment(
        slot=slot,
        mode=mode,
        reason=reason,
        strategy=strategy,
        segment=segment,
        segment_id=segment_id,
        model_version=model_version,
        rules_version=labels.rules_version,
        experiment=labels.experiment,
        variant=labels.variant,
        notes=list(labels.notes),
        items=[
            FragmentItem(id=s.item.id, category=s.item.category, price=s.item.price, score=round(s.score, 6))
            for s in ranked
        ],
    )


def render_html(fragment: Fragment) -> str:
    """The fragment as HTML, every value escaped by markupsafe (what an autoescaping jinja2 template calls).

    Written out rather than a jinja2 template: this one fixed shape cost every cold start jinja2's lexer, parser
    and compiler (its import and the template's compile at import), more than the rest of the rendering path.
    The output is byte-for-byte the template's (tests/unit/test_fragments_html.py renders both).
    """
    f = fragment
    parts = [
        f'<section class="pz-fragment" data-slot="{escape(f.slot)}" data-mode="{escape(f.mode.value)}" '
        f'data-rules-version="{escape(f.rules_version)}"'
    ]
    if f.variant:
        parts.append(f' data-variant="{escape(f.experiment)}:{escape(f.variant)}"')
    parts.append('>\n<ol class="pz-items">')
    for item in f.items:
        # quote leaves only letters, digits, "_.-~/" and %XX: nothing left for escape to change.
        parts.append(
            f'\n<li class="pz-item" data-item-id="{escape(item.id)}"><a href="/products/{quote(item.id, safe="/")}">'
            f"{escape(item.id)}</a>"
        )
        if item.category:
            parts.append(f' <span class="pz-category">{escape(item.category)}</span>')
        if item.price is not None:
            parts.append(f' <span class="pz-price">{item.price:.2f}</span>')
        parts.append("</li>")
    parts.append("\n</ol>\n</section>")
    return "".join(parts)


def render_json(fragment: Fragment) -> str:
    return fragment.model_dump_json()


def etag(body: str) -> str:
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
