"""The rules document: its rules, scopes and matches, validated once, with errors naming rule and field."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from personalization.context import DIMENSION_OF_FIELD, ContextScope, Daypart
from personalization.experiments import Experiment
from personalization.fatigue import SEEN_SHOWS

RULE_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
DAYPART_NAME = r"^[a-z0-9_-]{1,32}$"
DAY_MS = 24 * 3600 * 1000

NonEmptyStrings = Annotated[list[str], Field(min_length=1)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Scope(ContextScope):
    """Where and when a rule applies; a field left out (None) does not restrict. The viewer's context (devices,
    countries, dayparts, channels) comes from ContextScope, shared with experiments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A segment's name ("recent high-value buyers") or its id as a string ("3").
    segments: NonEmptyStrings | None = None
    slots: NonEmptyStrings | None = None
    journeys: NonEmptyStrings | None = None
    # "experiment_id:variant_name": how an experiment's variant switches rules on.
    variants: NonEmptyStrings | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _valid_window(self) -> Scope:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class Match(BaseModel):
    """Which items a rule means: an item matches when it meets every criterion given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: NonEmptyStrings | None = None
    # A category matches itself and its dotted descendants: "electronics" matches "electronics.smartphone".
    categories: NonEmptyStrings | None = None
    # Case-insensitive.
    brands: NonEmptyStrings | None = None
    # Inclusive; an item without a price never matches a price criterion.
    price_min: Finite | None = None
    price_max: Finite | None = None

    @model_validator(mode="after")
    def _some_criterion(self) -> Match:
        if all(value is None for value in (self.items, self.categories, self.brands, self.price_min, self.price_max)):
            raise ValueError("give at least one of items, categories, brands, price_min, price_max")
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise ValueError("price_min must not exceed price_max")
        return self


class _RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=RULE_ID_PATTERN)]
    description: Annotated[str, Field(max_length=500)] | None = None
    enabled: bool = True
    when: Scope = Scope()


def _unique(items: list[str]) -> list[str]:
    duplicates = sorted({item for item in items if items.count(item) > 1})
    if duplicates:
        raise ValueError(f"duplicate item(s): {', '.join(duplicates)}")
    return items


# An item listed twice in a pin or a curated list is a slip whose intent (which position?) is unknown.
UniqueItems = Annotated[list[str], Field(min_length=1), AfterValidator(_unique)]


class ExcludePurchased(_RuleBase):
    kind: Literal["exclude_purchased"]
    days: Annotated[int, Field(ge=1)]


class ExcludeSeen(_RuleBase):
    """Seen-item fatigue: items shown to the person at least `times` times within `days` days without their
    touching them (personalization.fatigue)."""

    kind: Literal["exclude_seen"]
    times: Annotated[int, Field(ge=1, le=SEEN_SHOWS)]
    days: Annotated[int, Field(ge=1)]


class ExcludeCart(_RuleBase):
    kind: Literal["exclude_cart"]


class Exclude(_RuleBase):
    kind: Literal["exclude"]
    match: Match


class Pin(_RuleBase):
    kind: Literal["pin"]
    items: UniqueItems
    position: Annotated[int, Field(ge=1)]


class Boost(_RuleBase):
    kind: Literal["boost"]
    match: Match
    # < 1 buries.
    factor: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Curated(_RuleBase):
    kind: Literal["curated"]
    items: UniqueItems


class Diversity(_RuleBase):
    kind: Literal["diversity"]
    max_per_category: Annotated[int, Field(ge=1)]
    top_k: Annotated[int, Field(ge=1)] | None = None


Rule = Annotated[
    ExcludePurchased | ExcludeSeen | ExcludeCart | Exclude | Pin | Boost | Curated | Diversity,
    Field(discriminator="kind"),
]
RULE_KINDS = frozenset(
    {"exclude_purchased", "exclude_seen", "exclude_cart", "exclude", "pin", "boost", "curated", "diversity"}
)


class RulesDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, Field(min_length=1, max_length=64)]
    # Named ranges of the visitor's local hours, for `when.dayparts`: {"morning": {"start": 6, "end": 12}}.
    dayparts: Annotated[dict[Annotated[str, Field(pattern=DAYPART_NAME)], Daypart], Field(max_length=12)] = {}
    rules: list[Rule]
    experiments: list[Experiment] = []

    # Hour 0-23 -> its daypart's name (or None): one index per request instead of a scan of the ranges.
    _daypart_of_hour: tuple[str | None, ...] = PrivateAttr(default=(None,) * 24)

    @model_validator(mode="after")
    def _consistent(self) -> RulesDocument:
        problems = _duplicates("rule", "rules", [rule.id for rule in self.rules])
        problems += _duplicates("experiment", "experiments", [experiment.id for experiment in self.experiments])
        problems += _unknown_variants(self.rules, self.experiments)
        problems += _overlapping_dayparts(self.dayparts)
        problems += _unknown_dayparts("rule", "rules", [(r.id, r.when.dayparts) for r in self.rules], self.dayparts)
        problems += _unknown_dayparts(
            "experiment", "experiments", [(e.id, e.dayparts) for e in self.experiments], self.dayparts
        )
        table: list[str | None] = [None] * 24
        for name, part in self.dayparts.items():
            for hour in part.hours():
                table[hour] = table[hour] or name
        self._daypart_of_hour = tuple(table)
        if problems:
            # A custom error carries the problems as a list, so parse_document reports each on its own.
            raise PydanticCustomError(
                "rules_document", "{summary}", {"problems": problems, "summary": "; ".join(problems)}
            )
        return self

    def daypart_at(self, hour: int | None) -> str | None:
        """The daypart a local hour falls in (dayparts never overlap), None outside all or when unknown."""
        return None if hour is None else self._daypart_of_hour[hour]

    def context_dimensions(self) -> frozenset[str]:
        """The cache key dimensions (personalization.context.DIMENSIONS) the enabled rules tell apart: what
        the edge must key shared fragments on. Experiments are left out: they only ever answer a known
        visitor, whose fragment is private."""
        return frozenset(
            DIMENSION_OF_FIELD[name]
            for rule in self.rules
            if rule.enabled
            for name in DIMENSION_OF_FIELD
            if getattr(rule.when, name) is not None
        )


def _overlapping_dayparts(dayparts: Mapping[str, Daypart]) -> list[str]:
    owner: dict[int, str] = {}
    problems = []
    for name, part in dayparts.items():
        clash = sorted({owner[hour] for hour in part.hours() if hour in owner})
        if clash:
            problems.append(f"dayparts.{name}: overlaps {', '.join(clash)} (an hour belongs to one daypart at most)")
        owner.update(dict.fromkeys(part.hours(), name))
    return problems


def _unknown_dayparts(
    noun: str, section: str, named: Sequence[tuple[str, list[str] | None]], dayparts: Mapping[str, Daypart]
) -> list[str]:
    problems = []
    for index, (entry_id, names) in enumerate(named):
        field = "when.dayparts" if section == "rules" else "dayparts"
        for position, name in enumerate(names or ()):
            if name not in dayparts:
                choices = ", ".join(dayparts) or "none: the document defines no dayparts"
                problems.append(
                    f"{noun} '{entry_id}' ({section}[{index}]) {field}[{position}]: "
                    f"'{name}' names no daypart of the document (defined: {choices})"
                )
    return problems


def _duplicates(noun: str, section: str, ids: Sequence[str]) -> list[str]:
    first: dict[str, int] = {}
    problems = []
    for index, name in enumerate(ids):
        if name in first:
            problems.append(f"{noun} '{name}' ({section}[{index}]) id: duplicate of {section}[{first[name]}]")
        first.setdefault(name, index)
    return problems


def _unknown_variants(rules: Sequence[_RuleBase], experiments: Sequence[Experiment]) -> list[str]:
    known = {experiment.key(variant) for experiment in experiments for variant in experiment.variants}
    problems = []
    for index, rule in enumerate(rules):
        for position, name in enumerate(rule.when.variants or ()):
            if name not in known:
                choices = ", ".join(sorted(known)) or "none: the document has no experiments"
                problems.append(
                    f"rule '{rule.id}' (rules[{index}]) when.variants[{position}]: "
                    f"'{name}' names no experiment variant (known: {choices})"
                )
    return problems


class RulesError(ValueError):
    """A rules document that cannot be used; `problems` name the rule (or experiment) and the field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"invalid rules document ({count}): " + "; ".join(problems))


def parse_document(data: bytes | str | Mapping[str, Any]) -> RulesDocument:
    raw: Any = data
    if isinstance(data, bytes | str):
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError) as error:  # bad JSON or bytes, an int past 4,300 digits, deep nesting
            raise RulesError([f"document: not valid JSON: {str(error)[:200]}"]) from None
    elif isinstance(data, Mapping):
        raw = dict(data)
    try:
        return RulesDocument.model_validate(raw)
    except ValidationError as error:
        raise RulesError(_problems(error, raw)) from None


def _problems(error: ValidationError, raw: Any) -> list[str]:
    problems: list[str] = []
    for detail in error.errors():
        context = detail.get("ctx") or {}
        if detail["type"] == "rules_document":
            problems += context["problems"]
            continue
        message = detail["msg"].removeprefix("Value error, ")
        problems.append(f"{_where(detail['loc'], raw)}: {message}")
    return problems


def _where(loc: tuple[int | str, ...], raw: Any) -> str:
    """'rule 'boost-sofas' (rules[3]) factor' from ('rules', 3, 'boost', 'factor'), the raw input's id if any."""
    if len(loc) >= 2 and loc[0] in ("rules", "experiments") and isinstance(loc[1], int):
        section, index = str(loc[0]), loc[1]
        rest = loc[2:]
        if section == "rules" and rest and rest[0] in RULE_KINDS:
            rest = rest[1:]  # the discriminator's tag, not a field
        label = _label(section, index, raw)
        return f"{label} {_path(rest)}" if rest else label
    return _path(loc) or "document"


def _label(section: str, index: int, raw: Any) -> str:
    noun = "rule" if section == "rules" else "experiment"
    entries = raw.get(section) if isinstance(raw, Mapping) else None
    entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
    name = entry.get("id") if isinstance(entry, Mapping) else None
    return f"{noun} '{name}' ({section}[{index}])" if isinstance(name, str) else f"{section}[{index}]"


def _path(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
