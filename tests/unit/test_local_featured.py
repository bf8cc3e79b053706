"""Whom `make demo` features (infra/local/featured.py): the most active person the model answers."""

from __future__ import annotations

import pandas as pd

from infra.local.featured import choose_featured, compare, uses_model
from personalization.experiments import Experiment, Variant, assign

NOW_MS = 1_800_000_000_000
SPLIT = Experiment(
    id="recs-vs-popular",
    slots=["for-you"],
    variants=[
        Variant(name="control", share=0.5, strategy="model"),
        Variant(name="popular", share=0.5, strategy="popular"),
    ],
)


def frame_of(counts: dict[str, int]) -> pd.DataFrame:
    rows = [(user, f"i{n}") for user, count in counts.items() for n in range(count)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def identity(user: str) -> str:
    return f"p-{user}"


def arm(user: str) -> str:
    return assign(SPLIT, identity(user)).name


def test_the_most_active_person_in_the_popular_arm_is_passed_over_for_the_next_in_the_model_arm() -> None:
    users = [f"u{n}" for n in range(40)]
    popular = next(u for u in users if arm(u) == "popular")
    control = next(u for u in users if arm(u) == "control")
    featured = choose_featured(frame_of({popular: 30, control: 20, "u-small": 2}), identity, [SPLIT], NOW_MS)
    assert (featured.user_id, featured.events, featured.variant) == (control, 20, "recs-vs-popular:control")
    assert featured.note == "1 more active person is in an arm without the model"
    assert uses_model([SPLIT], featured.pseudonym, NOW_MS)
    assert not uses_model([SPLIT], identity(popular), NOW_MS)


def test_without_experiments_the_most_active_person_is_featured_ties_broken_by_id() -> None:
    featured = choose_featured(frame_of({"b": 9, "a": 9, "c": 3}), identity, [], NOW_MS)
    assert (featured.user_id, featured.variant, featured.note) == ("a", None, "")


def test_when_nobody_qualifies_the_most_active_person_is_featured_and_the_note_says_why() -> None:
    popular = next(f"u{n}" for n in range(40) if arm(f"u{n}") == "popular")
    featured = choose_featured(frame_of({popular: 9, "x": 2}), identity, [SPLIT], NOW_MS)
    assert featured.user_id == popular
    assert featured.variant == "recs-vs-popular:popular"
    assert "nobody with 5+ events" in featured.note


def test_categories_are_compared_with_their_overlap() -> None:
    recommended = [{"id": "1", "category": "sofa"}, {"id": "2", "category": "sofa"}, {"id": "3", "category": "tv"}]
    comparison = compare({"sofa": 4.0, "lamp": 2.0, "rug": 0.5}, ["9"], recommended, top=2)
    assert comparison.by == "categories"
    assert comparison.lines() == [
        "their top categories: sofa (4.0), lamp (2.0)",
        "recommended categories: sofa x2, tv",
        "overlap: sofa",
    ]


def test_without_categories_item_ids_are_compared_and_the_printout_says_so() -> None:
    recommended = [{"id": "7", "category": None}, {"id": "8", "category": None}]
    lines = compare({}, ["8", "5", "8"], recommended).lines()
    assert lines == [
        "the dataset has no categories: item ids instead",
        "their top item ids: 8 (2.0), 5 (1.0)",
        "recommended item ids: 7, 8",
        "overlap: 8",
    ]
