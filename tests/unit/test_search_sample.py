"""The search runs on a bounded sample of users and questions; on the bundled shop it chooses exactly what the
search over everyone and every question does.

The bounded search is what makes training linear: its cost follows SEARCH_USERS and VALIDATION_QUERIES, not the
shop. It must not buy that by choosing differently: on the bundled events the search with the trainer's bounds
(4,000 of the 4,504 users) and the unbounded search choose the same family with the same hyperparameters, every
family and every grid point still tried. The committed 2,000-row sample (the stand-in on a clone without
../shared) has fewer users than the bound, so there the bound is two thirds of its users: the test still compares
a search on a sample with the search on everyone.

It holds because of how the search decides (model_export.training.tuning): a trial replaces the defaults only
when its gain is clear against the noise of the very questions both were asked, and that does not hinge on which
users a sample holds; a highest score alone did (the search then picked other hyperparameters on the sample).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.common import bundled_events
from model_export.data.canonical import normalize, screen
from model_export.data.datasets import load_any
from model_export.recommenders import FAMILIES
from model_export.training.protocols import time_cutoff
from model_export.training.replay import replay
from model_export.training.tuning import (
    CLEAR_ERRORS,
    FIGURES,
    MARGIN,
    RESAMPLES,
    SEARCH_USERS,
    VALIDATION_QUERIES,
    Evidence,
    Selection,
    Trial,
    Trials,
    resample_weights,
    search_users,
    select,
    validation,
)
from tests.helpers.data import rees46_sample

FRACTION = 0.2
# No bound on the questions: every one the validation split holds is asked.
UNBOUNDED = 10**9


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    frame, _ = screen(load_any(bundled_events()))
    return frame


def search(frame: pd.DataFrame, users: frozenset[str] | None, limit: int) -> Selection:
    early = replay(frame, time_cutoff(frame, FRACTION))
    valid = validation(frame, FRACTION, limit=limit, profiles=early, users=users)
    assert valid is not None
    return select(valid)


def test_the_sample_is_bounded_deterministic_and_a_subset() -> None:
    frame = pd.DataFrame({"user_id": [f"u{i}" for i in range(10_000)]})
    sample = search_users(frame, 1_000)
    assert sample is not None
    assert len(sample) == 1_000
    assert sample <= set(frame["user_id"])
    assert search_users(frame.iloc[::-1], 1_000) == sample  # the users, not their order, decide
    assert search_users(frame, 10_000) is None  # small enough: everyone
    assert SEARCH_USERS >= 1_000


def test_the_bounded_search_chooses_exactly_what_the_unbounded_search_does(bundled: pd.DataFrame) -> None:
    users = bundled["user_id"].nunique()
    # The trainer's bound where it bounds anything (the bundled shop); on a smaller shop, two thirds of its users.
    bound = SEARCH_USERS if users > SEARCH_USERS else users * 2 // 3
    sample = search_users(bundled, bound)
    assert sample is not None
    assert len(sample) < users

    full, bounded = search(bundled, None, UNBOUNDED), search(bundled, sample, VALIDATION_QUERIES)

    assert (bounded.family, bounded.params) == (full.family, full.params)
    # Nothing was dropped to get there: every family searched, as many trials per family where the grid is fixed.
    assert set(bounded.families) == set(full.families) == {family.name for family in FAMILIES}
    for name in ("popularity", "item_knn", "cooccurrence", "ease", "factors"):
        assert bounded.families[name].tried == full.families[name].tried


def test_the_resamples_draw_whole_groups_and_are_means() -> None:
    groups = ["a", "a", "b", "c", "c", "c"]
    weights = resample_weights(groups)
    assert weights.shape == (RESAMPLES, len(groups))
    assert np.allclose(weights.sum(axis=1), 1.0)
    # The questions of one group are drawn together: equal weights in every resample.
    assert np.array_equal(weights[:, 0], weights[:, 1])
    assert np.array_equal(weights[:, 3], weights[:, 5])
    assert not np.array_equal(weights[:, 0], weights[:, 2])
    assert np.array_equal(resample_weights(groups), weights)  # the same questions, the same resamples


def trial(figures: float, spread: float, rng: np.random.Generator) -> Trial:
    """A trial whose four figures are `figures`, measured with a resampling spread of `spread`."""
    point = np.full(len(FIGURES), figures)
    return Trial("any", {}, {}, Evidence(point, point + rng.normal(0.0, spread, (RESAMPLES, len(FIGURES)))))


def test_a_challenger_replaces_the_incumbent_only_on_a_clear_gain() -> None:
    valid = validation(normalize(rees46_sample()), FRACTION)
    assert valid is not None
    trials = Trials(valid, best=dict.fromkeys(FIGURES, 0.2))
    rng = np.random.default_rng(7)
    incumbent = trial(0.1, 0.0, rng)
    # The same gain (10% of the best figures) with a small and with a large error.
    sure, unsure = trial(0.12, 0.002, rng), trial(0.12, 0.02, rng)
    assert trials.compare(sure, incumbent).clear
    assert not trials.compare(unsure, incumbent).clear
    assert trials.challenge(incumbent, [unsure]) is incumbent
    assert trials.challenge(incumbent, [unsure, sure]) is incumbent  # the first ranked, the earliest of equals
    assert trials.challenge(incumbent, [sure, unsure]) is sure
    # A certain but tiny gain (under MARGIN) does not move either.
    tiny = trial(0.1 + 0.2 * MARGIN / 2, 1e-6, rng)
    decision = trials.compare(tiny, incumbent)
    assert decision.overall > CLEAR_ERRORS * decision.error
    assert not decision.clear
    assert trials.challenge(incumbent, []) is incumbent
