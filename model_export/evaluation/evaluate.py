"""`evaluate`: train on the past, then score every model on the same two protocols over the held-out future.

1. The last `test_fraction` of the events (by time) is the test period; nothing from it reaches training.
2. The exported models are trained on the rest exactly as `train` does (selection on a validation split
   carved from the training period), and recs.onnx is run through onnxruntime, query by query, with the
   inputs serve would build.
3. Each baseline picks its own hyperparameters on the same validation split, is refitted on the whole
   training period, and answers the same queries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from model_export.data.canonical import screen
from model_export.evaluation.baselines import baselines
from model_export.evaluation.metrics import CUTOFF, TopLists, interval, per_query, rank, summarize
from model_export.evaluation.segment_eval import segments_block
from model_export.training.parity import session
from model_export.training.protocols import Protocol, Queries, encode, session_next_item, time_cutoff, user_split
from model_export.training.segments import MIN_SHARE
from model_export.training.training import VALIDATION_FRACTION, Trained, train_models
from model_export.training.tuning import select_baseline
from personalization.recommend import OUTPUT_INDICES, RecentWeighting, onnx_feed

TEST_FRACTION = 0.2
# The exported model's bar on every figure: this share of the best other model's value.
TARGET_RATIO = 0.95
MAX_QUERIES = 20_000
ONNX = "onnx"


@dataclass
class Evaluation:
    events: int
    cutoff: pd.Timestamp
    train_s: float
    trained: Trained
    protocols: list[Protocol]
    # model -> protocol -> metric -> value
    results: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # model -> protocol -> metric -> half-width of its 95% bootstrap interval
    spread: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)
    validation: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    # model_export.evaluation.segment_eval.segments_block: the segment model's figures and segment_lift.
    segments: dict[str, Any] = field(default_factory=dict)

    def record(self, model: str, protocol: Protocol, lists: TopLists, queries: Queries) -> None:
        n_items = len(self.trained.index)
        self.results.setdefault(model, {})[protocol.name] = summarize(lists, queries, n_items)
        values = per_query(lists, queries, n_items)
        self.spread.setdefault(model, {})[protocol.name] = {name: interval(v) for name, v in values.items()}

    def summary(self) -> dict[str, Any]:
        """The JSON last line: user split under "models", the session protocol under "session"."""
        return {
            "models": {name: by_protocol["user"] for name, by_protocol in self.results.items()},
            "session": {"models": {name: by_protocol["session"] for name, by_protocol in self.results.items()}},
            "segments": self.segments,
            "train_s": round(self.train_s, 2),
            "events": self.events,
            "refused_rows": self.refused,
            "exported_family": self.trained.recs.family,
            "targets": self.targets(),
        }

    def targets(self) -> dict[str, Any]:
        """The exported model against the best other model on each protocol's NDCG@10 and Recall@20 (met where
        it reaches TARGET_RATIO of it, or where no other model finds anything), and against popularity."""
        figures: dict[str, Any] = {}
        others = [name for name in self.results if name != ONNX]
        met = True
        for protocol in ("user", "session"):
            for metric in ("ndcg@10", "recall@20"):
                ours = self.results[ONNX][protocol][metric]
                best = max(others, key=lambda name: self.results[name][protocol][metric])
                theirs = self.results[best][protocol][metric]
                ratio = ours / theirs if theirs > 0 else None
                ok = ratio is None or ratio >= TARGET_RATIO
                met = met and ok
                figures[f"{protocol}/{metric}"] = {
                    "onnx": ours,
                    "best_other": best,
                    "best_other_value": theirs,
                    "ratio": None if ratio is None else round(ratio, 3),
                    "ok": ok,
                }
        popularity = self.results.get("popularity", {}).get("user", {}).get("ndcg@10", 0.0)
        ours_user = self.results[ONNX]["user"]["ndcg@10"]
        figures["user/ndcg@10_vs_popularity"] = round(ours_user / popularity, 3) if popularity > 0 else None
        figures["met"] = met
        return figures


def run_onnx(model_bytes: bytes, queries: Queries, k: int = CUTOFF, progress: bool = False) -> TopLists:
    """recs.onnx through onnxruntime, one query at a time, as serve calls it."""
    graph = session(model_bytes)
    n_items = queries.inputs.shape[1]
    k = min(k, n_items)
    lists = np.zeros((len(queries), k), dtype=np.int64)
    inputs, exclude = queries.inputs, queries.exclude
    for row in tqdm(range(len(queries)), desc="evaluate: onnx", unit="q", disable=not progress):
        a, b = inputs.indptr[row], inputs.indptr[row + 1]
        c, d = exclude.indptr[row], exclude.indptr[row + 1]
        feed = onnx_feed(
            inputs.indices[a:b].astype(np.int64), inputs.data[a:b], exclude.indices[c:d].astype(np.int64), k
        )
        lists[row] = graph.run([OUTPUT_INDICES], feed)[0]
    return lists


def evaluate(
    frame: pd.DataFrame,
    test_fraction: float = TEST_FRACTION,
    validation_fraction: float = VALIDATION_FRACTION,
    max_queries: int = MAX_QUERIES,
    progress: bool = False,
    min_segment_share: float = MIN_SHARE,
) -> Evaluation:
    # Refused rows leave the test period as well as training: neither would have reached a profile.
    frame, refused = screen(frame)
    cutoff = time_cutoff(frame, test_fraction)
    train = frame[frame["timestamp"] < cutoff]
    if train.empty:
        raise ValueError("the test split leaves no training events; lower --test-fraction")
    started = time.perf_counter()
    # Every profile kept: the user split below asks each training user, and the segment block reads them.
    trained = train_models(
        train,
        validation_fraction,
        progress=progress,
        min_segment_share=min_segment_share,
        keep_profiles=True,
    )
    train_s = time.perf_counter() - started
    protocols = [
        user_split(frame, cutoff, trained.profiles, max_queries),
        session_next_item(frame, cutoff, max_queries),
    ]
    evaluation = Evaluation(len(frame), cutoff, train_s, trained, protocols, refused=refused)
    evaluation.segments = segments_block(frame, cutoff, trained)
    index, n_items = trained.index, len(trained.index)

    def queries_for(decay: float) -> list[Queries]:
        return [encode(p, index.position, n_items, RecentWeighting(decay=decay)) for p in protocols]

    for baseline in baselines(n_items):
        if trained.valid is not None:
            selected = select_baseline(trained.valid, baseline, progress=progress)
            params = {key: value for key, value in selected.params.items() if key != "decay"}
            decay = float(selected.params["decay"])
            evaluation.validation[baseline.name] = selected.metrics
        else:
            params, decay = dict(baseline.grid[0]), RecentWeighting().decay
        evaluation.chosen[baseline.name] = {**params, "decay": decay}
        scorer = baseline.fit(trained.data, params)
        for protocol, queries in zip(protocols, queries_for(decay), strict=True):
            evaluation.record(baseline.name, protocol, rank(scorer, queries), queries)
    evaluation.chosen[ONNX] = trained.recs.described()
    if trained.selection is not None:
        evaluation.validation[ONNX] = trained.selection.metrics
    for protocol, queries in zip(protocols, queries_for(trained.recs.weighting().decay), strict=True):
        evaluation.record(ONNX, protocol, run_onnx(trained.recs_onnx, queries, progress=progress), queries)
    return evaluation
