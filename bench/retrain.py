"""`python -m bench.retrain`: the retraining job's cost and its gate, on real events in a loopback archive.

Every bundled REES46 event (pseudonymous ids) is archived in the loopback stack's archive bucket as the job reads it
(NDJSON objects of 1,000 events under moto's date folders, every other one gzipped), its timeline stretched to
--days (the slice is 2 h 50 min of a store; a day of it would leave nothing before the held-out day). Then the
job's use case (model_export.publishing.retrain, the code `python -m model_export retrain` and the Glue job run)
runs three times against the stack's artifact bucket:
  first     no live version yet: promoted if it beats popularity
  again     the same window: compared with the first (drift near 0), promoted unless worse beyond the tolerance
  shuffled  a candidate trained on the same rows with their item ids dealt out at random: must be refused

Figures (the JSON object on the last line):
  events, objects             archived events read (after de-duplication) and objects
  read_s, train_s, evaluate_s, publish_s, total_s   the `again` run's phases (seconds): the archive read and its
                              canonical rows, training and the version folder, scoring candidate + live +
                              popularity on the held-out day and drift, upload and the pointer switch
  read_us_per_event           read_s per archived event (listing, get, gunzip, validation, de-duplication, consent)
  candidate_ndcg, live_ndcg, popularity_ndcg, queries   the `again` run's evaluation (user split, NDCG@10);
                              first_ndcg and shuffled_ndcg: the other runs' candidates
  promotion_first, promotion_again   the gate's decisions
  psi_again, psi_shuffled     drift (max PSI) against the live version
  rejects_worse               the shuffled candidate was refused and current.json did not move
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import bundled_events, main_of, table
from infra.local.stack import LocalStack, conflicting_env_vars


@contextmanager
def stack_environment(stack: LocalStack) -> Iterator[None]:
    saved = dict(os.environ)
    for name in conflicting_env_vars(os.environ):
        del os.environ[name]
    os.environ.update(stack.aws_env())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def archived_events(source: Path, until: datetime, days: float) -> list[Any]:
    from model_export.data.canonical import normalize, to_events
    from model_export.data.datasets import rees46

    frame = normalize(rees46(source))
    first, last = frame["timestamp"].min(), frame["timestamp"].max()
    # Stretched to end a minute before `until` (the window's end is exclusive).
    scale = (days * 86_400 - 60) / max((last - first).total_seconds(), 1.0)
    frame = frame.assign(
        timestamp=pd.Timestamp(until) - pd.Timedelta(days=days) + (frame["timestamp"] - first) * scale,
        # 64 hex characters, the form every archived id has (HMAC in production; no pepper is needed here).
        user_id=frame["user_id"].map(lambda raw: hashlib.sha256(raw.encode()).hexdigest()),
    )
    return list(to_events(frame))


def archive_objects(events: list[Any], per_object: int = 1_000) -> dict[str, bytes]:
    """As moto's Firehose files them (events/YYYY/MM/DD/HH/...), every other object gzipped."""
    objects = {}
    for number, start in enumerate(range(0, len(events), per_object)):
        chunk = events[start : start + per_object]
        body = b"".join(event.to_json_bytes() + b"\n" for event in chunk)
        objects[f"events/{chunk[0].ts:%Y/%m/%d/%H}/delivery-{number:05d}"] = gzip.compress(body) if number % 2 else body
    return objects


def shuffled_trainer(frame: pd.DataFrame) -> Any:
    from model_export.training.training import train_models

    order = np.random.default_rng(1).permutation(len(frame))
    columns = ["item_id", "category", "price"]
    shuffled = frame.copy()
    shuffled[columns] = frame[columns].iloc[order].to_numpy()
    return train_models(shuffled)


def run(days: float, tolerance: float) -> dict[str, Any]:
    from model_export.publishing.retrain import RetrainConfig, retrain
    from store.artifacts import ArtifactStore
    from store.job_metrics import CloudWatchMetrics

    source = bundled_events()
    until = datetime.now(UTC).replace(microsecond=0)
    events = archived_events(source, until, days)
    objects = archive_objects(events)
    with LocalStack() as stack, stack_environment(stack), tempfile.TemporaryDirectory() as scratch:
        archive, bucket = stack.physical_names["ArchiveBucket"], stack.physical_names["ArtifactBucket"]
        for key, body in objects.items():
            stack.client("s3").put_object(Bucket=archive, Key=key, Body=body)
        store = ArtifactStore(bucket, stack.region)
        metrics = CloudWatchMetrics("Personalization", stack.region, {"job": "retrain"})

        def config(name: str) -> RetrainConfig:
            return RetrainConfig(
                archive=f"s3://{archive}/events/",
                days=days,
                out=Path(scratch) / name,
                tolerance=tolerance,
                until=until,
                region=stack.region,
            )

        first = retrain(config("first"), store, metrics)
        again = retrain(config("again"), store, metrics)
        live_before = store.current_version()
        shuffled = retrain(config("shuffled"), store, metrics, trainer=shuffled_trainer)
        live_after = store.current_version()
    seconds = again.seconds
    return {
        "source": source.name,
        "events": again.events,
        "objects": len(objects),
        **{f"{phase}_s": value for phase, value in seconds.items()},
        "total_s": round(sum(seconds.values()), 3),
        "read_us_per_event": round(seconds["read"] / max(again.events, 1) * 1e6, 1),
        "candidate_ndcg": None if again.candidate is None else again.candidate.ndcg,
        "live_ndcg": None if again.live is None else again.live.ndcg,
        "popularity_ndcg": None if again.popularity is None else again.popularity.ndcg,
        "queries": 0 if again.candidate is None else again.candidate.queries,
        "first_ndcg": None if first.candidate is None else first.candidate.ndcg,
        "promotion_first": first.promotion,
        "promotion_again": again.promotion,
        "psi_again": again.summary()["psi"],
        "psi_shuffled": shuffled.summary()["psi"],
        "shuffled_ndcg": None if shuffled.candidate is None else shuffled.candidate.ndcg,
        "rejects_worse": shuffled.promotion == "rejected" and live_before == live_after,
    }


def report(figures: dict[str, Any]) -> None:
    print(f"retraining job on {figures['events']:,} archived events ({figures['objects']} objects)")
    phases = [(phase, figures[f"{phase}_s"]) for phase in ("read", "train", "evaluate", "publish")]
    print(table(["phase (second run)", "seconds"], [*phases, ("total", figures["total_s"])]))
    print()
    shuffled = "refused" if figures["rejects_worse"] else "NOT refused"
    rows = [
        ("first (no live version)", figures["promotion_first"], _f(figures["first_ndcg"]), "-"),
        ("again (same window)", figures["promotion_again"], _f(figures["candidate_ndcg"]), _f(figures["psi_again"])),
        ("shuffled item ids", shuffled, _f(figures["shuffled_ndcg"]), _f(figures["psi_shuffled"])),
    ]
    print(table(["run", "gate", "candidate NDCG@10", "PSI max"], rows))
    live, popular = _f(figures["live_ndcg"]), _f(figures["popularity_ndcg"])
    print(f"live NDCG@10 {live}, popularity {popular}, on {figures['queries']} questions of the held-out day")


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retrain")
    parser.add_argument("--days", type=float, default=7.0, help="the window the bundled slice is stretched to")
    parser.add_argument("--tolerance", type=float, default=0.02)
    args = parser.parse_args()
    return main_of(lambda: run(args.days, args.tolerance), report)


if __name__ == "__main__":
    raise SystemExit(main())
