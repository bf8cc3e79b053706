"""The rules in force for one request: the exclusions before the model, then filters, curated, boosts,
diversity and pins over its candidates."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from operator import itemgetter, mul

from personalization.catalog import CatalogItem
from personalization.fatigue import ignored, shown_since
from personalization.ranking import Scored
from personalization.rules.selection import Exclusions, RuledList, RuleRequest
from tests.helpers.rules_objects.selection import (
    _ID,
    _SCORE,
    Placed,
    _Factors,
    _Selection,
)

# serve never asks the model for more: past a few hundred candidates the rules' cost outgrows their gain.
POOL_CAP = 200
# What a note names as the reason for an item the person dismissed (not a rule: it holds under any document).
DISMISSED = "dismissed by the person"


class RulePlan:
    """The rules in force for one request. Build it before asking the model: `excluded` goes into its mask."""

    __slots__ = ("_cart", "_dismissed", "_now_ms", "_order", "_purchased", "_seen", "_selection", "excluded")

    def __init__(self, selection: _Selection, request: RuleRequest, order: Mapping[str, int]) -> None:
        self._selection = selection
        self._order = order
        self._now_ms = request.now_ms
        self._purchased = request.purchased
        self._cart = frozenset(request.cart) if selection.cart_rule is not None else frozenset()
        self._seen = request.seen
        self._dismissed = request.dismissed
        personal = self._cart | request.dismissed
        longest = selection.longest_purchase_ms
        if longest is not None and request.purchased:
            cutoff = request.now_ms - longest
            personal = personal.union([item for item, ts in request.purchased.items() if ts >= cutoff])
        if request.seen:
            for _, times, window in selection.seen_rules:
                personal = personal | ignored(request.seen, times, request.now_ms - window)
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
        entry = self._seen.get(item_id)
        if entry is not None:
            for rule, times, window in selection.seen_rules:
                if shown_since(entry, self._now_ms - window) >= times:
                    found.append(rule)
                    break
        if item_id in self._cart and selection.cart_rule is not None:
            found.append(selection.cart_rule)
        for rule, ids in selection.excludes:
            if item_id in ids:
                found.append(rule)
                break
        if found:
            return min(found, key=self._order.__getitem__)
        return DISMISSED if item_id in self._dismissed else None

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
        for rule_id, times, window in selection.seen_rules:
            entries = [self._seen[item_id] for item_id in hit if item_id in self._seen]
            if any(shown_since(entry, self._now_ms - window) >= times for entry in entries):
                acted.add(rule_id)

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
