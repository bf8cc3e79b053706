"""Hyperparameters chosen on a validation split carved from the training period, never on the test.

The validation split is the training period's own last part: models are fitted on what came before it and
asked both protocols' questions about it. Every model, ours and the baselines, is selected the same way,
on one objective: the mean, over the two protocols, of the user split's NDCG@10 and the session protocol's
Recall@20, each relative to the first candidate's (so neither protocol's scale dominates).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from tqdm import tqdm

from model_export.baselines import Baseline
from model_export.metrics import Scorer, rank, summarize
from model_export.protocols import Protocol, Queries, encode, session_next_item, time_cutoff, user_split
from model_export.recs import RecsData, RecsParams, with_values
from model_export.replay import replay
from personalization.profile import Profile
from personalization.recommend import RecentWeighting

# How fast older recent items fade (per event back): 1.0 weighs a history evenly, 0.15 is almost "last item".
DECAYS = (1.0, 0.7, 0.4, 0.15)
SEARCH: dict[str, tuple[Any, ...]] = {
    "decay": DECAYS,
    "category": (0.0, 0.01, 0.05, 0.2, 1.0),
    "blend": (0.0, 0.25, 0.5, 0.75, 1.0),
    "ease": (0.0, 0.25, 0.5, 0.75, 1.0),
    "l2": (100.0, 500.0, 2000.0),
    "window": (1, 3, 5),
    "backward": (0.0, 0.5, 1.0),
    "factors": (0.0, 0.05, 0.2),
    "prior": (0.001, 0.02, 0.1),
}
OBJECTIVE = {"user": "ndcg@10", "session": "recall@20"}
ROUNDS = 2
# Validation questions per protocol: enough to tell candidates apart, few enough for a fast search.
VALIDATION_QUERIES = 5_000

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


def validation(
    frame: pd.DataFrame,
    fraction: float,
    limit: int = VALIDATION_QUERIES,
    profiles: Mapping[str, Profile] | None = None,
) -> Validation | None:
    """None when the frame is too small to hold back a validation part with questions in it. `profiles`, when
    given, are `frame` replayed up to `time_cutoff(frame, fraction)` (saves replaying it again)."""
    cutoff = time_cutoff(frame, fraction)
    train = frame[frame["timestamp"] < cutoff]
    if train.empty or train["item_id"].nunique() < 2:
        return None
    replayed = profiles if profiles is not None else replay(train)
    protocols = [user_split(frame, cutoff, replayed, limit), session_next_item(frame, cutoff, limit)]
    if not any(p.queries for p in protocols):
        return None
    return Validation(RecsData(train), protocols)


def objective(found: Metrics, reference: Metrics) -> float:
    parts = [
        (found[name][metric] + 1e-4) / (reference[name][metric] + 1e-4)
        for name, metric in OBJECTIVE.items()
        if name in found
    ]
    return sum(parts) / len(parts) if parts else 0.0


@dataclass(frozen=True)
class Selected:
    params: Mapping[str, Any]
    metrics: Metrics
    tried: int


def _matters(name: str, params: RecsParams, data: RecsData) -> bool:
    """Whether changing `name` can change the model at all (a pointless fit costs as much as a useful one)."""
    if name == "category":
        return data.categories() is not None
    if name == "l2":
        return params.ease > 0
    if name == "blend":
        return params.ease < 1
    if name in {"window", "backward"}:
        return params.ease < 1 and params.blend < 1
    return True


def select_recs(valid: Validation, start: RecsParams | None = None, progress: bool = False) -> Selected:
    """Coordinate search over SEARCH (two rounds): a full grid would be hundreds of fits for little gain."""
    best = start or RecsParams()
    model = valid.data.fit(best)
    best_metrics = reference = valid.measure(model.scores, best.decay)
    best_score = objective(best_metrics, reference)
    tried = 1
    steps = [(name, value) for _ in range(ROUNDS) for name, values in SEARCH.items() for value in values]
    for name, value in tqdm(steps, desc="select: recs", unit="fit", disable=not progress):
        candidate = with_values(best, **{name: value})
        if candidate == best or not _matters(name, best, valid.data):
            continue
        model = valid.data.fit(candidate)
        found = valid.measure(model.scores, candidate.decay)
        tried += 1
        score = objective(found, reference)
        if score > best_score + 1e-9:
            best, best_metrics, best_score = candidate, found, score
    return Selected(best.to_dict(), best_metrics, tried)


def select_baseline(valid: Validation, baseline: Baseline, progress: bool = False) -> Selected:
    decays: Sequence[float] = (1.0,) if baseline.name == "popularity" else DECAYS
    candidates = [(dict(params), decay) for params in baseline.grid for decay in decays]
    best: tuple[float, dict[str, Any], Metrics] | None = None
    reference: Metrics | None = None
    fitted: dict[str, Callable[..., Any]] = {}
    for params, decay in tqdm(candidates, desc=f"select: {baseline.name}", unit="fit", disable=not progress):
        key = repr(sorted(params.items()))
        if key not in fitted:
            fitted[key] = baseline.fit(valid.data, params)
        found = valid.measure(fitted[key], decay)
        reference = reference or found
        score = objective(found, reference)
        if best is None or score > best[0] + 1e-9:
            best = (score, {**params, "decay": decay}, found)
    assert best is not None
    return Selected(best[1], best[2], len(candidates))
