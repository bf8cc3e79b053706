"""The commands of `python -m model_export`: convert a dataset, train and export a model version, publish it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from model_export.data.canonical import write_events
from model_export.data.datasets import ADAPTERS, load_any
from model_export.publishing import commands
from model_export.publishing import rules as publish_rules
from model_export.publishing.folder import data_summary, train_version
from model_export.training.artifacts import read_manifest
from model_export.training.interactions import Counts, count_interactions
from model_export.training.segments import MIN_SHARE
from model_export.training.user_replay import Replay, replay_users


def cmd_convert(args: argparse.Namespace) -> int:
    frame = ADAPTERS[args.dataset](Path(args.src))
    write_events(frame, Path(args.out))
    print(f"wrote {len(frame)} canonical events to {args.out}")
    return 0


def refused_line(refused: dict[str, int]) -> str:
    """One line for the terminal: how many rows were left out, by the reason ingest would quarantine them."""
    total = sum(refused.values())
    reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(refused.items()))
    return f"refused rows: {total}" + (f" ({reasons})" if reasons else "")


def cmd_train(args: argparse.Namespace) -> int:
    data: dict[str, Any] | None = None
    if args.archive:
        from model_export.data.archive import Window, read_window
        from model_export.data.window import Reader, load_window
        from store.region import region_from

        reader: Reader = read_window
        if args.engine == "spark":
            from model_export.data.spark_archive import reader_above

            reader = reader_above(0, args.spark_cores)
        window = Window.last_days(args.days, args.until)
        loaded = load_window(args.archive, window, region_from(os.environ), reader=reader)
        frame, data = loaded.frame, loaded.summary()
        print(json.dumps(data, separators=(",", ":")), file=sys.stderr)
    else:
        frame = load_any(Path(args.events))
        data = data_summary(frame, args.events)
    if args.exclude_erased:
        from model_export.training.privacy import exclude_erased_from_store

        if not (args.profiles_table and args.pepper_parameter):
            print("--exclude-erased needs --profiles-table and --pepper-parameter (or their env)", file=sys.stderr)
            return 2
        frame = exclude_erased_from_store(frame, args.profiles_table, args.pepper_parameter)
    if frame.empty:
        print("no events to train on", file=sys.stderr)
        return 1
    replay: Replay = replay_users
    counts: Counts = count_interactions
    if args.engine == "spark":
        from model_export.training.spark_engine import engine_for

        replay, counts = engine_for(len(frame), 0, args.spark_cores)
    folder = train_version(
        frame,
        Path(args.out),
        progress=True,
        data=data,
        min_segment_share=args.min_segment_share,
        replay=replay,
        counts=counts,
    )
    manifest = read_manifest(folder)
    selection = manifest.recorded("parameters")["selection"]
    print(f"recommender: {selection['winner']} ({selection['reason']})")
    print(refused_line(manifest.recorded("metrics")["refused_rows"]))
    print(folder)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from model_export.evaluation.evaluate import evaluate
    from model_export.evaluation.report import table_text, write_report

    frame = load_any(Path(args.events))
    evaluation = evaluate(
        frame,
        test_fraction=args.test_fraction,
        validation_fraction=args.validation_fraction,
        max_queries=args.max_queries,
        progress=True,
        min_segment_share=args.min_segment_share,
    )
    report = write_report(evaluation, Path(args.out), args.events)
    print(table_text(evaluation))
    print(refused_line(evaluation.refused))
    print(f"report: {report}")
    # The last line is one JSON object, so any script can read the figures.
    print(json.dumps(evaluation.summary(), separators=(",", ":")))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from store.artifacts import ArtifactStore
    from store.region import region_from

    version = ArtifactStore(args.bucket, region_from(os.environ)).publish(Path(args.folder))
    print(f"published {version} to s3://{args.bucket}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from model_export.experiments.experiment_report import run

    return run(args)


def _segment_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--min-segment-share",
        type=float,
        default=MIN_SHARE,
        help=f"smallest share of people a segment may hold (default {MIN_SHARE}); below it a split is refused",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_export")
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="convert a dataset to the canonical event file")
    convert.add_argument("--dataset", choices=sorted(ADAPTERS), required=True)
    convert.add_argument("--src", required=True)
    convert.add_argument("--out", required=True)
    convert.set_defaults(run=cmd_convert)
    train = sub.add_parser("train", help="train and export a versioned model folder")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", help="canonical CSV/Parquet, or a known dataset's CSV")
    source.add_argument("--archive", help="the event archive: s3://BUCKET/PREFIX or a local folder")
    commands.add_window_arguments(train)
    train.add_argument("--out", required=True)
    train.add_argument(
        "--exclude-erased",
        action="store_true",
        help="leave out everyone with an erasure tombstone in the profiles table (needs AWS credentials)",
    )
    train.add_argument("--profiles-table", default=os.environ.get("PROFILES_TABLE"), help="default: $PROFILES_TABLE")
    train.add_argument(
        "--pepper-parameter", default=os.environ.get("PEPPER_PARAMETER"), help="SSM name; default: $PEPPER_PARAMETER"
    )
    _segment_arguments(train)
    train.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="where reading an archive, the replay and the counts run: this process (default) or PySpark (the"
        " optional extra 'spark'), the same code",
    )
    train.add_argument(
        "--spark-cores", type=int, default=None, help="with --engine spark: local[N]; default: the environment's Spark"
    )
    train.set_defaults(run=cmd_train)
    evaluate = sub.add_parser("evaluate", help="train on the past, score every model on the future, write report.md")
    evaluate.add_argument("--events", required=True, help="canonical CSV/Parquet, or a known dataset's CSV")
    evaluate.add_argument("--out", required=True, help="folder for report.md and its plots")
    evaluate.add_argument("--test-fraction", type=float, default=0.2, help="share of events (by time) held out")
    evaluate.add_argument("--validation-fraction", type=float, default=0.2, help="share of training for selection")
    evaluate.add_argument("--max-queries", type=int, default=20_000, help="questions per protocol (sampled)")
    _segment_arguments(evaluate)
    evaluate.set_defaults(run=cmd_evaluate)
    publish = sub.add_parser("publish", help="upload a model folder and point 'current' at it")
    publish.add_argument("--folder", required=True)
    publish.add_argument("--bucket", required=True)
    publish.set_defaults(run=cmd_publish)
    retrain = sub.add_parser(
        "retrain", help="train a candidate from the archive, evaluate it against the live version, promote or refuse"
    )
    commands.add_retrain_arguments(retrain)
    retrain.set_defaults(run=commands.run_retrain)
    versions = sub.add_parser("versions", help="list model versions with their evaluation; * marks the live one")
    versions.add_argument("--bucket", required=True)
    versions.set_defaults(run=commands.run_versions)
    rollback = sub.add_parser("rollback", help="make an earlier version current again (checked as serve loads it)")
    rollback.add_argument("version")
    rollback.add_argument("--bucket", required=True)
    rollback.set_defaults(run=commands.run_rollback)
    rules = sub.add_parser("publish-rules", help="validate a rules document and make it the one serve applies")
    rules.add_argument("--file", required=True, help="the rules document (JSON); see docs/rules.md")
    rules.add_argument("--bucket", required=True)
    rules.add_argument(
        "--key-value-store",
        default=os.environ.get("CONTEXT_KEY_VALUE_STORE_ARN"),
        help="ARN of the CloudFront key value store the viewer function reads (the stack's ContextKeyValueStore)",
    )
    rules.set_defaults(run=publish_rules.run_publish_rules)
    from model_export.experiments.experiment_report import add_arguments as experiment_arguments

    experiment = sub.add_parser("experiment", help="CTR per experiment variant from a dump of the event stream")
    experiment_arguments(experiment)
    experiment.set_defaults(run=cmd_experiment)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code
