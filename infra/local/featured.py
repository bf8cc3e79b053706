"""Who `make demo` features, and what it prints beside their fragment.

The featured person must be one whose fragment the model answered: the example experiment sends half of all
people (by a hash of the pseudonym, which depends on the run's pepper) to a non-personal arm, and a newcomer shown
smartphones for someone who viewed 41 sofas learns nothing. So the demo takes the most active person, in a
deterministic order (events, then id), who has enough history and whom the active experiment, if any, leaves in
an arm that uses the model. No id is hard-coded: the same choice works on any canonical dataset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from personalization.experiments import Experiment, assignment

if TYPE_CHECKING:
    import pandas as pd

# Fewer events than this and "what the model learned" is a guess from one or two clicks.
MIN_HISTORY = 5
SLOT = "for-you"


@dataclass(frozen=True, slots=True)
class Featured:
    user_id: str
    pseudonym: str
    events: int
    # The experiment variant key ("recs-vs-popular:control"), None when no experiment covers the slot.
    variant: str | None
    # Why this person and not the most active one (empty when they are the most active).
    note: str = ""


def uses_model(experiments: Sequence[Experiment], pseudonym: str, now_ms: int, slot: str = SLOT) -> bool:
    """Whether the person's fragment in `slot` is ranked by the model (no experiment, or a model arm)."""
    assigned = assignment(experiments, slot, now_ms, pseudonym)
    return assigned is None or assigned.variant.strategy in (None, "model")


def choose_featured(
    frame: pd.DataFrame,
    pseudonymize: Callable[[str], str],
    experiments: Sequence[Experiment],
    now_ms: int,
    min_history: int = MIN_HISTORY,
) -> Featured:
    """The most active person with at least `min_history` events whom the model answers; the most active
    person, with a note saying why, when nobody qualifies."""
    counts = frame["user_id"].astype(str).value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    for skipped, (user_id, events) in enumerate(ranked):
        if events < min_history:
            break
        pseudonym = pseudonymize(user_id)
        if uses_model(experiments, pseudonym, now_ms):
            assigned = assignment(experiments, SLOT, now_ms, pseudonym)
            note = f"{skipped} more active {'person is' if skipped == 1 else 'people are'} in an arm without the model"
            key = None if assigned is None else assigned.key
            return Featured(user_id, pseudonym, int(events), key, note if skipped else "")
    user_id, events = ranked[0]
    pseudonym = pseudonymize(user_id)
    assigned = assignment(experiments, SLOT, now_ms, pseudonym)
    return Featured(
        user_id,
        pseudonym,
        int(events),
        None if assigned is None else assigned.key,
        f"nobody with {min_history}+ events is in an arm that uses the model: the most active person instead",
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    """What the person did against what they were recommended: categories, or item ids without categories."""

    by: str  # "categories" or "item ids"
    theirs: list[tuple[str, float]]
    recommended: list[tuple[str, int]]

    @property
    def overlap(self) -> list[str]:
        recommended = {name for name, _ in self.recommended}
        return [name for name, _ in self.theirs if name in recommended]

    def lines(self) -> list[str]:
        theirs = ", ".join(f"{name} ({score:.1f})" for name, score in self.theirs) or "none"
        recommended = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in self.recommended) or "none"
        overlap = ", ".join(self.overlap) or "none"
        lines = [] if self.by == "categories" else ["the dataset has no categories: item ids instead"]
        return [
            *lines,
            f"their top {self.by}: {theirs}",
            f"recommended {self.by}: {recommended}",
            f"overlap: {overlap}",
        ]


def compare(
    affinities: Mapping[str, float],
    their_items: Iterable[str],
    recommended: Sequence[Mapping[str, object]],
    top: int = 5,
) -> Comparison:
    """`affinities` are the profile's decayed category scores; `their_items` the person's events' item ids;
    `recommended` the fragment's items as serve's JSON lists them (id, category)."""
    categories = [item.get("category") for item in recommended]
    if affinities and any(isinstance(category, str) for category in categories):
        theirs = sorted(affinities.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        named = Counter(category if isinstance(category, str) else "(none)" for category in categories)
        return Comparison("categories", theirs, list(named.items()))
    items = Counter(their_items).most_common(top)
    return Comparison("item ids", [(item, float(n)) for item, n in items], [(str(i["id"]), 1) for i in recommended])
