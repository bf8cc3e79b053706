"""Candidate ranking without a trained model: popularity, leaned towards what the profile shows interest in.

This is both the personal ranking until a recommendation model is published and the fallback when one
cannot be used, so it must always answer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from personalization.catalog import Catalog, CatalogItem
from personalization.profile import FoldSettings, Profile, affinities_at

# Weight of global popularity next to the person's categories: enough to break ties and fill the list,
# small enough that a strong interest is never drowned by the shop's best-sellers.
GLOBAL_WEIGHT = 0.1
CANDIDATES_PER_CATEGORY = 100
TOP_CATEGORIES = 5


@dataclass(frozen=True, slots=True)
class Scored:
    item: CatalogItem
    score: float


Positions = npt.NDArray[np.intp]
Scores = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Candidates:
    """Ranked candidates as the recommendation graph hands them over: positions in `catalog` and their scores,
    best first, each position once (a graph's top k names an item once; `of` keeps a repeated item's best
    score). No object per candidate: the rules rank positions, and only the items a fragment shows become
    Scored objects (`scored`)."""

    catalog: Catalog
    positions: Positions
    scores: Scores

    @classmethod
    def of(cls, catalog: Catalog, scored: Iterable[Scored]) -> Candidates:
        """From objects (popular items, the affinity ranking, ...): an item listed twice keeps its best score, in
        the place it was first listed; an item the catalog does not hold is left out (serve shows nothing from
        outside its catalog)."""
        position = catalog.position
        best: dict[int, float] = {}
        for candidate in scored:
            where = position.get(candidate.item.id)
            if where is not None and (where not in best or candidate.score > best[where]):
                best[where] = candidate.score
        return cls(
            catalog,
            np.fromiter(best, dtype=np.intp, count=len(best)),
            np.fromiter(best.values(), dtype=np.float64, count=len(best)),
        )

    @classmethod
    def empty(cls, catalog: Catalog) -> Candidates:
        return cls(catalog, np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.positions)

    def ids(self) -> list[str]:
        ids = self.catalog.ids
        return [ids[where] for where in self.positions.tolist()]

    def scored(self, k: int | None = None) -> list[Scored]:
        """The first k (all by default) as objects."""
        item = self.catalog.item
        return [
            Scored(item(where), score)
            for where, score in zip(self.positions[:k].tolist(), self.scores[:k].tolist(), strict=True)
        ]

    def then(self, more: Candidates) -> Candidates:
        """These, then `more` (none of these) below them."""
        if more.catalog is not self.catalog:  # its positions mean other items here: go by the ids
            more = Candidates.of(self.catalog, more.scored())
        return Candidates(
            self.catalog, np.concatenate([self.positions, more.positions]), np.concatenate([self.scores, more.scores])
        )


def popular(catalog: Catalog, k: int, category: str | None = None, exclude: Collection[str] = ()) -> list[Scored]:
    """The k most popular items, in `category` first when given (then overall, to fill k)."""
    chosen: list[Scored] = []
    seen: set[str] = set(exclude)
    pools = [catalog.by_category.get(category, [])] if category else []
    for pool in [*pools, catalog.items]:
        for item in pool:
            if len(chosen) == k:
                return chosen
            if item.id in seen:
                continue
            seen.add(item.id)
            chosen.append(Scored(item, item.popularity / catalog.max_popularity))
    return chosen


def excluded_for(profile: Profile, dismissed: Collection[str] = ()) -> set[str]:
    """What a person should not be offered again: items bought, items already in the cart, and `dismissed`."""
    return set(profile.purchased) | set(profile.cart) | set(dismissed)


def by_affinity(
    catalog: Catalog,
    profile: Profile,
    now_ms: int,
    k: int,
    settings: FoldSettings | None = None,
    exclude: Collection[str] | None = None,
) -> list[Scored]:
    """`exclude` defaults to what the person bought or has in the cart (the rules may say otherwise)."""
    affinity = affinities_at(profile, now_ms, settings or FoldSettings())
    total = sum(affinity.values())
    exclude = excluded_for(profile) if exclude is None else exclude
    if total <= 0:
        return popular(catalog, k, exclude=exclude)
    shares = {category: score / total for category, score in affinity.items()}
    top = sorted(shares, key=lambda c: (-shares[c], c))[:TOP_CATEGORIES]
    candidates: dict[str, CatalogItem] = {}
    for category in top:
        for item in catalog.by_category.get(category, [])[:CANDIDATES_PER_CATEGORY]:
            candidates.setdefault(item.id, item)
    for item in catalog.items[: CANDIDATES_PER_CATEGORY + len(exclude)]:
        candidates.setdefault(item.id, item)
    # An item scores by the person's share of interest in its category times its popularity within that
    # category, so a sofa lover sees the best sofas rather than the best-selling phones.
    top_in = {c: catalog.by_category[c][0].popularity for c in top if catalog.by_category.get(c)}
    scored = [
        Scored(item, _affinity_score(item, shares, top_in, catalog.max_popularity))
        for item in candidates.values()
        if item.id not in exclude
    ]
    scored.sort(key=lambda s: (-s.score, s.item.id))
    return scored[:k]


def _affinity_score(
    item: CatalogItem, shares: dict[str, float], top_in: dict[str, float], max_popularity: float
) -> float:
    category = item.category or ""
    within = item.popularity / top_in[category] if category in top_in else 0.0
    return shares.get(category, 0.0) * within + GLOBAL_WEIGHT * item.popularity / max_popularity
