"""A/B experiments: which variant a person sees, decided the same way in every process, with no stored state.

A person's variant is a pure function of the experiment id and their pseudonym (sha256, never Python's
`hash()`, which is salted per process), so every Lambda container, the CDN-cached fragment and the offline
analysis agree without a lookup table. Different experiments hash different strings, so assignments in one
say nothing about assignments in another.

Which experiment a request takes part in: `active_experiment` returns the FIRST experiment, in document
order, that covers the slot (it lists the slot, or names no slots) and whose [start, end) window holds the
request's time. One experiment per slot and request keeps the analysis clean: an exposure belongs to one
experiment only. A variant then switches the model (`model_version`, `strategy`) and, through rules scoped
to "experiment_id:variant_name" (see rules.py), the business rules.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from personalization.context import UNKNOWN, ContextScope, RequestContext

NAME_PATTERN = r"^[a-z0-9_-]{1,32}$"
# Shares are typed by people ("0.333"); a millionth is loose enough for thirds, tight enough to catch typos.
SHARE_TOLERANCE = 1e-6
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Name = Annotated[str, Field(pattern=NAME_PATTERN)]


def to_ms(moment: datetime) -> int:
    # Integer arithmetic on the timedelta: timestamp() goes through a float and can be a millisecond off.
    return (moment - EPOCH) // timedelta(milliseconds=1)


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    share: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
    # The model version serve uses for this variant; None: the published one.
    model_version: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    # "popular": the non-personal baseline, the usual control arm against the model.
    strategy: Literal["model", "popular"] | None = None


class Experiment(ContextScope):
    """An A/B test on some slots; it may target a viewer context too (devices, countries, dayparts, channels),
    so that, say, only mobile visitors in the morning take part."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Name
    # None: every slot.
    slots: Annotated[list[str], Field(min_length=1)] | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    variants: list[Variant]

    _start_ms: int | None = PrivateAttr(default=None)
    _end_ms: int | None = PrivateAttr(default=None)

    @field_validator("variants")
    @classmethod
    def _valid_split(cls, variants: list[Variant]) -> list[Variant]:
        if len(variants) < 2:
            raise ValueError("an experiment needs at least 2 variants")
        names = [v.name for v in variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate variant name(s): {', '.join(duplicates)}")
        total = math.fsum(v.share for v in variants)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise ValueError(f"variant shares must sum to 1, not {total:g}")
        return variants

    @model_validator(mode="after")
    def _valid_window(self) -> Experiment:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        self._start_ms = None if self.start is None else to_ms(self.start)
        self._end_ms = None if self.end is None else to_ms(self.end)
        return self

    def covers(self, slot: str, now_ms: int, context: RequestContext = UNKNOWN, daypart: str | None = None) -> bool:
        """Whether a request for `slot` at `now_ms` takes part: the slot is in scope, start <= now < end and
        the viewer's context (`daypart`: the document's name for the viewer's local hour) is targeted."""
        if self.slots is not None and slot not in self.slots:
            return False
        if self._start_ms is not None and now_ms < self._start_ms:
            return False
        if self._end_ms is not None and now_ms >= self._end_ms:
            return False
        return self.admits_context(context, daypart)

    def key(self, variant: Variant) -> str:
        """How rules name a variant in `when.variants`, and what serve puts in RuleRequest.variants."""
        return f"{self.id}:{variant.name}"


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: Experiment
    variant: Variant

    @property
    def key(self) -> str:
        return self.experiment.key(self.variant)


def bucket(experiment_id: str, pseudonym: str) -> float:
    """A point in [0, 1), uniform over pseudonyms and independent between experiments."""
    digest = hashlib.sha256(f"{experiment_id}:{pseudonym}".encode()).digest()
    # The first 8 bytes over 2**64, truncated to the 53 bits a float holds: dividing the full 64-bit integer
    # rounds to nearest and gives exactly 1.0 for the top 2**10 values, outside every variant's range.
    return (int.from_bytes(digest[:8], "big") >> 11) / 2**53


def assign(experiment: Experiment, pseudonym: str) -> Variant:
    """The variant whose cumulative share range, in the document's order, holds the person's bucket."""
    point = bucket(experiment.id, pseudonym)
    cumulative = 0.0
    for variant in experiment.variants:
        cumulative += variant.share
        if point < cumulative:
            return variant
    # Shares may sum to a hair under 1 (SHARE_TOLERANCE): the gap belongs to the last variant.
    return experiment.variants[-1]


def active_experiment(
    experiments: Sequence[Experiment],
    slot: str,
    now_ms: int,
    context: RequestContext = UNKNOWN,
    daypart: str | None = None,
) -> Experiment | None:
    """The first experiment in document order that covers the slot, whose [start, end) holds now and which
    targets the viewer's context (or none)."""
    return next((experiment for experiment in experiments if experiment.covers(slot, now_ms, context, daypart)), None)


def assignment(experiments: Sequence[Experiment], slot: str, now_ms: int, pseudonym: str) -> Assignment | None:
    """The active experiment for the slot and the person's variant in it, or None when none runs."""
    experiment = active_experiment(experiments, slot, now_ms)
    return None if experiment is None else Assignment(experiment, assign(experiment, pseudonym))
