"""A rules document compiled against one catalog: item sets resolved through catalog indexes, selections
cached per scope."""

from __future__ import annotations

import bisect
import math
from functools import cached_property
from operator import itemgetter
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from personalization.catalog import Catalog, CatalogItem
from personalization.experiments import Experiment
from personalization.ranking import Scored
from personalization.rules.arrays import MASKS, CatalogArrays
from personalization.rules.document import (
    DAY_MS,
    Boost,
    Curated,
    Diversity,
    Exclude,
    ExcludeCart,
    ExcludePurchased,
    ExcludeSeen,
    Match,
    Pin,
    RulesDocument,
)
from personalization.rules.plan import RulePlan
from personalization.rules.selection import (
    RuleRequest,
    Signature,
    _Boosts,
    _Key,
    _PinSpec,
    _Scope,
    _Selection,
)

# Distinct (slot, journey, segment, variants, time window) combinations the rules tell apart; bounded so that
# a flood of made-up journeys cannot grow it (values no rule names share one entry anyway).
SELECTION_CACHE_SIZE = 1024
_T = TypeVar("_T")


class _CatalogIndex:
    """Catalog lookups by category prefix, brand and price, so a rule's items resolve without a full scan.

    Each index is built the first time a rule needs it, from the catalog's columns: a document without a brand
    rule never pays for the brand index, and one without rules pays for none of them. A category's item set is
    made only for a category a rule names (a 500,000-item catalog's every category as sets of ids would cost a
    cold start a few hundred ms), and a price range is a binary search over the catalog's price-ordered arrays."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.by_id = catalog.by_id
        self._memo: dict[str, frozenset[str]] = {}
        self._in_category: dict[str, frozenset[str]] = {}

    def category(self, name: str) -> frozenset[str]:
        """The ids of one category's items (a name `under` lists)."""
        found = self._in_category.get(name)
        if found is None:
            ids = self._catalog.ids
            found = self._in_category[name] = frozenset(map(ids.__getitem__, self._catalog.positions_in(name)))
        return found

    @cached_property
    def under(self) -> dict[str, list[str]]:
        under: dict[str, list[str]] = {}
        for category in self._catalog.category_names():
            parts = category.split(".")
            for depth in range(1, len(parts) + 1):
                under.setdefault(".".join(parts[:depth]), []).append(category)
        return under

    @cached_property
    def by_brand(self) -> dict[str, set[str]]:
        by_brand: dict[str, set[str]] = {}
        for brand, item_ids in self._catalog.brand_of.items():
            by_brand.setdefault(brand.lower(), set()).update(item_ids)
        return by_brand

    @cached_property
    def _priced(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.integer[Any]]]:
        return self._catalog.price_order()

    def resolve(self, match: Match) -> frozenset[str]:
        key = match.model_dump_json()
        if key not in self._memo:
            self._memo[key] = self._resolve(match)
        return self._memo[key]

    def _resolve(self, match: Match) -> frozenset[str]:
        narrowing: list[frozenset[str]] = []
        if match.items is not None:
            narrowing.append(frozenset(i for i in match.items if i in self.by_id))
        if match.categories is not None:
            narrowing.append(
                frozenset[str]().union(*(self.category(c) for p in match.categories for c in self.under.get(p, ())))
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
        prices, positions = self._priced
        first, last = np.searchsorted(prices, low, "left"), np.searchsorted(prices, high, "right")
        return frozenset(map(self._catalog.ids.__getitem__, positions[first:last].tolist()))


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
        excludes = {rule.id: self._matched[rule.id] for rule, _ in self._rules if isinstance(rule, Exclude)}
        self._arrays = CatalogArrays(catalog, self._boosts, excludes, [rule.id for rule in document.rules])
        self._bounds = sorted(
            {ms for _, scope in self._rules for ms in (scope.start_ms, scope.end_ms) if ms is not None}
        )
        scopes = [scope for _, scope in self._rules]
        self._slots = frozenset[str]().union(*(scope.slots or () for scope in scopes))
        self._journeys = frozenset[str]().union(*(scope.journeys or () for scope in scopes))
        self._segments = frozenset[str]().union(*(scope.segments or () for scope in scopes))
        self._variants = frozenset[str]().union(*(scope.variants or () for scope in scopes))
        self._devices = frozenset[str]().union(*(scope.devices or () for scope in scopes))
        self._countries = frozenset[str]().union(*(scope.countries or () for scope in scopes))
        self._dayparts = frozenset[str]().union(*(scope.dayparts or () for scope in scopes))
        # The document's daypart of each local hour, read without a pydantic attribute look-up per request.
        self._daypart_of_hour = tuple(document.daypart_at(hour) for hour in range(24))
        self._channels = frozenset[str]().union(*(scope.channels or () for scope in scopes))
        # What the edge must key shared fragments on (personalization.context.context_key).
        self.dimensions = document.context_dimensions()
        self._cache: dict[_Key, _Selection] = {}
        self._cache_size = cache_size
        # For _select: each distinct scope once (most rules share theirs with others), and each kind's rules, in
        # document order, as (their scope's index, what the selection keeps of them).
        distinct: dict[_Scope, int] = {}
        scope_of = [distinct.setdefault(scope, len(distinct)) for _, scope in self._rules]
        self._scopes = list(distinct)

        rules = [(scope_of[n], n, rule) for n, (rule, _) in enumerate(self._rules)]
        self._of_ids = [(scope, rule.id) for scope, _, rule in rules]
        self._of_curated = [(scope, rule.id) for scope, _, rule in rules if isinstance(rule, Curated)]
        self._of_diversity = [
            (scope, (rule.max_per_category, self._order[rule.id], rule))
            for scope, _, rule in rules
            if isinstance(rule, Diversity)
        ]
        self._of_excludes = [
            (scope, (rule.id, self._matched[rule.id])) for scope, _, rule in rules if isinstance(rule, Exclude)
        ]
        self._of_boosts = [(scope, n) for scope, n, rule in rules if isinstance(rule, Boost)]
        self._of_windows = [
            (scope, (rule.id, rule.days * DAY_MS)) for scope, _, rule in rules if isinstance(rule, ExcludePurchased)
        ]
        self._of_seen = [
            (scope, (rule.id, rule.times, rule.days * DAY_MS))
            for scope, _, rule in rules
            if isinstance(rule, ExcludeSeen)
        ]
        self._of_cart = [(scope, rule.id) for scope, _, rule in rules if isinstance(rule, ExcludeCart)]
        self._of_pins = [
            (scope, _PinSpec(rule.id, rule.position, self._listed[rule.id]))
            for scope, _, rule in rules
            if isinstance(rule, Pin)
        ]
        # The union of each set of exclude rules' items, shared by every selection with those rules (most scopes
        # share them: they differ in boosts, pins or context): a new scope's first request rarely unions afresh.
        self._statics: dict[tuple[str, ...], frozenset[str]] = {}

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
        return RulePlan(selection, request, self._order, self._arrays)

    def _key(self, request: RuleRequest) -> _Key:
        """The request as far as scopes can tell it apart: names no rule uses all look alike."""
        segment_id = None if request.segment_id is None else str(request.segment_id)
        context = request.context
        # The members' plain strings by `_value_`: Enum's `value` is a property (a Python-level call per read).
        device = None if context.device is None else context.device._value_
        channel = context.channel._value_
        hour = context.local_hour
        daypart = self._daypart_of_hour[hour] if self._dayparts and hour is not None else None
        return _Key(
            request.slot if request.slot in self._slots else None,
            request.journey if request.journey in self._journeys else None,
            request.segment if request.segment in self._segments else None,
            segment_id if segment_id in self._segments else None,
            request.variants & self._variants,
            # Between two consecutive start/end instants, no rule's window opens or closes.
            bisect.bisect_right(self._bounds, request.now_ms),
            device if device in self._devices else None,
            context.country if context.country in self._countries else None,
            daypart if daypart in self._dayparts else None,
            channel if channel in self._channels else None,
        )

    def _select(self, key: _Key, now_ms: int) -> _Selection:
        admits = [scope.admits(key, now_ms) for scope in self._scopes]

        def active(entries: list[tuple[int, _T]]) -> list[_T]:
            return [part for scope, part in entries if admits[scope]]

        curated = active(self._of_curated)
        diversity = [rule for _, _, rule in sorted(active(self._of_diversity), key=itemgetter(0, 1))]
        excludes = tuple(active(self._of_excludes))
        windows = tuple(active(self._of_windows))
        pins = tuple(active(self._of_pins))
        carts = active(self._of_cart)
        notes = [f"curated '{rule_id}' ignored: curated '{curated[0]}' comes first" for rule_id in curated[1:]]
        notes += [f"diversity '{rule.id}' ignored: '{diversity[0].id}' is stricter" for rule in diversity[1:]]
        listed = _scored(self._listed[curated[0]]) if curated else None
        return _Selection(
            rule_ids=tuple(active(self._of_ids)),
            purchase_windows=windows,
            longest_purchase_ms=max((window for _, window in windows), default=None),
            seen_rules=tuple(active(self._of_seen)),
            cart_rule=carts[0] if carts else None,
            excludes=excludes,
            static=self._static(excludes),
            boosts=frozenset(active(self._of_boosts)),
            pins=pins,
            pin_ids=frozenset(item.id for pin in pins for item in pin.items),
            curated=(curated[0], listed) if listed is not None else None,
            curated_ids=tuple(scored.item.id for scored in listed or ()),
            diversity=(diversity[0].id, diversity[0].max_per_category, diversity[0].top_k) if diversity else None,
            notes=tuple(notes),
        )

    def _static(self, excludes: tuple[tuple[str, frozenset[str]], ...]) -> frozenset[str]:
        key = tuple(rule_id for rule_id, _ in excludes)
        found = self._statics.get(key)
        if found is None:
            if len(self._statics) >= MASKS:
                self._statics.clear()
            found = self._statics[key] = _union([ids for _, ids in excludes])
        return found

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
        unknown = [item for item in match.items or () if item not in index.by_id]
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
