"""The rules over candidates as arrays (catalog positions and scores, as the graph hands them over): the item sets
a selection excludes, pins or boosts as catalog-sized masks and per-signature factors, read with a few
whole-array steps per request (RulePlan._rank). No object per candidate: only the items a fragment shows are made
(RulePlan._merge).

Every step gives what the object path gave, to the bit: boosts multiply (or divide a negative score) in float64
as Python floats do, one factor at a time in document order, and the order is score descending, then
id ascending (tests/unit/test_rules_arrays.py holds the previous object path as the oracle).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from personalization.catalog import Catalog
from personalization.ranking import Positions, Scores
from personalization.rules.selection import _Boosts, _Selection


class CatalogArrays:
    """Per engine (one catalog, one document), built at compile: each catalog position's boost signature (-1: no
    boost matches it), which boost rules each signature holds, and each exclude rule's items as positions."""

    __slots__ = (
        "_boosting",
        "_bytes",
        "_masks",
        "_scratch",
        "boost_columns",
        "boost_factors",
        "boost_rules",
        "catalog",
        "codes",
        "excluded",
        "holding",
        "holds",
        "ids",
        "order",
        "position",
        "rules",
        "signature",
        "signatures",
    )

    def __init__(
        self, catalog: Catalog, boosts: _Boosts, excludes: Mapping[str, frozenset[str]], rules: Sequence[str]
    ) -> None:
        self.catalog = catalog
        # The document's rule ids in its order: a set of rules can be an int, rule n its bit n (Boosting, named).
        self.rules = list(rules)
        self.order = {rule_id: n for n, rule_id in enumerate(self.rules)}
        # (byte index << 8 | byte) -> the rules of its bits, in document order: at most 255 per byte of rules.
        self._bytes: dict[int, tuple[str, ...]] = {}
        self.ids = catalog.ids
        self.position = catalog.position
        self.codes = catalog.category_codes()
        self.signatures = len(boosts.signatures)
        # The platform's own index type: a gather by an int32 index costs several times what one by intp does.
        self.signature = np.full(len(catalog), -1, dtype=np.intp)
        # Boosts and excludes match catalog items only (RuleEngine resolves them through the catalog's indexes).
        matched = boosts.of_item
        self.signature[np.fromiter(map(self.position.__getitem__, matched), np.intp, len(matched))] = np.fromiter(
            matched.values(), np.intp, len(matched)
        )
        # The boost rules as columns (by their index among the enabled rules): each one's factor, the signatures
        # holding it, and which of them each signature holds (one row per signature, the last, -1, none).
        columns: dict[int, int] = {}
        names: list[str] = []
        factors: list[float] = []
        holding: list[list[int]] = []
        for signature, entries in enumerate(boosts.signatures):
            for index, factor, rule_id in entries:
                if index not in columns:
                    columns[index] = len(names)
                    names.append(rule_id)
                    factors.append(factor)
                    holding.append([])
                holding[columns[index]].append(signature)
        self.boost_columns = columns
        self.boost_rules = names
        self.boost_factors = factors
        self.holding = [np.asarray(signatures, dtype=np.intp) for signatures in holding]
        self.holds = np.zeros((self.signatures + 1, len(names)), dtype=np.bool_)
        for column, signatures in enumerate(self.holding):
            self.holds[signatures, column] = True
        self.excluded = {
            rule_id: np.fromiter(map(self.position.__getitem__, ids), np.intp, len(ids))
            for rule_id, ids in excludes.items()
        }
        self._masks: dict[tuple[tuple[str, ...], frozenset[str]], npt.NDArray[np.uint8]] = {}
        self._boosting: dict[frozenset[int], Boosting] = {}
        # Per thread, a catalog-sized mask for the person's exclusions: set, read at the candidates, cleared.
        self._scratch = threading.local()

    def positions_of(self, ids: Sequence[str] | frozenset[str] | Mapping[str, int]) -> Positions:
        """The positions of the ids the catalog holds, in the ids' order (unknown ids left out)."""
        position = self.position
        return np.fromiter((position[i] for i in ids if i in position), dtype=np.intp)

    def mask(self, excludes: tuple[str, ...], pins: frozenset[str]) -> npt.NDArray[np.uint8]:
        """Per catalog position: EXCLUDED if one of these exclude rules matches it, PINNED if pinned. Shared by
        every selection with the same exclude rules and pinned items (most differ in boosts or scope only), so
        one catalog-sized array serves many; bounded like the selection cache."""
        key = (excludes, pins)
        found = self._masks.get(key)
        if found is None:
            found = np.zeros(len(self.ids), dtype=np.uint8)
            if excludes:
                found[np.concatenate([self.excluded[rule_id] for rule_id in excludes])] = EXCLUDED
            found[self.positions_of(pins)] |= PINNED
            if len(self._masks) >= MASKS:
                self._masks.clear()
            self._masks[key] = found
        return found

    def named(self, bits: int) -> list[str]:
        """The rules of `bits` (rule n of the document: bit n), in document order."""
        found: list[str] = []
        rules, table = self.rules, self._bytes
        for index, byte in enumerate(bits.to_bytes((len(rules) + 7) // 8, "little")):
            if byte:
                names = table.get(index << 8 | byte)
                if names is None:
                    names = table[index << 8 | byte] = tuple(
                        rules[8 * index + bit] for bit in range(8) if byte >> bit & 1
                    )
                found += names
        return found

    def boosting(self, active: frozenset[int]) -> Boosting:
        """The active boosts (by index among the enabled rules) as arrays: shared by every selection with the
        same active boosts, bounded like the masks."""
        found = self._boosting.get(active)
        if found is None:
            found = Boosting(self, active)
            if len(self._boosting) >= MASKS:
                self._boosting.clear()
            self._boosting[active] = found
        return found

    def marked(self, items: Positions, positions: Positions) -> npt.NDArray[np.uint8]:
        """EXCLUDED for every one of `positions` among `items`, else 0: a few whole-array steps on this thread's
        catalog-sized mask (its own, so concurrent requests do not meet), left all 0 again."""
        marks: npt.NDArray[np.uint8] | None = getattr(self._scratch, "marks", None)
        if marks is None:
            marks = self._scratch.marks = np.zeros(len(self.ids), dtype=np.uint8)
        marks[items] = EXCLUDED
        found = marks[positions]
        marks[items] = 0
        return found


_OR = np.bitwise_or.reduce
# mask() bits, and how many distinct masks (exclude rules and pins; active boosts) an engine keeps.
EXCLUDED = 1
PINNED = 2
MASKS = 64


class Boosting:
    """Active boosts as arrays: each signature's product of their factors, multiplied one factor at a time in
    document order (as the object path did: the same product to the bit; the last entry stands for signature -1,
    no boost: 1.0), and the active rules of each signature whose product is not 1 (one whose product is 1 changes
    no score, so its rules do not count as applied) as bits."""

    __slots__ = ("multipliers", "words")

    def __init__(self, arrays: CatalogArrays, active: frozenset[int]) -> None:
        self.multipliers = np.ones(arrays.signatures + 1)
        columns = np.zeros(len(arrays.boost_rules), dtype=np.bool_)
        for index in sorted(active):
            column = arrays.boost_columns.get(index)
            if column is not None:  # None: the rule matches no catalog item
                columns[column] = True
                self.multipliers[arrays.holding[column]] *= arrays.boost_factors[column]
        acting = arrays.holds & columns & (self.multipliers != 1.0)[:, None]
        # Each acting rule its bit in document order (CatalogArrays.named): per signature, a word per 64 rules of
        # the document that holds one; per request, one gather and one OR per word.
        acts = np.flatnonzero(acting.any(axis=0)).tolist()
        bits = [arrays.order[arrays.boost_rules[column]] for column in acts]
        self.words: list[tuple[int, npt.NDArray[np.uint64]]] = []
        for first in sorted({bit - bit % 64 for bit in bits}):
            word = np.zeros(len(self.multipliers), dtype=np.uint64)
            for column, bit in zip(acts, bits, strict=True):
                if first <= bit < first + 64:
                    word[acting[:, column]] |= np.uint64(1 << (bit - first))
            self.words.append((first, word))

    def boosted(self, signatures: Positions, scores: Scores) -> tuple[Scores, int]:
        """The scores with the boosts applied, and the rules that changed one of them (as CatalogArrays.named
        reads them)."""
        multipliers = self.multipliers[signatures]
        bits = 0
        for first, word in self.words:
            bits |= int(_OR(word[signatures])) << first
        if scores.size == 0 or scores.min() >= 0:
            return scores * multipliers, bits
        # Dividing a negative score keeps the promise that a boost lifts and a bury lowers.
        return np.where(scores >= 0, scores * multipliers, scores / multipliers), bits


class SelectionArrays:
    """One selection's item sets as a catalog mask, its boosts, and its curated list as arrays: built on the
    selection's first request with candidates and shared by every one after it."""

    __slots__ = (
        "_excludes",
        "_static",
        "boosting",
        "curated",
        "curated_index",
        "curated_notes",
        "curated_positions",
        "curated_scores",
        "holding",
        "mask",
    )

    def __init__(self, selection: _Selection, arrays: CatalogArrays) -> None:
        self._excludes = tuple(rule_id for rule_id, _ in selection.excludes)
        self._static: Positions | None = None
        self.mask = arrays.mask(self._excludes, selection.pin_ids)
        self.boosting = arrays.boosting(selection.boosts) if selection.boosts else None
        if selection.curated is not None:
            listed = selection.curated[1]
            self.curated_positions = arrays.positions_of([scored.item.id for scored in listed])
            self.curated_scores = np.fromiter((s.score for s in listed), dtype=np.float64, count=len(listed))
        else:
            self.curated_positions, self.curated_scores = _NONE, _NO_SCORES
        # Each curated id's place in the list (its items are distinct): the notes on dropped ones go in that order.
        self.curated_index = {item_id: n for n, item_id in enumerate(selection.curated_ids)}
        # The curated list ranked with the rules that need no person (RulePlan._curated_ranking), and the notes
        # on its items a rule of the selection excludes: the same for every request of the selection.
        self.curated: list[CuratedRanking] = []
        self.curated_notes: dict[str, str] = {}
        # An item the selection's exclude rules hold -> those rules (RulePlan._credit_filters), as met: at most
        # one entry per item they hold.
        self.holding: dict[str, tuple[str, ...]] = {}

    def static_positions(self, arrays: CatalogArrays) -> Positions:
        """What the selection's exclude rules match, as catalog positions, ascending and distinct (made once)."""
        if self._static is None:
            parts = [arrays.excluded[rule_id] for rule_id in self._excludes]
            self._static = distinct(np.concatenate(parts)) if parts else _NONE
        return self._static


def distinct(positions: Positions) -> Positions:
    """The positions ascending, each once. Not np.unique: it asks np.ma whether the array is masked, and that
    first ask imports numpy.ma (9 ms of a container's first personal fragment)."""
    ordered = np.sort(positions)
    first = np.ones(ordered.size, dtype=np.bool_)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


_NONE: Positions = np.zeros(0, dtype=np.intp)
_NO_SCORES: Scores = np.zeros(0, dtype=np.float64)


class CuratedRanking:
    """A selection's curated list ranked with the rules that need no person (once per selection): as lists,
    and as arrays a person's exclusions are taken out of; what the rules removed, the pinned items' scores, and
    the boosts that acted."""

    __slots__ = ("boosted", "pin_scores", "positions", "ranking", "removed", "scores")

    def __init__(self, ranking: Ranking, removed: frozenset[str], pin_scores: dict[str, float], boosted: int) -> None:
        self.ranking = ranking.whole()
        self.positions: Positions = np.array(self.ranking.positions, dtype=np.intp)
        self.scores: Scores = np.array(self.ranking.scores, dtype=np.float64)
        self.removed = removed
        self.pin_scores = pin_scores
        self.boosted = boosted


class Ranking:
    """The candidates to show, best first, without the excluded and pinned ones: catalog positions and boosted
    scores, `size` of them. Maybe only a prefix as lists at first (the diversity cap and the merge rarely read
    past a few dozen, and making a Python object per candidate is much of what a request costs): whole() makes
    the rest."""

    __slots__ = ("_rest", "positions", "scores", "size")

    def __init__(
        self,
        positions: list[int],
        scores: list[float],
        size: int | None = None,
        rest: Callable[[], tuple[list[int], list[float]]] | None = None,
    ) -> None:
        self.positions = positions
        self.scores = scores
        self.size = len(positions) if size is None else size
        self._rest = rest

    def whole(self) -> Ranking:
        """This ranking, every one of its candidates as lists (the same values as the prefix had, then more)."""
        rest = self._rest
        if rest is not None:
            self.positions, self.scores = rest()
            self._rest = None
        return self
