"""Request-time business rules: a JSON document merchandisers edit, checked once, compiled against the catalog
once, then applied to every request in microseconds.

    document = parse_document(raw)                  # RulesError lists every problem, naming rule and field
    engine = RuleEngine(document, catalog)          # per catalog: item sets resolved through indexes
    plan = engine.plan(request)                     # per request: the active rules and the excluded items
    model_candidates(k=plan.pool_size(k), exclude=plan.excluded)   # serve: mask BEFORE scoring
    ruled = plan.apply(candidates, k)               # at most k items, with notes and the rules that acted

A rule is active for a request when it is enabled, every scope it names matches (segment name or id, slot,
journey, experiment variant) and start <= now < end.

Priority order and conflict resolution (docs/rules.md says the same for merchandisers):

1. Filters win over everything. exclude_purchased, exclude_cart and exclude remove items wherever they come
   from: the model's candidates, serve's popularity fallback, a curated list or a pin. A dropped pinned or
   curated item gets a note naming both rules ("pin 'summer' item 123 dropped: excluded by 'exclude-cart'");
   when several filters exclude an item, the note names the first in document order.
2. curated replaces the candidates. The first active curated rule in document order wins; later active ones
   are noted as ignored. Its items score 1.0 down to 1/n in their listed order, so boosts can still reorder
   them, and the diversity cap and pins still apply.
3. boost multiplies an item's score by its factor (several matching boosts multiply); a negative score is
   divided by it instead, so a boost (factor > 1) never lowers an item and a bury (factor < 1) never raises
   it. Then a stable re-sort by score descending, id ascending. Duplicate candidates keep their best score.
4. diversity: at most max_per_category items of one category among the first top_k recommended (non-pinned)
   items, or among all of them when top_k is omitted, counting every eligible pinned item of the category
   wherever it is pinned (the count then does not depend on k, and a pin never gives its category an extra
   place). Pins win: a pin is placed even when its category is full. An item over the cap is passed over:
   when top_k is shorter than the list, the items passed over come back right after the top_k-th recommended
   item, in rank order; otherwise, or when the window cannot be filled without them, they are left out: the
   cap always holds, and the list is shorter instead (serve asks the model for a larger pool to make that
   rare). The strictest active diversity rule applies (smallest cap, then document order); the others are
   noted as ignored. Items without a category are never capped. As the window counts recommended items, pins
   never shrink it: the cap also holds over the first top_k positions of the output.
5. pin places its items last, at position, position + 1, ... (its excluded items dropped first). Pins claim
   positions in document order; a position claimed already goes to the next free one, and an item pinned
   twice keeps its first place. The list is built in full, then cut to k: when the recommended items run out
   before a pin's position, the pin goes to the end (pins keep their order); a pin within the top k is always
   shown; one past k is not (noted).

So the output never holds more than k items nor the same item twice, and its length is min(k, eligible pins +
the recommended items that the filters and the diversity cap admit). RuledList.applied lists every rule that
removed, re-scored, placed or passed over an item of this list, or replaced it (curated).
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter, mul
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from personalization.catalog import Catalog, CatalogItem
from personalization.experiments import Experiment, to_ms
from personalization.ranking import Scored

RULE_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
DAY_MS = 24 * 3600 * 1000
# serve never asks the model for more: past a few hundred candidates the rules' cost outgrows their gain.
POOL_CAP = 200
# Distinct (slot, journey, segment, variants, time window) combinations the rules tell apart; bounded so that
# a flood of made-up journeys cannot grow it (values no rule names share one entry anyway).
SELECTION_CACHE_SIZE = 1024

NonEmptyStrings = Annotated[list[str], Field(min_length=1)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


# -- the document ------------------------------------------------------------------------------------------


class Scope(BaseModel):
    """Where and when a rule applies; a field left out (None) does not restrict."""

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
    ExcludePurchased | ExcludeCart | Exclude | Pin | Boost | Curated | Diversity, Field(discriminator="kind")
]
RULE_KINDS = frozenset({"exclude_purchased", "exclude_cart", "exclude", "pin", "boost", "curated", "diversity"})


class RulesDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, Field(min_length=1, max_length=64)]
    rules: list[Rule]
    experiments: list[Experiment] = []

    @model_validator(mode="after")
    def _consistent(self) -> RulesDocument:
        problems = _duplicates("rule", "rules", [rule.id for rule in self.rules])
        problems += _duplicates("experiment", "experiments", [experiment.id for experiment in self.experiments])
        problems += _unknown_variants(self.rules, self.experiments)
        if problems:
            # A custom error carries the problems as a list, so parse_document reports each on its own.
            raise PydanticCustomError(
                "rules_document", "{summary}", {"problems": problems, "summary": "; ".join(problems)}
            )
        return self


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


# -- per request -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleRequest:
    slot: str
    journey: str | None
    segment: str | None
    segment_id: int | None
    # "experiment_id:variant_name" of every experiment the person takes part in on this request.
    variants: frozenset[str]
    now_ms: int
    # item -> purchase time (ms), as the profile keeps it.
    purchased: Mapping[str, int]
    cart: Collection[str]


@dataclass(frozen=True, slots=True)
class RuledList:
    items: list[Scored]
    # Why something the rules asked for did not happen (a pin dropped, a curated rule ignored, ...).
    notes: list[str]
    # The rules that changed this list (see the module doc), in document order: for exposure logs and debugging.
    applied: list[str]


class Exclusions(AbstractSet[str]):
    """Every item excluded for a request, without copying the catalog-wide part (an excluded category can
    hold thousands of items) per request: membership tests both parts, iteration yields each id once."""

    __slots__ = ("personal", "static")

    def __init__(self, static: frozenset[str], personal: frozenset[str]) -> None:
        # The same frozenset object for every request with the same active rules: serve may cache by identity.
        self.static = static
        # Bought within the window, in the cart.
        self.personal = personal

    def __contains__(self, item: object) -> bool:
        return item in self.personal or item in self.static

    def __iter__(self) -> Iterator[str]:
        yield from self.static
        yield from (item for item in self.personal if item not in self.static)

    def __len__(self) -> int:
        return len(self.static) + sum(1 for item in self.personal if item not in self.static)


class _Key(NamedTuple):
    slot: str | None
    journey: str | None
    segment: str | None
    segment_id: str | None
    variants: frozenset[str]
    epoch: int


@dataclass(frozen=True, slots=True)
class _Scope:
    segments: frozenset[str] | None
    slots: frozenset[str] | None
    journeys: frozenset[str] | None
    variants: frozenset[str] | None
    start_ms: int | None
    end_ms: int | None

    @classmethod
    def of(cls, scope: Scope) -> _Scope:
        def maybe(values: list[str] | None) -> frozenset[str] | None:
            return None if values is None else frozenset(values)

        return cls(
            maybe(scope.segments),
            maybe(scope.slots),
            maybe(scope.journeys),
            maybe(scope.variants),
            None if scope.start is None else to_ms(scope.start),
            None if scope.end is None else to_ms(scope.end),
        )

    def admits(self, key: _Key, now_ms: int) -> bool:
        if self.slots is not None and key.slot not in self.slots:
            return False
        if self.journeys is not None and key.journey not in self.journeys:
            return False
        if self.segments is not None and key.segment not in self.segments and key.segment_id not in self.segments:
            return False
        if self.variants is not None and self.variants.isdisjoint(key.variants):
            return False
        if self.start_ms is not None and now_ms < self.start_ms:
            return False
        return self.end_ms is None or now_ms < self.end_ms


@dataclass(frozen=True, slots=True)
class _PinSpec:
    rule_id: str
    position: int
    items: tuple[CatalogItem, ...]


# (enabled boost's index, factor, rule id) for each boost an item matches; items with the same entries share one.
Signature = tuple[tuple[int, float, str], ...]
# (claimed position, pin rule id, item)
Placed = tuple[int, str, CatalogItem]

_SCORE = attrgetter("score")
_ID = attrgetter("item.id")


@dataclass(frozen=True, slots=True)
class _Boosts:
    """The catalog's boost signatures: most items share theirs with many others (same brand, category, price)."""

    of_item: Mapping[str, int]
    signatures: Sequence[Signature]


class _Factors(dict[int | None, float]):
    """Signature -> the product of the active boosts' factors, computed the first time a candidate shows it."""

    def __init__(self, boosts: _Boosts, active: frozenset[int]) -> None:
        super().__init__({None: 1.0})
        self.of_item = boosts.of_item
        self._signatures = boosts.signatures
        self._active = active
        self.rule_ids: dict[int | None, tuple[str, ...]] = {None: ()}

    def __missing__(self, signature: int | None) -> float:
        factor = 1.0
        rule_ids = []
        for index, rule_factor, rule_id in () if signature is None else self._signatures[signature]:
            if index in self._active:
                factor *= rule_factor
                rule_ids.append(rule_id)
        self.rule_ids[signature] = tuple(rule_ids) if factor != 1.0 else ()
        self[signature] = factor
        return factor


@dataclass(frozen=True, slots=True)
class _Selection:
    """What the active rules amount to for one (slot, journey, segment, variants, time window): cached."""

    rule_ids: tuple[str, ...]
    # (rule id, window ms), document order; the longest window decides what is excluded.
    purchase_windows: tuple[tuple[str, int], ...]
    longest_purchase_ms: int | None
    cart_rule: str | None
    excludes: tuple[tuple[str, frozenset[str]], ...]
    static: frozenset[str]
    factors: _Factors | None
    pins: tuple[_PinSpec, ...]
    pin_ids: frozenset[str]
    # (rule id, its items scored 1.0 down to 1/n)
    curated: tuple[str, tuple[Scored, ...]] | None
    # The curated list as arrays (ids, scores), built once per selection instead of read off its objects on
    # every request.
    curated_arrays: tuple[tuple[str, ...], list[float]] | None
    # (rule id, max per category, top_k)
    diversity: tuple[str, int, int | None] | None
    notes: tuple[str, ...]
    # The pins as resolved against the static exclusions alone: every request whose personal exclusions miss
    # the pinned items shares it.
    resolved_pins: list[tuple[list[Placed], list[str], list[str]]] = field(default_factory=list)


class RulePlan:
    """The rules in force for one request. Build it before asking the model: `excluded` goes into its mask."""

    __slots__ = ("_cart", "_now_ms", "_order", "_purchased", "_selection", "excluded")

    def __init__(self, selection: _Selection, request: RuleRequest, order: Mapping[str, int]) -> None:
        self._selection = selection
        self._order = order
        self._now_ms = request.now_ms
        self._purchased = request.purchased
        self._cart = frozenset(request.cart) if selection.cart_rule is not None else frozenset()
        personal = self._cart
        longest = selection.longest_purchase_ms
        if longest is not None and request.purchased:
            cutoff = request.now_ms - longest
            personal = personal.union([item for item, ts in request.purchased.items() if ts >= cutoff])
        self.excluded = Exclusions(selection.static, personal)

    @property
    def rule_ids(self) -> list[str]:
        """The active rules, in document order."""
        return list(self._selection.rule_ids)

    @property
    def curated_items(self) -> list[CatalogItem] | None:
        """The curated list that replaces the candidates (before exclusions; apply() filters it), or None."""
        curated = self._selection.curated
        return None if curated is None else [scored.item for scored in curated[1]]

    def pool_size(self, k: int) -> int:
        """How many candidates to ask the model for: 0 under a curated list (the model is not needed)."""
        selection = self._selection
        if selection.curated is not None:
            return 0
        room = k + len(selection.pin_ids)
        if selection.factors is not None or selection.diversity is not None:
            # Room for what a boost lifts or a cap passes over from below the top k.
            room += 2 * k
        return min(room, max(POOL_CAP, k))

    def excluded_by(self, item_id: str) -> str | None:
        """The first rule, in document order, that excludes the item for this request."""
        selection = self._selection
        found: list[str] = []
        ts = self._purchased.get(item_id)
        if ts is not None:
            for rule, window in selection.purchase_windows:
                if ts >= self._now_ms - window:
                    found.append(rule)
                    break
        if item_id in self._cart and selection.cart_rule is not None:
            found.append(selection.cart_rule)
        for rule, ids in selection.excludes:
            if item_id in ids:
                found.append(rule)
                break
        return min(found, key=self._order.__getitem__) if found else None

    def apply(self, candidates: Sequence[Scored], k: int) -> RuledList:
        """At most k items: filters, then curated, boosts, the diversity cap and pins (see the module doc)."""
        if k <= 0:
            return RuledList([], [], [])
        selection = self._selection
        pins, pin_notes, pins_removed = self._pins()
        notes = [*selection.notes, *pin_notes]
        acted: set[str] = set()
        if selection.curated is not None:
            acted.add(selection.curated[0])
            candidates = selection.curated[1]
        ranking, removed, pin_scores = self._rank(candidates, acted, selection.curated_arrays)
        if removed or pins_removed:
            self._credit_filters({*removed, *pins_removed}, notes, acted)
        fill = self._fill(ranking, pins, k, notes, acted)
        items = _merge(pins, fill, ranking, k, pin_scores, notes, acted)
        return RuledList(items, notes, sorted(acted, key=self._order.__getitem__))

    def _pins(self) -> tuple[list[Placed], list[str], list[str]]:
        """Every eligible pinned item by claimed position, the notes on the others, and the excluded ones."""
        selection = self._selection
        if not selection.pins:
            return [], [], []
        if not self.excluded.personal.isdisjoint(selection.pin_ids):
            return self._resolve_pins()
        if not selection.resolved_pins:
            selection.resolved_pins.append(self._resolve_pins())
        return selection.resolved_pins[0]

    def _resolve_pins(self) -> tuple[list[Placed], list[str], list[str]]:
        placed: list[Placed] = []
        notes: list[str] = []
        removed: list[str] = []
        taken: set[int] = set()
        owner: dict[str, str] = {}
        for pin in self._selection.pins:
            position = pin.position
            for item in pin.items:
                if item.id in self.excluded:
                    removed.append(item.id)
                    notes.append(
                        f"pin '{pin.rule_id}' item {item.id} dropped: excluded by '{self.excluded_by(item.id)}'"
                    )
                elif item.id in owner:
                    notes.append(f"pin '{pin.rule_id}' item {item.id} dropped: already pinned by '{owner[item.id]}'")
                else:
                    # Claimed in document order: a position already taken goes to the next free one.
                    while position in taken:
                        position += 1
                    taken.add(position)
                    owner[item.id] = pin.rule_id
                    placed.append((position, pin.rule_id, item))
                    position += 1
        placed.sort(key=itemgetter(0))
        return placed, notes, removed

    def _rank(
        self, candidates: Sequence[Scored], acted: set[str], arrays: tuple[Sequence[str], list[float]] | None = None
    ) -> tuple[_Ranking, frozenset[str], dict[str, float]]:
        """The candidates once each (best score), boosted, ordered without excluded and pinned items; what the
        filters removed; the pinned items' own scores. Whole-list operations (map, set algebra, sort by an index
        key) keep Python-level work per candidate to a minimum: this runs on every request. `arrays` are the
        candidates' ids and scores when already at hand (a curated list's); neither is modified."""
        if arrays is None:
            ids: Sequence[str] = list(map(_ID, candidates))
            scores = list(map(_SCORE, candidates))
        else:
            ids, scores = arrays
        present = set(ids)
        if len(present) != len(ids):
            candidates, ids, scores = _best_of_each(candidates, ids, scores)
        # set & set walks the smaller side: the personal exclusions and the pins are usually a handful.
        removed = frozenset(present & self.excluded.static | present & self.excluded.personal)
        if self._selection.factors is not None:
            scores = self._boosted(self._selection.factors, ids, scores, acted)
        pinned = present & self._selection.pin_ids
        dropped = removed | pinned
        # One dict of positions instead of a list.index scan per dropped item (a dozen of them cost ~20 us).
        where = dict(zip(ids, range(len(ids)), strict=True)) if dropped else {}
        pin_scores = {item_id: scores[where[item_id]] for item_id in pinned}
        return _Ranking(candidates, scores, _order(ids, scores, dropped, where)), removed, pin_scores

    @staticmethod
    def _boosted(factors: _Factors, ids: Sequence[str], scores: list[float], acted: set[str]) -> list[float]:
        signatures = list(map(factors.of_item.get, ids))
        multipliers = list(map(factors.__getitem__, signatures))
        acted.update(*map(factors.rule_ids.__getitem__, set(signatures)))
        if min(scores, default=0.0) >= 0:
            return list(map(mul, scores, multipliers))
        # Dividing a negative score keeps the promise that a boost lifts and a bury lowers.
        return [s * f if s >= 0 else s / f for s, f in zip(scores, multipliers, strict=True)]

    def _credit_filters(self, removed: set[str], notes: list[str], acted: set[str]) -> None:
        """Every filter that excluded something this list would have held counts as applied."""
        selection = self._selection
        hit = frozenset(removed)
        if selection.curated is not None:
            rule_id = selection.curated[0]
            curated_ids = selection.curated_arrays[0] if selection.curated_arrays else ()
            # In the list's order; `hit` is the small side, so look each listed id up in it.
            notes += [
                f"curated '{rule_id}' item {item_id} dropped: excluded by '{self.excluded_by(item_id)}'"
                for item_id in curated_ids
                if item_id in hit
            ]
        if selection.cart_rule is not None and not self._cart.isdisjoint(hit):
            acted.add(selection.cart_rule)
        bought = [ts for item_id, ts in self._purchased.items() if item_id in hit]
        for rule_id, window in selection.purchase_windows:
            if bought and max(bought) >= self._now_ms - window:
                acted.add(rule_id)
        acted.update(rule_id for rule_id, ids in selection.excludes if not ids.isdisjoint(hit))

    def _fill(self, ranking: _Ranking, pins: list[Placed], k: int, notes: list[str], acted: set[str]) -> list[int]:
        """The recommended (non-pinned) items that can be shown, in order, under the diversity cap."""
        # Pins claiming a place in the top k are shown whatever comes; the others only if the list runs short.
        need = k - sum(1 for position, _, _ in pins if position <= k)
        order = ranking.order
        diversity = self._selection.diversity
        if diversity is None:
            return order[:need]
        rule_id, cap, top_k = diversity
        window = need if top_k is None else min(top_k, need)
        counts: dict[str, int] = {}
        for _, _, item in pins:
            if item.category is not None:
                counts[item.category] = counts.get(item.category, 0) + 1
        fill: list[int] = []
        passed: list[int] = []
        candidates = ranking.candidates
        looked = 0
        for index in order:
            if len(fill) == window:
                break
            looked += 1
            category = candidates[index].item.category
            if category is not None:
                count = counts.get(category, 0)
                if count >= cap:
                    passed.append(index)
                    continue
                counts[category] = count + 1
            fill.append(index)
        if len(fill) == window < need:
            # The window is full: what it passed over ranks above everything not yet looked at.
            fill += (passed + order[looked:])[: need - window]
            if passed:
                notes.append(f"diversity '{rule_id}' moved {len(passed)} item(s) below the top {window}")
        elif passed:
            notes.append(f"diversity '{rule_id}' left out {len(passed)} item(s) over {cap} per category")
        if passed:
            acted.add(rule_id)
        return fill


@dataclass(frozen=True, slots=True)
class _Ranking:
    """The candidates, their boosted scores, and the order to show them in (indices into both)."""

    # As given: a candidate's item is read only if it is shown or reaches the diversity cap.
    candidates: Sequence[Scored]
    # Boosted.
    scores: list[float]
    order: list[int]


def _best_of_each(
    candidates: Sequence[Scored], ids: Sequence[str], scores: list[float]
) -> tuple[list[Scored], list[str], list[float]]:
    """A candidate listed twice keeps its best score."""
    best: dict[str, Scored] = {}
    for scored in candidates:
        kept = best.get(scored.item.id)
        if kept is None or scored.score > kept.score:
            best[scored.item.id] = scored
    return list(best.values()), list(best), [scored.score for scored in best.values()]


def _order(ids: Sequence[str], scores: list[float], dropped: AbstractSet[str], where: Mapping[str, int]) -> list[int]:
    """Indices by score descending, then id ascending, without the dropped items (ids are distinct).

    Sorting indices by a list's __getitem__ compares plain floats: several times faster than sorting (score, id)
    tuples. A reverse sort is stable too, so an id sort first orders equal scores; it runs only on a tie."""
    keys = scores.copy()
    for item_id in dropped:
        keys[where[item_id]] = -math.inf  # sorts last, then cut off
    order = list(range(len(ids)))
    if len(set(keys)) - (1 if dropped else 0) < len(ids) - len(dropped):
        order.sort(key=ids.__getitem__)
    order.sort(key=keys.__getitem__, reverse=True)
    return order[: len(ids) - len(dropped)]


def _merge(
    pins: list[Placed],
    fill: list[int],
    ranking: _Ranking,
    k: int,
    pin_scores: Mapping[str, float],
    notes: list[str],
    acted: set[str],
) -> list[Scored]:
    """Pins at their claimed positions, recommended items around them, pins past the end closing the list;
    then cut to k."""
    merged: list[Scored] = []
    pin_index = fill_index = 0
    while len(merged) < k and (pin_index < len(pins) or fill_index < len(fill)):
        if pin_index < len(pins) and (pins[pin_index][0] == len(merged) + 1 or fill_index == len(fill)):
            _, rule_id, item = pins[pin_index]
            merged.append(Scored(item, pin_scores.get(item.id, 0.0)))
            acted.add(rule_id)
            pin_index += 1
        else:
            index = fill[fill_index]
            given = ranking.candidates[index]
            score = ranking.scores[index]
            merged.append(given if given.score == score else Scored(given.item, score))
            fill_index += 1
    for position, rule_id, item in pins[pin_index:]:
        notes.append(f"pin '{rule_id}' item {item.id} not shown: position {position} is past the {k} shown")
    return merged


# -- compiling against the catalog -------------------------------------------------------------------------


class _CatalogIndex:
    """Catalog lookups by category prefix, brand and price, so a rule's items resolve without a full scan."""

    def __init__(self, catalog: Catalog) -> None:
        self.by_id = catalog.by_id
        self.ids = frozenset(catalog.by_id)
        self.by_category = {category: frozenset(i.id for i in items) for category, items in catalog.by_category.items()}
        self.under: dict[str, list[str]] = {}
        for category in self.by_category:
            parts = category.split(".")
            for depth in range(1, len(parts) + 1):
                self.under.setdefault(".".join(parts[:depth]), []).append(category)
        self.by_brand: dict[str, set[str]] = {}
        for item in catalog.items:
            if item.brand:
                self.by_brand.setdefault(item.brand.lower(), set()).add(item.id)
        priced = sorted((item.price, item.id) for item in catalog.items if item.price is not None)
        self.prices = [price for price, _ in priced]
        self.priced_ids = [item_id for _, item_id in priced]
        self._memo: dict[str, frozenset[str]] = {}

    def resolve(self, match: Match) -> frozenset[str]:
        key = match.model_dump_json()
        if key not in self._memo:
            self._memo[key] = self._resolve(match)
        return self._memo[key]

    def _resolve(self, match: Match) -> frozenset[str]:
        narrowing: list[frozenset[str]] = []
        if match.items is not None:
            narrowing.append(self.ids.intersection(match.items))
        if match.categories is not None:
            narrowing.append(
                frozenset[str]().union(*(self.by_category[c] for p in match.categories for c in self.under.get(p, ())))
            )
        if match.brands is not None:
            narrowing.append(frozenset[str]().union(*(self.by_brand.get(brand.lower(), ()) for brand in match.brands)))
        low = -math.inf if match.price_min is None else match.price_min
        high = math.inf if match.price_max is None else match.price_max
        if narrowing:
            narrowing.sort(key=len)
            found = narrowing[0].intersection(*narrowing[1:])
            if match.price_min is None and match.price_max is None:
                return found
            return frozenset(i for i in found if (price := self.by_id[i].price) is not None and low <= price <= high)
        # Price alone: a slice of the price-sorted catalog.
        first, last = bisect.bisect_left(self.prices, low), bisect.bisect_right(self.prices, high)
        return frozenset(self.priced_ids[first:last])


class RuleEngine:
    """A rules document compiled against one catalog: rebuild it when either changes."""

    def __init__(self, document: RulesDocument, catalog: Catalog, cache_size: int = SELECTION_CACHE_SIZE) -> None:
        self.document = document
        self.warnings: list[str] = []
        index = _CatalogIndex(catalog)
        self._rules = [(rule, _Scope.of(rule.when)) for rule in document.rules if rule.enabled]
        self._order = {rule.id: position for position, rule in enumerate(document.rules)}
        self._matched = {
            rule.id: self._resolve(rule.id, rule.match, index)
            for rule, _ in self._rules
            if isinstance(rule, Exclude | Boost)
        }
        self._listed = {
            rule.id: self._known(rule.id, rule.items, catalog)
            for rule, _ in self._rules
            if isinstance(rule, Pin | Curated)
        }
        self._boosts = self._signatures()
        self._bounds = sorted(
            {ms for _, scope in self._rules for ms in (scope.start_ms, scope.end_ms) if ms is not None}
        )
        scopes = [scope for _, scope in self._rules]
        self._slots = frozenset[str]().union(*(scope.slots or () for scope in scopes))
        self._journeys = frozenset[str]().union(*(scope.journeys or () for scope in scopes))
        self._segments = frozenset[str]().union(*(scope.segments or () for scope in scopes))
        self._variants = frozenset[str]().union(*(scope.variants or () for scope in scopes))
        self._cache: dict[_Key, _Selection] = {}
        self._cache_size = cache_size

    @property
    def version(self) -> str:
        return self.document.version

    @property
    def experiments(self) -> list[Experiment]:
        return self.document.experiments

    def plan(self, request: RuleRequest) -> RulePlan:
        key = self._key(request)
        selection = self._cache.get(key)
        if selection is None:
            selection = self._select(key, request.now_ms)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            if self._cache_size > 0:
                self._cache[key] = selection
        return RulePlan(selection, request, self._order)

    def _key(self, request: RuleRequest) -> _Key:
        """The request as far as scopes can tell it apart: names no rule uses all look alike."""
        segment_id = None if request.segment_id is None else str(request.segment_id)
        return _Key(
            request.slot if request.slot in self._slots else None,
            request.journey if request.journey in self._journeys else None,
            request.segment if request.segment in self._segments else None,
            segment_id if segment_id in self._segments else None,
            request.variants & self._variants,
            # Between two consecutive start/end instants, no rule's window opens or closes.
            bisect.bisect_right(self._bounds, request.now_ms),
        )

    def _select(self, key: _Key, now_ms: int) -> _Selection:
        positions = [position for position, (_, scope) in enumerate(self._rules) if scope.admits(key, now_ms)]
        active = [self._rules[position][0] for position in positions]
        curated = [rule for rule in active if isinstance(rule, Curated)]
        diversity = sorted(
            (rule for rule in active if isinstance(rule, Diversity)),
            key=lambda rule: (rule.max_per_category, self._order[rule.id]),
        )
        excludes = tuple((rule.id, self._matched[rule.id]) for rule in active if isinstance(rule, Exclude))
        boosts = frozenset(position for position in positions if isinstance(self._rules[position][0], Boost))
        windows = tuple((rule.id, rule.days * DAY_MS) for rule in active if isinstance(rule, ExcludePurchased))
        pins = tuple(
            _PinSpec(rule.id, rule.position, self._listed[rule.id]) for rule in active if isinstance(rule, Pin)
        )
        notes = [f"curated '{rule.id}' ignored: curated '{curated[0].id}' comes first" for rule in curated[1:]]
        notes += [f"diversity '{rule.id}' ignored: '{diversity[0].id}' is stricter" for rule in diversity[1:]]
        listed = _scored(self._listed[curated[0].id]) if curated else None
        return _Selection(
            rule_ids=tuple(rule.id for rule in active),
            purchase_windows=windows,
            longest_purchase_ms=max((window for _, window in windows), default=None),
            cart_rule=next((rule.id for rule in active if isinstance(rule, ExcludeCart)), None),
            excludes=excludes,
            static=_union([ids for _, ids in excludes]),
            factors=_Factors(self._boosts, boosts) if boosts else None,
            pins=pins,
            pin_ids=frozenset(item.id for pin in pins for item in pin.items),
            curated=(curated[0].id, listed) if listed is not None else None,
            curated_arrays=(tuple(map(_ID, listed)), list(map(_SCORE, listed))) if listed is not None else None,
            diversity=(diversity[0].id, diversity[0].max_per_category, diversity[0].top_k) if diversity else None,
            notes=tuple(notes),
        )

    def _signatures(self) -> _Boosts:
        entries: dict[str, list[tuple[int, float, str]]] = {}
        for position, (rule, _) in enumerate(self._rules):
            if isinstance(rule, Boost):
                for item_id in self._matched[rule.id]:
                    entries.setdefault(item_id, []).append((position, rule.factor, rule.id))
        numbers: dict[Signature, int] = {}
        of_item = {item_id: numbers.setdefault(tuple(found), len(numbers)) for item_id, found in entries.items()}
        return _Boosts(of_item, list(numbers))

    def _resolve(self, rule_id: str, match: Match, index: _CatalogIndex) -> frozenset[str]:
        found = index.resolve(match)
        unknown = [item for item in match.items or () if item not in index.ids]
        if unknown:
            self.warnings.append(f"rule '{rule_id}' match.items: {len(unknown)} not in the catalog (e.g. {unknown[0]})")
        if not found:
            self.warnings.append(f"rule '{rule_id}' matches no catalog item")
        return found

    def _known(self, rule_id: str, items: list[str], catalog: Catalog) -> tuple[CatalogItem, ...]:
        unknown = [item for item in items if item not in catalog.by_id]
        if unknown:
            self.warnings.append(
                f"rule '{rule_id}' items: {len(unknown)} not in the catalog, left out (e.g. {unknown[0]})"
            )
        return tuple(catalog.by_id[item] for item in items if item in catalog.by_id)


def _scored(items: tuple[CatalogItem, ...]) -> tuple[Scored, ...]:
    """A curated list's items scored 1.0 down to 1/n: its order stands until a boost changes it."""
    return tuple(Scored(item, (len(items) - rank) / len(items)) for rank, item in enumerate(items))


def _union(sets: list[frozenset[str]]) -> frozenset[str]:
    # One set: the very object, no copy (it may hold a whole category).
    if len(sets) == 1:
        return sets[0]
    return frozenset[str]().union(*sets)
