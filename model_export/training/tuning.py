"""Family and hyperparameters chosen on a validation split carved from the training period, never on the test.

The validation split is the training period's own last part: models are fitted on what came before it and
asked both protocols' questions about it. Every trial, of every family and of every baseline, is scored by
one criterion that weighs both protocols:

    for each of the four figures (user-split NDCG@10 and Recall@20, session NDCG@10 and Recall@20), the
    trial's value relative to the best value any trial reached on that figure; the score is the SMALLEST of
    these four ratios (the trial's worst shortfall), ties broken by their mean.

It is the evaluation's target turned into a choice: the model that is nowhere far behind the best, on
either protocol, wins over one that leads on one figure and trails on another.

Which trial wins is decided by incumbents and challengers, never by the highest score alone. Each family's first
trial (its defaults) is its incumbent; the trial the criterion ranks first among the others replaces it only when
its gain is clear: more than MARGIN on the smallest ratio, and more than CLEAR_ERRORS standard errors of the paired
gain in the mean ratio, from a bootstrap that resamples the same validation questions (whole users, whole sessions)
for both trials. The hybrid's coordinate search takes each step by the same rule, and across families the default
family (the hybrid, what a shop without a validation split gets) is the incumbent that the best other family's
choice must clearly beat. Why: a highest score alone moves with whichever users and questions a split holds, and
among trials within noise of each other it picked a different one on a different sample of the same shop. A clear
gain rarely hinges on the sample (only one close to the bar can), so the search on a bounded sample of users chooses
what the search on everyone does (tests/unit/test_search_sample.py), without dropping a family or a grid point, and
the rule needs nothing a shop may lack (categories, views, times of day). The price: a gain the validation split
cannot show clearly is not taken, so a small shop stays closer to the defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from tqdm import tqdm

from model_export.evaluation.baselines import Baseline
from model_export.evaluation.metrics import Scorer, per_query, rank, summarize
from model_export.recommenders import FAMILIES, Hybrid, Recommender
from model_export.recommenders.base import DECAYS
from model_export.training.protocols import Protocol, Queries, encode, session_next_item, time_cutoff, user_split
from model_export.training.recs import RecsData, RecsModel
from model_export.training.replay import replay
from personalization.profile import Profile
from personalization.recommend import RecentWeighting

FIGURES = (("user", "ndcg@10"), ("user", "recall@20"), ("session", "ndcg@10"), ("session", "recall@20"))
# The smallest gain in the smallest ratio worth moving away from an incumbent for, even when it is certain: on a
# shop with many questions the standard error gets tiny, and a 1% better validation figure is not a better model.
MARGIN = 0.02
# How many standard errors of the paired gain (in the mean ratio) a challenger must clear. One search makes about
# thirty comparisons, each of the best of several challengers; at 3 a one-sided test of one pair of equal trials
# moves about once in 700, so a search among trials no validation split tells apart (most of a grid, on a small
# shop) stays at its incumbents instead of following the noise of the one split it has.
CLEAR_ERRORS = 3.0
# Bootstrap resamples of the validation questions: the standard error to within about 4%.
RESAMPLES = 400
# The resamples depend only on the questions (fixed seed): two runs on the same data decide the same.
BOOTSTRAP_SEED = 0
# Keeps a figure no trial scores on (a protocol without questions) from deciding anything.
EPSILON = 1e-4
# Validation questions per protocol: enough to tell candidates apart, few enough for a fast search.
VALIDATION_QUERIES = 5_000
# Users the search learns from (and asks): the search's cost follows its users and their items, not the shop's
# size. tests/unit/test_search_sample.py shows the choice on a sample equals the choice on everyone.
SEARCH_USERS = 4_000
CRITERION = (
    "on the validation split, each trial's four figures (user-split NDCG@10 and Recall@20, session NDCG@10 and"
    " Recall@20) relative to the best any trial reached; the score is the smallest ratio. Each family's defaults,"
    " then the default family (hybrid), are the incumbents: the best-scoring challenger replaces one only when its"
    f" score gain exceeds {MARGIN} and its mean ratio's gain {CLEAR_ERRORS:g} standard errors of the paired gain"
    " (a bootstrap over the same questions, by user and session)"
)


Metrics = dict[str, dict[str, float]]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Evidence:
    """A trial's four figures (FIGURES order) on the validation questions, and on each bootstrap resample of them
    (RESAMPLES x 4): every trial sees the same resamples, so two trials' difference is a paired one."""

    point: Floats
    resampled: Floats


def resample_weights(groups: Sequence[str], resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Floats:
    """[resamples x questions] weights whose product with per-question values gives each resample's mean.

    A resample draws as many groups as there are, with replacement (a question weighs as often as its group is
    drawn): the questions of one user or one session rise and fall together, so resampling them one by one
    would understate the error. numpy has the draw; the cluster bootstrap around it is four lines."""
    codes, uniques = pd.factorize(pd.Series(list(groups), dtype=object))
    n_groups = len(uniques)
    counts = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=resamples)
    weights = counts[:, codes].astype(np.float64)
    return np.asarray(weights / weights.sum(axis=1, keepdims=True), dtype=np.float64)


@dataclass
class Validation:
    data: RecsData
    protocols: list[Protocol]
    _encoded: dict[tuple[str, float], Queries] = field(default_factory=dict)
    _weights: dict[str, Floats] = field(default_factory=dict)

    def queries(self, protocol: Protocol, decay: float) -> Queries:
        key = (protocol.name, decay)
        if key not in self._encoded:
            index = self.data.index
            self._encoded[key] = encode(protocol, index.position, len(index), RecentWeighting(decay=decay))
        return self._encoded[key]

    def weights(self, protocol: Protocol) -> Floats:
        if protocol.name not in self._weights:
            groups = [query.group or str(i) for i, query in enumerate(protocol.queries)]
            self._weights[protocol.name] = resample_weights(groups)
        return self._weights[protocol.name]

    def measure(self, scorer: Scorer, decay: float) -> Metrics:
        return self.assess(scorer, decay)[0]

    def assess(self, scorer: Scorer, decay: float) -> tuple[Metrics, Evidence]:
        """The protocols' summaries, and the four figures with their bootstrap resamples."""
        found = {}
        n_items = len(self.data.index)
        point = np.zeros(len(FIGURES))
        resampled = np.zeros((RESAMPLES, len(FIGURES)))
        for protocol in self.protocols:
            queries = self.queries(protocol, decay)
            lists = rank(scorer, queries)
            found[protocol.name] = summarize(lists, queries, n_items)
            if not len(queries):
                continue
            values = per_query(lists, queries, n_items)
            for column, (name, metric) in enumerate(FIGURES):
                if name == protocol.name:
                    point[column] = float(values[metric].mean())
                    resampled[:, column] = self.weights(protocol) @ values[metric]
        return found, Evidence(point, resampled)


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
    evidence: Evidence = field(compare=False, repr=False)


@dataclass(frozen=True)
class Decision:
    """A challenger against an incumbent: its gain in the smallest ratio (the criterion), its gain in the mean
    ratio, and the standard error of that mean gain.

    The smallest ratio ranks the trials and must improve by MARGIN; the noise is judged on the mean ratio, which
    averages the four figures' noise where the smallest takes the worst of it (it jumps between figures from one
    resample to the next, with about twice the standard error), so a real gain shows on half the questions."""

    challenger: Trial
    incumbent: Trial
    gain: float
    overall: float
    error: float

    @property
    def clear(self) -> bool:
        return self.gain > MARGIN and self.overall > CLEAR_ERRORS * self.error


@dataclass
class Trials:
    """Every trial measured on one validation split, the best value reached on each figure so far, each family's
    choice (`chosen`) and every comparison made (`decisions`)."""

    valid: Validation
    tried: list[Trial] = field(default_factory=list)
    best: dict[tuple[str, str], float] = field(default_factory=dict)
    chosen: dict[str, Trial] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)

    def measure(self, family: str, params: Mapping[str, Any], model: RecsModel) -> Trial:
        decay = float(params.get("decay", RecentWeighting().decay))
        metrics, evidence = self.valid.assess(model.scores, decay)
        trial = Trial(family, dict(params), metrics, evidence)
        self.tried.append(trial)
        for key in FIGURES:
            self.best[key] = max(self.best.get(key, 0.0), figure(metrics, *key))
        return trial

    def _ratios(self, values: Floats) -> Floats:
        scale = np.asarray([self.best.get(key, 0.0) for key in FIGURES]) + EPSILON
        return np.asarray((values + EPSILON) / scale)

    def rank(self, trial: Trial) -> tuple[float, float]:
        """The criterion (smallest ratio, then mean ratio) against the best figures so far, unrounded."""
        ratios = self._ratios(trial.evidence.point)
        return float(ratios.min()), float(ratios.mean())

    def compare(self, challenger: Trial, incumbent: Trial) -> Decision:
        """The gains of `challenger` over `incumbent` (against the best figures so far), and the standard error
        of the mean ratio's gain over the bootstrap resamples both were measured on (a paired one)."""
        (worst, mean), (worst_before, mean_before) = self.rank(challenger), self.rank(incumbent)
        paired = self._ratios(challenger.evidence.resampled).mean(axis=1) - self._ratios(
            incumbent.evidence.resampled
        ).mean(axis=1)
        decision = Decision(challenger, incumbent, worst - worst_before, mean - mean_before, float(np.std(paired)))
        self.decisions.append(decision)
        return decision

    def challenge(self, incumbent: Trial, challengers: Sequence[Trial]) -> Trial:
        """The challenger the criterion ranks first (the earliest among equals) if it is clearly better than
        `incumbent`, else `incumbent`."""
        if not challengers:
            return incumbent
        top = max(challengers, key=self.rank)
        return top if self.compare(top, incumbent).clear else incumbent

    def choose(self, family: str, incumbent: Trial, challengers: Sequence[Trial]) -> Trial:
        """`challenge`, kept as the family's choice."""
        self.chosen[family] = self.challenge(incumbent, challengers)
        return self.chosen[family]

    def score(self, metrics: Metrics) -> tuple[float, float]:
        return criterion(metrics, self.best)

    def winner(self, family: str) -> Trial:
        """The family's choice: its first trial (its defaults) unless its best one was clearly better."""
        return self.chosen[family]


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
class Comparison:
    challenger: str
    incumbent: str
    gain: float
    overall: float
    error: float
    moved: bool


@dataclass(frozen=True)
class Selection:
    """The winning family and hyperparameters, each family's choice, and why the winner won: `against` is the
    comparison of the best other family's choice with the default family's."""

    family: str
    params: dict[str, Any]
    metrics: Metrics
    families: dict[str, FamilyResult]
    best: dict[tuple[str, str], float]
    tried: int
    against: Comparison | None = None

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
        against = self.against
        if against is not None:
            verdict = "clearly better than" if against.moved else "not clearly better than"
            text += (
                f"; {against.challenger} was {verdict} the incumbent {against.incumbent}"
                f" ({against.gain:+.3f} on the weakest figure's ratio, {against.overall:+.3f} on the mean ratio with"
                f" {against.error:.3f} standard error; a move needs more than {MARGIN} on the first and"
                f" {CLEAR_ERRORS:g} standard errors on the second)"
            )
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
    """Every family searched on the validation split; the default family's choice wins unless another family's
    choice is clearly better (`Trials.compare`), the challengers in the families' fixed order."""
    trials = Trials(valid)
    for family in families:
        family.search(valid.data, trials, progress=progress)
    searched = [family.name for family in families if family.name in trials.chosen]
    # The default family first (stable sort): it is what a shop gets when nothing is clearly better.
    order = sorted(searched, key=lambda name: name != Hybrid.name)
    incumbent = trials.chosen[order[0]]
    winner = trials.challenge(incumbent, [trials.chosen[name] for name in order[1:]])
    against = trials.decisions[-1] if len(order) > 1 else None
    results = {}
    for name in searched:
        best = trials.winner(name)
        count = sum(1 for t in trials.tried if t.family == name)
        results[name] = FamilyResult(name, best.params, best.metrics, trials.score(best.metrics), count)
    comparison = None
    if against is not None:
        comparison = Comparison(
            against.challenger.family, incumbent.family, against.gain, against.overall, against.error, against.clear
        )
    return Selection(
        winner.family, winner.params, winner.metrics, results, dict(trials.best), len(trials.tried), comparison
    )


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
