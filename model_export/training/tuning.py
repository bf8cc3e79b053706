"""Family and hyperparameters chosen on a validation split carved from the training period, never on the test.

The validation split is the training period's own last part: models are fitted on what came before it and
asked both protocols' questions about it. Every trial, of every family and of every baseline, is scored by
one criterion that weighs both protocols:

    for each of the four figures (user-split NDCG@10 and Recall@20, session NDCG@10 and Recall@20), the
    trial's value relative to the best value any trial reached on that figure; the score is the SMALLEST of
    these four ratios (the trial's worst shortfall), ties broken by their mean.

It is the evaluation's target turned into a choice: the model that is nowhere far behind the best, on
either protocol, wins over one that leads on one figure and trails on another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from model_export.evaluation.baselines import Baseline
from model_export.evaluation.metrics import Scorer, rank, summarize
from model_export.recommenders import FAMILIES, Recommender
from model_export.recommenders.base import DECAYS
from model_export.training.protocols import Protocol, Queries, encode, session_next_item, time_cutoff, user_split
from model_export.training.recs import RecsData, RecsModel
from model_export.training.replay import replay
from personalization.profile import Profile
from personalization.recommend import RecentWeighting

FIGURES = (("user", "ndcg@10"), ("user", "recall@20"), ("session", "ndcg@10"), ("session", "recall@20"))
# Differences in the smallest ratio below this are validation noise: searching on two thirds of the bundled
# shop's users instead of all moved the winning trial's ratio by 0.6% and other families' by up to 9%, so a
# smaller gain is no evidence of a better model.
NOISE = 0.02
# Keeps a figure no trial scores on (a protocol without questions) from deciding anything.
EPSILON = 1e-4
# Validation questions per protocol: enough to tell candidates apart, few enough for a fast search.
VALIDATION_QUERIES = 5_000
# Users the search learns from (and asks): the search's cost follows its users and their items, not the shop's
# size. tests/unit/test_search_sample.py shows the choice on a sample equals the choice on everyone.
SEARCH_USERS = 4_000
CRITERION = (
    "on the validation split, each trial's four figures (user-split NDCG@10 and Recall@20, session NDCG@10 and"
    " Recall@20) relative to the best any trial reached; the highest smallest ratio wins, ties by the mean ratio"
)

Metrics = dict[str, dict[str, float]]


@dataclass
class Validation:
    data: RecsData
    protocols: list[Protocol]
    _encoded: dict[tuple[str, float], Queries] = field(default_factory=dict)

    def queries(self, protocol: Protocol, decay: float) -> Queries:
        key = (protocol.name, decay)
        if key not in self._encoded:
            index = self.data.index
            self._encoded[key] = encode(protocol, index.position, len(index), RecentWeighting(decay=decay))
        return self._encoded[key]

    def measure(self, scorer: Scorer, decay: float) -> Metrics:
        found = {}
        for protocol in self.protocols:
            queries = self.queries(protocol, decay)
            found[protocol.name] = summarize(rank(scorer, queries), queries, len(self.data.index))
        return found


def search_users(frame: pd.DataFrame, limit: int = SEARCH_USERS) -> frozenset[str] | None:
    """The users the search learns from and asks questions of: all (None) up to `limit`, else `limit` of them
    picked by a hash of their id (the same users on every run and on every engine, and, hashes being uniform,
    a fair draw of the shop). Items are not sampled: the sample's items are whatever its users touched."""
    users = frame["user_id"].astype(str).unique()
    if len(users) <= limit:
        return None
    hashes = pd.util.hash_array(np.asarray(users, dtype=object))
    return frozenset(users[np.argsort(hashes, kind="stable")[:limit]].tolist())


def validation(
    frame: pd.DataFrame,
    fraction: float,
    limit: int = VALIDATION_QUERIES,
    profiles: Mapping[str, Profile] | None = None,
    users: frozenset[str] | None = None,
) -> Validation | None:
    """None when the frame is too small to hold back a validation part with questions in it. `profiles`, when
    given, are `frame` replayed up to `time_cutoff(frame, fraction)` (saves replaying it again). `users`, when
    given, bounds the search to their events (`search_users`); the cutoff is the whole frame's."""
    cutoff = time_cutoff(frame, fraction)
    if users is not None:
        frame = frame[frame["user_id"].isin(users)]
    train = frame[frame["timestamp"] < cutoff]
    if train.empty or train["item_id"].nunique() < 2:
        return None
    replayed = profiles if profiles is not None else replay(train)
    protocols = [user_split(frame, cutoff, replayed, limit), session_next_item(frame, cutoff, limit)]
    if not any(p.queries for p in protocols):
        return None
    return Validation(RecsData(train), protocols)


def figure(metrics: Metrics, protocol: str, metric: str) -> float:
    return float(metrics.get(protocol, {}).get(metric, 0.0))


def criterion(metrics: Metrics, best: Mapping[tuple[str, str], float]) -> tuple[float, float]:
    """(smallest ratio, mean ratio) of the four figures to the best values `best`."""
    ratios = [(figure(metrics, *key) + EPSILON) / (best.get(key, 0.0) + EPSILON) for key in FIGURES]
    return min(ratios), sum(ratios) / len(ratios)


@dataclass(frozen=True)
class Trial:
    family: str
    params: dict[str, Any]
    metrics: Metrics


@dataclass
class Trials:
    """Every trial measured on one validation split, and the best value reached on each figure so far."""

    valid: Validation
    tried: list[Trial] = field(default_factory=list)
    best: dict[tuple[str, str], float] = field(default_factory=dict)

    def measure(self, family: str, params: Mapping[str, Any], model: RecsModel) -> Metrics:
        decay = float(params.get("decay", RecentWeighting().decay))
        found = self.valid.measure(model.scores, decay)
        self.tried.append(Trial(family, dict(params), found))
        for key in FIGURES:
            self.best[key] = max(self.best.get(key, 0.0), figure(found, *key))
        return found

    def score(self, metrics: Metrics) -> tuple[float, float]:
        return criterion(metrics, self.best)

    def improves(self, found: Metrics, current: Metrics) -> bool:
        """Whether `found` beats `current` by more than validation noise (NOISE on the smallest ratio)."""
        return self.score(found)[0] > self.score(current)[0] + NOISE

    def winner(self, family: str | None = None) -> Trial:
        """The earliest trial (among one family's, when named) within NOISE of the best smallest ratio.

        Families are tried in a fixed order and each search starts from its defaults, so among trials no
        validation split can tell apart the first tried wins: the choice then does not hinge on which users a
        sample holds (tests/unit/test_search_sample.py)."""
        pool = [t for t in self.tried if family is None or t.family == family]
        top = max(self.score(t.metrics)[0] for t in pool)
        return next(t for t in pool if self.score(t.metrics)[0] >= top - NOISE)


@dataclass(frozen=True)
class FamilyResult:
    family: str
    params: dict[str, Any]
    metrics: Metrics
    score: tuple[float, float]
    tried: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "validation": self.metrics,
            "worst_ratio": round(self.score[0], 4),
            "mean_ratio": round(self.score[1], 4),
            "tried": self.tried,
        }


@dataclass(frozen=True)
class Selection:
    """The winning family and hyperparameters, each family's best trial, and why the winner won."""

    family: str
    params: dict[str, Any]
    metrics: Metrics
    families: dict[str, FamilyResult]
    best: dict[tuple[str, str], float]
    tried: int

    def reason(self) -> str:
        won = self.families[self.family]
        ranked = sorted(self.families.values(), key=lambda r: r.score, reverse=True)
        runner = next((r for r in ranked if r.family != self.family), None)
        text = (
            f"{self.family} is within {won.score[0]:.2f}x of the best validation value on every figure"
            f" (mean {won.score[1]:.2f}x)"
        )
        if runner is not None:
            text += f"; the next family, {runner.family}, falls to {runner.score[0]:.2f}x on its weakest figure"
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": CRITERION,
            "winner": self.family,
            "reason": self.reason(),
            "best_validation": {f"{p}/{m}": round(v, 4) for (p, m), v in self.best.items()},
            "families": {name: result.to_dict() for name, result in self.families.items()},
            "trials": self.tried,
        }


def select(valid: Validation, families: Sequence[type[Recommender]] = FAMILIES, progress: bool = False) -> Selection:
    """Every family searched on the validation split; the criterion's first trial wins."""
    trials = Trials(valid)
    for family in families:
        family.search(valid.data, trials, progress=progress)
    winner = trials.winner()
    results = {}
    for family in families:
        best = trials.winner(family.name)
        count = sum(1 for t in trials.tried if t.family == family.name)
        results[family.name] = FamilyResult(family.name, best.params, best.metrics, trials.score(best.metrics), count)
    return Selection(winner.family, winner.params, winner.metrics, results, dict(trials.best), len(trials.tried))


@dataclass(frozen=True)
class Selected:
    params: Mapping[str, Any]
    metrics: Metrics
    tried: int


def select_baseline(valid: Validation, baseline: Baseline, progress: bool = False) -> Selected:
    """A baseline's hyperparameters, by the same criterion among its own trials."""
    decays: Sequence[float] = (1.0,) if baseline.name == "popularity" else DECAYS
    candidates = [(dict(params), decay) for params in baseline.grid for decay in decays]
    found: list[tuple[dict[str, Any], Metrics]] = []
    fitted: dict[str, Callable[..., Any]] = {}
    for params, decay in tqdm(candidates, desc=f"select: {baseline.name}", unit="fit", disable=not progress):
        key = repr(sorted(params.items()))
        if key not in fitted:
            fitted[key] = baseline.fit(valid.data, params)
        found.append(({**params, "decay": decay}, valid.measure(fitted[key], decay)))
    best = {key: max(figure(metrics, *key) for _, metrics in found) for key in FIGURES}
    params, metrics = max(found, key=lambda pair: criterion(pair[1], best))
    return Selected(params, metrics, len(candidates))
