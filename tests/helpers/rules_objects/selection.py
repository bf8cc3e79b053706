"""What the active rules amount to for one scope (cached), as the object path had it (RuleRequest, RuledList and
Exclusions are the production ones: they did not change)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple

from personalization.catalog import CatalogItem
from personalization.experiments import to_ms
from personalization.ranking import Scored
from personalization.rules.document import Scope


class _Key(NamedTuple):
    slot: str | None
    journey: str | None
    segment: str | None
    segment_id: str | None
    variants: frozenset[str]
    epoch: int
    device: str | None = None
    country: str | None = None
    daypart: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class _Scope:
    segments: frozenset[str] | None
    slots: frozenset[str] | None
    journeys: frozenset[str] | None
    variants: frozenset[str] | None
    start_ms: int | None
    end_ms: int | None
    devices: frozenset[str] | None = None
    countries: frozenset[str] | None = None
    dayparts: frozenset[str] | None = None
    channels: frozenset[str] | None = None

    @classmethod
    def of(cls, scope: Scope) -> _Scope:
        def maybe(values: Sequence[str] | None) -> frozenset[str] | None:
            return None if values is None else frozenset(values)

        return cls(
            maybe(scope.segments),
            maybe(scope.slots),
            maybe(scope.journeys),
            maybe(scope.variants),
            None if scope.start is None else to_ms(scope.start),
            None if scope.end is None else to_ms(scope.end),
            maybe(scope.devices),
            maybe(scope.countries),
            maybe(scope.dayparts),
            maybe(scope.channels),
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
        if self.devices is not None and key.device not in self.devices:
            return False
        if self.countries is not None and key.country not in self.countries:
            return False
        if self.dayparts is not None and key.daypart not in self.dayparts:
            return False
        if self.channels is not None and key.channel not in self.channels:
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
    # (rule id, times, window ms) of the exclude_seen rules, document order.
    seen_rules: tuple[tuple[str, int, int], ...]
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
