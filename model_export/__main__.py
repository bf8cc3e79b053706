"""`python -m model_export COMMAND`: convert a dataset, train and export a model version, publish it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from model_export.artifacts import write_version
from model_export.canonical import data_hash, normalize, read_events, write_events
from model_export.datasets import ADAPTERS, detect
from model_export.training import train_models


def load_any(path: Path) -> pd.DataFrame:
    """A canonical file, or a known dataset converted on the fly (in memory: nothing is written beside the
    source, so concurrent runs on one dataset cannot trip over each other's temporary files)."""
    adapter = detect(path) if path.suffix == ".csv" else None
    if adapter is None:
        return read_events(path)
    return normalize(ADAPTERS[adapter](path), str(path))


def cmd_convert(args: argparse.Namespace) -> int:
    frame = ADAPTERS[args.dataset](Path(args.src))
    write_events(frame, Path(args.out))
    print(f"wrote {len(frame)} canonical events to {args.out}")
    return 0


def train_version(frame: pd.DataFrame, out: Path, progress: bool = False) -> Path:
    """Train segments and recommender on canonical events and write a versioned model folder under `out`."""
    frame = normalize(frame)
    trained = train_models(frame, progress=progress)
    return write_version(
        out,
        trained.files(),
        data_hash(frame),
        parameters=trained.parameters(),
        metrics={"events": len(frame), **trained.metrics()},
        extra=trained.manifest_extra(),
    )


def cmd_train(args: argparse.Namespace) -> int:
    print(train_version(load_any(Path(args.events)), Path(args.out), progress=True))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from model_export.evaluate import evaluate
    from model_export.report import table_text, write_report

    frame = load_any(Path(args.events))
    evaluation = evaluate(
        frame,
        test_fraction=args.test_fraction,
        validation_fraction=args.validation_fraction,
        max_queries=args.max_queries,
        progress=True,
    )
    report = write_report(evaluation, Path(args.out), args.events)
    print(table_text(evaluation))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_export")
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="convert a dataset to the canonical event file")
    convert.add_argument("--dataset", choices=sorted(ADAPTERS), required=True)
    convert.add_argument("--src", required=True)
    convert.add_argument("--out", required=True)
    convert.set_defaults(run=cmd_convert)
    train = sub.add_parser("train", help="train and export a versioned model folder")
    train.add_argument("--events", required=True, help="canonical CSV/Parquet, or a known dataset's CSV")
    train.add_argument("--out", required=True)
    train.set_defaults(run=cmd_train)
    evaluate = sub.add_parser("evaluate", help="train on the past, score every model on the future, write report.md")
    evaluate.add_argument("--events", required=True, help="canonical CSV/Parquet, or a known dataset's CSV")
    evaluate.add_argument("--out", required=True, help="folder for report.md and its plots")
    evaluate.add_argument("--test-fraction", type=float, default=0.2, help="share of events (by time) held out")
    evaluate.add_argument("--validation-fraction", type=float, default=0.2, help="share of training for selection")
    evaluate.add_argument("--max-queries", type=int, default=20_000, help="questions per protocol (sampled)")
    evaluate.set_defaults(run=cmd_evaluate)
    publish = sub.add_parser("publish", help="upload a model folder and point 'current' at it")
    publish.add_argument("--folder", required=True)
    publish.add_argument("--bucket", required=True)
    publish.set_defaults(run=cmd_publish)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
