"""`python -m model_export COMMAND`: convert a dataset, train and export a model version, publish it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from model_export.artifacts import write_version
from model_export.canonical import data_hash, read_events, write_events
from model_export.catalog import build_catalog
from model_export.datasets import ADAPTERS, detect


def load_any(path: Path) -> pd.DataFrame:
    """A canonical file, or a known dataset converted on the fly."""
    adapter = detect(path) if path.suffix == ".csv" else None
    if adapter is None:
        return read_events(path)
    converted = path.with_suffix(".canonical.tmp.csv")
    try:
        write_events(ADAPTERS[adapter](path), converted)
        return read_events(converted)
    finally:
        converted.unlink(missing_ok=True)


def cmd_convert(args: argparse.Namespace) -> int:
    frame = ADAPTERS[args.dataset](Path(args.src))
    write_events(frame, Path(args.out))
    print(f"wrote {len(frame)} canonical events to {args.out}")
    return 0


def train_version(frame: pd.DataFrame, out: Path) -> Path:
    """Train on canonical events and write a versioned model folder under `out`."""
    started = time.perf_counter()
    catalog = build_catalog(frame)
    files = {"catalog.json": json.dumps(catalog.to_dict(), separators=(",", ":")).encode()}
    return write_version(
        out,
        files,
        data_hash(frame),
        parameters={"popularity": "weighted event counts"},
        metrics={"events": len(frame), "items": len(catalog), "train_s": round(time.perf_counter() - started, 3)},
    )


def cmd_train(args: argparse.Namespace) -> int:
    print(train_version(load_any(Path(args.events)), Path(args.out)))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from store.artifacts import ArtifactStore

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    version = ArtifactStore(args.bucket, region).publish(Path(args.folder))
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
    publish = sub.add_parser("publish", help="upload a model folder and point 'current' at it")
    publish.add_argument("--folder", required=True)
    publish.add_argument("--bucket", required=True)
    publish.set_defaults(run=cmd_publish)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
