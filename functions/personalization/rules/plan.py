"""The rules in force for one request: the exclusions before the model, then filters, curated, boosts,
diversity and pins over its candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from personalization.catalog import NONE, CatalogItem
from personalization.fatigue import ignored, shown_since
from personalization.ranking import Candidates, Positions, Scored, Scores
from personalization.rules.arrays import (
    EXCLUDED,
    PINNED,
    CatalogArrays,
    CuratedRanking,
    Ranking,
    SelectionArrays,
    distinct,
)
from personalization.rules.selection import (
    NO_PINS,
    Exclusions,
    Pins,
    Placed,
    RuledList,
    RuleRequest,
    _Selection,
)

# serve never asks the model for more: past a few hundred candidates the rules' cost outgrows their gain.
POOL_CAP = 200
# How many pin resolutions for people who lose pinned items a selection keeps (by the items and the reasons).
PERSON_PINS = 256
# How many excluded items' exclude rules a selection keeps (see _credit_filters).
HOLDING = 4096
# How many of the ranked candidates become lists at first (Ranking.whole() makes the rest when needed).
PREFIX = 64
# What a note names as the reason for an item the person dismissed (not a rule: it holds under any document).
DISMISSED = "dismissed by the person"


class RulePlan:
    """The rules in force for one request. Build it before asking the model: `excluded` goes into its mask."""

    __slots__ = (
        "_arrays",
        "_cart",
        "_dismissed",
        "_now_ms",
        "_order",
        "_personal",
        "_purchased",
        "_seen",
        "_selection",
        "excluded",
    )

    def __init__(
        self, selection: _Selection, request: RuleRequest, order: Mapping[str, int], arrays: CatalogArrays
    ) -> None:
        self._selection = selection
        self._arrays = arrays
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
        # The person's exclusions as catalog positions, made on first use (by the graph's mask or the ranking)
        # and kept for the other.
        self._personal: list[Positions] = []
        self.excluded = Exclusions(
            selection.static,
            personal,
            arrays.catalog,
            partial(_excluded_positions, arrays, selection, personal, self._personal),
        )

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
        if selection.boosts or selection.diversity is not None:
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
        if item_id in selection.static:  # one look-up spares a pass over the exclude rules for most items
            for rule, ids in selection.excludes:
                if item_id in ids:
                    found.append(rule)
                    break
        if found:
            return min(found, key=self._order.__getitem__)
        return DISMISSED if item_id in self._dismissed else None

    def apply(self, candidates: Candidates | Sequence[Scored], k: int) -> RuledList:
        """At most k items: filters, then curated, boosts, the diversity cap and pins (see the module doc).

        Candidates come as arrays (positions in the catalog the rules were compiled against, as the graph gives
        them) or as Scored objects, which are put into arrays first (an item the catalog lacks is left out)."""
        if k <= 0:
            return RuledList([], [], [])
        selection = self._selection
        pins = self._pins()
        notes = [*selection.notes, *pins.notes]
        acted: set[str] = set()
        arrays = self._selection_arrays()
        if selection.curated is not None:
            acted.add(selection.curated[0])
            ranking, removed, pin_scores, boosted = self._curated_ranking(arrays)
        else:
            catalog = self._arrays.catalog
            if not isinstance(candidates, Candidates):
                candidates = Candidates.of(catalog, candidates)
            elif candidates.catalog is not catalog:  # another version's catalog: its positions mean other items
                candidates = Candidates.of(catalog, candidates.scored())
            ranking, removed, pin_scores, boosted = self._rank(arrays, candidates.positions, candidates.scores)
        if removed or pins.removed:
            self._credit_filters({*removed, *pins.removed}, notes, acted)
        fill = self._fill(ranking, pins, k, notes, acted)
        items = self._merge(pins, fill, ranking, k, pin_scores, notes, acted)
        # The rules that acted as bits in document order (the boosts' already are): no sort by name.
        order = self._arrays.order
        for rule_id in acted:
            boosted |= 1 << order[rule_id]
        return RuledList(items, notes, self._arrays.named(boosted))

    def _selection_arrays(self) -> SelectionArrays:
        return _selection_arrays(self._arrays, self._selection)

    def _pins(self) -> Pins:
        """Every eligible pinned item by claimed position, the notes on the others, and the excluded ones."""
        selection = self._selection
        if not selection.pins:
            return NO_PINS
        hits = self.excluded.personal & selection.pin_ids
        if hits:
            # What else decides the pins (the rules' exclusions, the reasons named for those) is the selection's:
            # people who lose the same pinned items for the same reasons share one resolution.
            key = tuple(sorted((item, self.excluded_by(item) or "") for item in hits))
            found = selection.person_pins.get(key)
            if found is None:
                if len(selection.person_pins) >= PERSON_PINS:
                    selection.person_pins.clear()
                found = selection.person_pins[key] = self._resolve_pins()
            return found
        if not selection.resolved_pins:
            selection.resolved_pins.append(self._resolve_pins())
        return selection.resolved_pins[0]

    def _resolve_pins(self) -> Pins:
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
        codes, where = self._arrays.codes, self._arrays.position
        counts: dict[int, int] = {}
        for _, _, item in placed:
            code = codes[where[item.id]]
            if code != NONE:
                counts[code] = counts.get(code, 0) + 1
        return Pins(placed, notes, removed, counts)

    def _curated_ranking(self, arrays: SelectionArrays) -> tuple[Ranking, frozenset[str], dict[str, float], int]:
        """_rank of the selection's curated list: ranked once per selection without the person's exclusions,
        which then only take their items out (the order of the others stands)."""
        if not arrays.curated:
            ranking, removed, pin_scores, boosted = self._rank(
                arrays, arrays.curated_positions, arrays.curated_scores, person=False
            )
            arrays.curated.append(CuratedRanking(ranking, removed, pin_scores, boosted))
        curated = arrays.curated[0]
        ranking, removed = curated.ranking, curated.removed
        if self.excluded.personal:
            hit = self._arrays.marked(self._personal_positions(), curated.positions)
            found = hit.nonzero()[0]
            if found.size:
                ids = self._arrays.ids
                removed = removed | {ids[where] for where in curated.positions[found].tolist()}
                keep = hit == 0
                ranking = _ranked(curated.positions[keep], curated.scores[keep], [], ids)
        return ranking, removed, curated.pin_scores, curated.boosted

    def _personal_positions(self) -> Positions:
        """The catalog positions of what this person may not be offered (bought, in the cart, ...)."""
        return _personal_positions(self._arrays, self.excluded.personal, self._personal)

    def _rank(
        self, arrays: SelectionArrays, positions: Positions, scores: Scores, person: bool = True
    ) -> tuple[Ranking, frozenset[str], dict[str, float], int]:
        """The candidates once each (best score), boosted, ordered without excluded and pinned items; what the
        filters removed; the pinned items' own scores. Without `person`, the person's own exclusions are left to
        the caller.

        This runs on every request: whole-array steps (gathers, one product, one sort, an OR per 64 boost rules)
        do the per-candidate work, each costing about what a Python loop pays for a handful of candidates; plain
        Python touches only the few marked candidates (and runs of equal scores)."""
        # One look-up in the selection's catalog mask answers both: excluded by a rule, pinned.
        marks = arrays.mask[positions]
        if person and self.excluded.personal:
            marks |= self._arrays.marked(self._personal_positions(), positions)
        boosted = 0
        if arrays.boosting is not None:
            scores, boosted = arrays.boosting.boosted(self._arrays.signature[positions], scores)
        return (*_split(positions, scores, marks, self._arrays.ids), boosted)

    def _credit_filters(self, hit: set[str], notes: list[str], acted: set[str]) -> None:
        """Every filter that excluded something this list would have held (`hit`) counts as applied."""
        selection = self._selection
        if selection.curated is not None:
            # In the list's order.
            index = self._selection_arrays().curated_index
            listed = sorted((item_id for item_id in hit if item_id in index), key=index.__getitem__)
            notes += [self._curated_note(item_id) for item_id in listed]
        if selection.cart_rule is not None and not self._cart.isdisjoint(hit):
            acted.add(selection.cart_rule)
        if selection.purchase_windows:
            # Each removed item looked up among the purchases (the smaller side, usually).
            purchased = self._purchased
            bought = [ts for item_id in hit if (ts := purchased.get(item_id)) is not None]
            if bought:
                latest = max(bought)
                for rule_id, window in selection.purchase_windows:
                    if latest >= self._now_ms - window:
                        acted.add(rule_id)
        # Only an item the selection's exclude rules hold can credit one (most removed items are the person's):
        # the rules holding each, found once per selection and item.
        static = selection.static
        listed = [item_id for item_id in hit if item_id in static]
        if listed:
            holding = self._selection_arrays().holding
            for item_id in listed:
                rules = holding.get(item_id)
                if rules is None:
                    if len(holding) >= HOLDING:
                        holding.clear()
                    rules = holding[item_id] = tuple(rule_id for rule_id, ids in selection.excludes if item_id in ids)
                acted.update(rules)
        if selection.seen_rules:
            entries = [self._seen[item_id] for item_id in hit if item_id in self._seen]
            for rule_id, times, window in selection.seen_rules:
                if any(shown_since(entry, self._now_ms - window) >= times for entry in entries):
                    acted.add(rule_id)

    def _curated_note(self, item_id: str) -> str:
        """Why a curated item is not shown. An item the person's exclusions miss is excluded by the selection's
        rules alone, so its note is the same for every request of the selection: made once."""
        selection = self._selection
        assert selection.curated is not None
        if item_id in self.excluded.personal:
            return f"curated '{selection.curated[0]}' item {item_id} dropped: excluded by '{self.excluded_by(item_id)}'"
        notes = self._selection_arrays().curated_notes
        note = notes.get(item_id)
        if note is None:
            note = notes[item_id] = (
                f"curated '{selection.curated[0]}' item {item_id} dropped: excluded by '{self.excluded_by(item_id)}'"
            )
        return note

    def _fill(self, ranking: Ranking, pins: Pins, k: int, notes: list[str], acted: set[str]) -> list[int]:
        """The recommended (non-pinned) items that can be shown, as indices into the ranking, under the
        diversity cap."""
        # Pins claiming a place in the top k are shown whatever comes; the others only if the list runs short.
        need = k - pins.within(k)
        size = ranking.size
        diversity = self._selection.diversity
        if diversity is None:
            if need > len(ranking.positions):
                ranking.whole()
            return list(range(min(need, size)))
        rule_id, cap, top_k = diversity
        window = need if top_k is None else min(top_k, need)
        # Categories by their catalog codes: no item is made to read its category. Every eligible pin counts.
        codes = self._arrays.codes
        counts = dict(pins.counts)
        fill: list[int] = []
        passed: list[int] = []
        looked, filled, count_of = size, 0, counts.get
        # Item by item: the window is usually full after a few dozen of the few hundred.
        positions = ranking.positions
        for index, where in enumerate(positions):
            if filled == window:
                looked = index
                break
            code = codes[where]
            if code != NONE:
                count = count_of(code, 0)
                if count >= cap:
                    passed.append(index)
                    continue
                counts[code] = count + 1
            fill.append(index)
            filled += 1
        else:
            if len(positions) < size:
                # The ranking's prefix ran out before the window filled (rare): again, over all of it.
                return self._fill(ranking.whole(), pins, k, notes, acted)
        if len(fill) == window < need:
            # The window is full: what it passed over ranks above everything not yet looked at.
            more = need - window
            fill += passed[:more]
            if len(passed) < more:
                last = min(size, looked + more - len(passed))
                if last > len(positions):
                    ranking.whole()
                fill += range(looked, last)
            if passed:
                notes.append(f"diversity '{rule_id}' moved {len(passed)} item(s) below the top {window}")
        elif passed:
            notes.append(f"diversity '{rule_id}' left out {len(passed)} item(s) over {cap} per category")
        if passed:
            acted.add(rule_id)
        return fill

    def _merge(
        self,
        pins: Pins,
        fill: list[int],
        ranking: Ranking,
        k: int,
        pin_scores: Mapping[str, float],
        notes: list[str],
        acted: set[str],
    ) -> list[Scored]:
        """Pins at their claimed positions, recommended items around them, pins past the end closing the list;
        then cut to k. Only here do the shown items become objects."""
        placed = pins.placed
        # Pin j lands at its claimed position, or right after the recommended items and the j pins before it when
        # those run out first: shown while that is within k (a prefix of the pins: both grow with j).
        filled = len(fill)
        shown = 0
        for position, _, _ in placed:
            if min(position - 1, filled + shown) >= k:
                break
            shown += 1
        item_at, positions, scores = self._arrays.catalog.item, ranking.positions, ranking.scores
        merged = [Scored(item_at(positions[index]), scores[index]) for index in fill[: k - shown]]
        for position, rule_id, item in placed[:shown]:
            # In claimed order each lands where claimed, or at the end when the list is shorter (insert appends).
            merged.insert(position - 1, Scored(item, pin_scores.get(item.id, 0.0)))
            acted.add(rule_id)
        if shown < len(placed):
            notes += pins.unshown(k, shown)
        return merged


def _selection_arrays(arrays: CatalogArrays, selection: _Selection) -> SelectionArrays:
    if not selection.arrays:
        selection.arrays.append(SelectionArrays(selection, arrays))
    return selection.arrays[0]


def _personal_positions(arrays: CatalogArrays, personal: frozenset[str], memo: list[Positions]) -> Positions:
    if not memo:
        get = arrays.position.get
        found = [where for where in map(get, personal) if where is not None]
        memo.append(np.fromiter(found, np.intp, len(found)))
    return memo[0]


def _excluded_positions(
    arrays: CatalogArrays, selection: _Selection, personal: frozenset[str], memo: list[Positions]
) -> Positions:
    """Exclusions.catalog_positions: the selection's (sorted once) and the person's."""
    static = _selection_arrays(arrays, selection).static_positions(arrays)
    if not personal:
        return static
    return distinct(np.concatenate([static, _personal_positions(arrays, personal, memo)]))


def _split(
    positions: Positions, scores: Scores, marks: npt.NDArray[np.uint8], ids: Sequence[str]
) -> tuple[Ranking, frozenset[str], dict[str, float]]:
    """The candidates by score descending: the ranking without the excluded and pinned ones (equal scores by
    id), the ids of the excluded ones, and the pinned ones' scores.

    Whole-array steps over the candidates (a sort, a few gathers); plain Python only for the few marked ones
    and, when scores are equal, for each run of them."""
    order = scores.argsort()[::-1]  # not stable: each run of equal scores is put in id order below
    removed: list[str] = []
    pin_scores: dict[str, float] = {}
    flagged = marks.nonzero()[0]
    if flagged.size:
        # A few: read one by one.
        for index in flagged.tolist():
            mark, where = marks.item(index), positions.item(index)
            if mark & EXCLUDED:
                removed.append(ids[where])
            if mark & PINNED:
                pin_scores[ids[where]] = scores.item(index)
        order = order[marks[order] == 0]
    ranked = scores[order]
    tied = (ranked[1:] == ranked[:-1]).nonzero()[0].tolist()
    return _ranked(positions[order], ranked, tied, ids), frozenset(removed), pin_scores


def _ranked(kept: Positions, ranked: Scores, tied: list[int], ids: Sequence[str]) -> Ranking:
    """The ranking of `kept` by `ranked` (descending; `tied` as _listed takes it): a prefix as lists, past any
    run of equal scores it would cut; the rest when asked for."""
    size = end = len(kept)
    if size > PREFIX:
        end = PREFIX
        if tied:
            ties = set(tied)
            while end < size and end - 1 in ties:
                end += 1
    positions_in, scores_in = _listed(kept, ranked, tied, ids, end)
    rest = partial(_listed, kept, ranked, tied, ids, size) if end < size else None
    return Ranking(positions_in, scores_in, size, rest)


def _listed(
    positions: Positions, scores: Scores, tied: list[int], ids: Sequence[str], end: int
) -> tuple[list[int], list[float]]:
    """The first `end` ranked candidates as lists, equal scores by id (no run of them crosses `end`).

    `tied` holds every i where scores i and i + 1 are equal: each run of them is sorted on its own (a popularity
    fallback has many), each score staying with its item (0.0 and -0.0 are equal but two scores)."""
    kept: list[int] = positions[:end].tolist()
    kept_scores: list[float] = scores[:end].tolist()
    if tied and tied[0] < end - 1:
        start = last = tied[0]
        for index in [*tied[1:], -2]:
            if index == last + 1:
                last = index
                continue
            if last + 1 < end:
                run = sorted(
                    zip(kept[start : last + 2], kept_scores[start : last + 2], strict=True), key=lambda p: ids[p[0]]
                )
                kept[start : last + 2] = [where for where, _ in run]
                kept_scores[start : last + 2] = [score for _, score in run]
            start = last = index
    return kept, kept_scores
