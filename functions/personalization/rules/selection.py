"""What a request brings to the rules, and what the active rules amount to for one scope (cached)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from personalization.catalog import Catalog, CatalogItem
from personalization.context import UNKNOWN, RequestContext
from personalization.experiments import to_ms
from personalization.ranking import Positions, Scored
from personalization.rules.document import Scope

if TYPE_CHECKING:  # arrays.py reads the selection: a runtime import would be circular
    from personalization.rules.arrays import SelectionArrays


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
    # The viewer's context as the edge saw it (device, country, local hour, channel).
    context: RequestContext = UNKNOWN
    # item -> (last touch ms, times shown since), as the profile keeps it (personalization.fatigue).
    seen: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # What the person dismissed ("not interested") recently enough to leave out: excluded whatever the rules.
    dismissed: frozenset[str] = frozenset()


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

    __slots__ = ("_catalog", "_positions", "personal", "static")

    def __init__(
        self,
        static: frozenset[str],
        personal: frozenset[str],
        catalog: Catalog | None = None,
        positions: Callable[[], Positions] | None = None,
    ) -> None:
        # The same frozenset object for every request with the same active rules: serve may cache by identity.
        self.static = static
        # Bought within the window, in the cart, shown too often without a click, dismissed.
        self.personal = personal
        self._catalog = catalog
        self._positions = positions

    def catalog_positions(self, catalog: Catalog) -> Positions | None:
        """The excluded items' positions in `catalog`, ascending and distinct, when the rules were compiled
        against it (None otherwise: go by the ids). A graph's mask then needs no look-up per excluded id: an
        excluded category can hold thousands."""
        if self._positions is None or catalog is not self._catalog:
            return None
        return self._positions()

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


class Pins:
    """The pins as resolved for some requests (shared by every request of the selection whose personal
    exclusions take out the same pinned items for the same reasons): every eligible pinned item by claimed
    position, the notes on the others and the excluded ones; what the list around them needs, worked out once."""

    __slots__ = ("_claimed", "_unshown", "counts", "notes", "placed", "removed")

    def __init__(self, placed: list[Placed], notes: list[str], removed: list[str], counts: dict[int, int]) -> None:
        self.placed = placed
        self.notes = notes
        self.removed = removed
        # Eligible pinned items per category code (the diversity cap counts them all).
        self.counts = counts
        self._claimed = [position for position, _, _ in placed]
        # (k, pins shown) -> the notes on the pins past the end.
        self._unshown: dict[tuple[int, int], list[str]] = {}

    def within(self, k: int) -> int:
        """How many pins claim a position in the top k."""
        return bisect.bisect_right(self._claimed, k)

    def unshown(self, k: int, shown: int) -> list[str]:
        """The notes on the pins past the first `shown`, when k items are shown."""
        key = (k, shown)
        found = self._unshown.get(key)
        if found is None:
            if len(self._unshown) >= UNSHOWN:
                self._unshown.clear()
            found = self._unshown[key] = [
                f"pin '{rule_id}' item {item.id} not shown: position {position} is past the {k} shown"
                for position, rule_id, item in self.placed[shown:]
            ]
        return found


# How many (k, pins shown) an unshown-pins memo keeps (serve asks for a handful of k).
UNSHOWN = 64
NO_PINS = Pins([], [], [], {})


@dataclass(frozen=True, slots=True)
class _Boosts:
    """The catalog's boost signatures: most items share theirs with many others (same brand, category, price)."""

    of_item: Mapping[str, int]
    signatures: Sequence[Signature]


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
    # The active boosts, by index among the enabled rules (arrays.Boosting makes their factors per signature).
    boosts: frozenset[int]
    pins: tuple[_PinSpec, ...]
    pin_ids: frozenset[str]
    # (rule id, its items scored 1.0 down to 1/n)
    curated: tuple[str, tuple[Scored, ...]] | None
    # The curated list's ids, in its order (for the notes on the ones dropped).
    curated_ids: tuple[str, ...]
    # (rule id, max per category, top_k)
    diversity: tuple[str, int, int | None] | None
    notes: tuple[str, ...]
    # The pins as resolved against the static exclusions alone: every request whose personal exclusions miss
    # the pinned items shares it.
    resolved_pins: list[Pins] = field(default_factory=list)
    # The pins as resolved for people whose own exclusions take pinned items out, by (item, reason) pairs.
    person_pins: dict[tuple[tuple[str, str], ...], Pins] = field(default_factory=dict)
    # Its item sets as catalog positions, built by its first request with candidates (arrays.SelectionArrays).
    arrays: list[SelectionArrays] = field(default_factory=list)
