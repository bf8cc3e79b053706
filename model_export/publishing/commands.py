"""The commands `retrain`, `versions` and `rollback`: arguments in, one use case, a table and a JSON last line.

The scheduled Glue job (infra/glue/retrain_job.py) runs `run_retrain` with the job's arguments, so the job and a
developer's `python -m model_export retrain` are the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from model_export.publishing.retrain import MetricsSink, RetrainConfig, RetrainResult, retrain
from model_export.publishing.scoring import Scores
from model_export.publishing.versions import RollbackError, VersionRow, list_versions, rollback
from model_export.training.training import Trained, train_models
from store.artifacts import ArtifactStore
from store.region import region_from


def timestamp(text: str) -> datetime:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def add_window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=float, default=7.0, help="archive window in days, ending --until (default 7)")
    parser.add_argument(
        "--until", type=timestamp, default=None, help="window end, ISO 8601 (default: now); events before it count"
    )


def add_retrain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True, help="the event archive: s3://BUCKET/PREFIX or a local folder")
    add_window_arguments(parser)
    parser.add_argument("--bucket", required=True, help="the artifact bucket (models/ and models/current.json)")
    parser.add_argument(
        "--tolerance", type=float, default=0.02, help="promote when NDCG@10 >= (1 - tolerance) x live (default 0.02)"
    )
    parser.add_argument(
        "--holdout-days", type=float, default=1.0, help="the latest part of the window held out to evaluate (days)"
    )
    parser.add_argument("--max-queries", type=int, default=20_000, help="evaluation questions at most (sampled)")
    parser.add_argument("--out", default=None, help="folder for the candidate's files (default: a temporary one)")
    parser.add_argument(
        "--spark-above",
        type=int,
        default=SPARK_ABOVE,
        help=f"read the archive, replay and count on Spark (Glue's) when the window holds more events than this"
        f" (default {SPARK_ABOVE:,}); 0: always",
    )
    parser.add_argument(
        "--profiles-table",
        default=None,
        help="leave out everyone with an erasure tombstone in this profiles table (the job passes it)",
    )
    parser.add_argument(
        "--metrics-namespace",
        default=None,
        help="CloudWatch namespace for the outcome metrics the alarms watch (default: none are put)",
    )


def _figures(label: str, version: str | None, scores: Scores | None) -> str:
    if scores is None:
        return f"{label:<11} {version or '-':<28} {'-':>8}"
    return (
        f"{label:<11} {version or '-':<28} {scores.ndcg:>8.4f} {scores.ndcg_interval:>7.4f} {scores.recall:>9.4f} "
        f"{scores.mrr:>7.4f} {scores.coverage:>8.4f} {scores.queries:>7}"
    )


def _erased(profiles_table: str | None, region: str) -> frozenset[str]:
    if not profiles_table:
        return frozenset()
    from store.profiles import ProfileStore, TableSettings

    return frozenset(ProfileStore(TableSettings(profiles_table, region)).erased_ids())


def retrain_table(result: RetrainResult) -> str:
    summary = result.summary()
    window = summary.get("window") or {}
    lines = [
        f"window {window.get('start')} .. {window.get('end')} (training), then the held-out day to "
        f"{(result.data.get('holdout') or {}).get('end')}",
        f"events {result.events} (training {result.train_events}, held out {result.holdout_events}); "
        f"left out for consent: {summary.get('left_out_for_consent')}, erased: {summary.get('left_out_erased')}",
        "",
        f"{'model':<11} {'version':<28} {'NDCG@10':>8} {'+-95%':>7} {'Recall@20':>9} {'MRR':>7} {'coverage':>8} "
        f"{'queries':>7}",
        _figures("candidate", result.candidate_version, result.candidate),
        _figures("live", result.live_version, result.live),
        _figures("popularity", None, result.popularity),
        "",
        f"decision: {result.promotion}: {result.decision.reason}",
    ]
    if result.drift is not None:
        worst = sorted(result.drift.features.items(), key=lambda item: -item[1])[:3]
        shown = ", ".join(f"{name} {value:.3f}" for name, value in worst)
        segments = "-" if result.drift.segments is None else f"{result.drift.segments:.3f}"
        lines.append(
            f"drift vs {result.drift.compared_with}: PSI max {result.drift.max:.3f} (segments {segments}; {shown})"
        )
    return "\n".join(lines)


JOB_DIMENSIONS = {"job": "retrain"}
# Past this many events in the window the retrain job replays on Spark: below it, the single process is faster
# (no JVM, no shuffle; bench.train measures both) and fits the job's driver easily.
SPARK_ABOVE = 5_000_000


def run_retrain(args: argparse.Namespace) -> int:
    from store.job_metrics import CloudWatchMetrics

    region = region_from(os.environ)
    store = ArtifactStore(args.bucket, region)
    metrics = CloudWatchMetrics(args.metrics_namespace, region, JOB_DIMENSIONS) if args.metrics_namespace else None
    try:
        return _retrain(args, region, store, metrics)
    except Exception:
        # A failed run says so at once (its alarm), besides failing the job; the absence of RetrainRuns
        # catches what never gets here (a timeout, a killed driver).
        if metrics is not None:
            metrics.put({"RetrainFailed": 1.0})
        raise


def _retrain(args: argparse.Namespace, region: str, store: ArtifactStore, metrics: MetricsSink | None) -> int:
    with tempfile.TemporaryDirectory(prefix="retrain-") as scratch:
        config = RetrainConfig(
            archive=args.archive,
            days=args.days,
            out=Path(args.out or scratch),
            tolerance=args.tolerance,
            holdout_days=args.holdout_days,
            until=args.until,
            max_queries=args.max_queries,
            region=region,
        )
        from model_export.data.spark_archive import reader_above

        result = retrain(
            config,
            store,
            metrics,
            erased=_erased(args.profiles_table, region),
            trainer=_trainer(args.spark_above),
            reader=reader_above(args.spark_above),
        )
    print(retrain_table(result))
    # The last line is one JSON object, so any script (and the job's log reader) can read the outcome.
    print(json.dumps(result.summary(), separators=(",", ":")))
    return 0


def _trainer(spark_above: int) -> Callable[[pd.DataFrame], Trained]:
    """train_models, its replay on Spark when the window is larger than `spark_above` events (on Glue the job's
    own Spark; PySpark is imported only then)."""

    def train(frame: pd.DataFrame) -> Trained:
        from model_export.training.spark_engine import engine_for

        replay, counts = engine_for(len(frame), spark_above)
        return train_models(frame, replay=replay, counts=counts)

    return train


def _cell(value: Any, width: int, digits: int = 4) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if isinstance(value, float):
        return f"{value:>{width}.{digits}f}"
    return f"{value!s:>{width}}"


def versions_table(rows: list[VersionRow]) -> str:
    lines = [f"  {'version':<28} {'events':>7} {'NDCG@10':>8} {'vs live':>8} {'PSI':>6} {'decision':<9} compared with"]
    for row in rows:
        lines.append(
            f"{'*' if row.live else ' '} {row.version:<28} {_cell(row.events, 7)} {_cell(row.ndcg, 8)} "
            f"{_cell(row.live_ndcg, 8)} {_cell(row.psi, 6, 3)} {row.decision or '-':<9} {row.compared_with or '-'}"
        )
    lines.append("(* = live)")
    return "\n".join(lines)


def run_versions(args: argparse.Namespace) -> int:
    rows = list_versions(ArtifactStore(args.bucket, region_from(os.environ)))
    print(versions_table(rows))
    live = next((row.version for row in rows if row.live), None)
    print(json.dumps({"live": live, "versions": [row.to_dict() for row in rows]}, separators=(",", ":")))
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    try:
        previous = rollback(ArtifactStore(args.bucket, region_from(os.environ)), args.version)
    except RollbackError as exc:
        print(f"rollback refused: {exc}", file=sys.stderr)
        return 2
    print(f"current is {args.version} (was {previous or 'none'})")
    print(json.dumps({"live": args.version, "previous": previous}, separators=(",", ":")))
    return 0


def glue_main(argv: list[str]) -> int:
    """The Glue job's entry (infra/glue/retrain_job.py): Glue passes every job argument as `--KEY value`,
    its own (--JOB_NAME, --JOB_RUN_ID, --extra-py-files, ...) among ours; the ones `retrain` does not take are
    ignored rather than refused."""
    parser = argparse.ArgumentParser(prog="retrain_job", allow_abbrev=False)
    add_retrain_arguments(parser)
    args, ignored = parser.parse_known_args(argv)
    import model_export

    names = sorted(arg.lstrip("-") for arg in ignored if arg.startswith("--"))
    print(f"retrain job: code from {Path(model_export.__file__).parent}; Glue arguments not used: {names}")
    return run_retrain(args)
