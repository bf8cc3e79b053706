"""`python -m bench.train`: the trainer's cost as the shop grows, measured as `python -m model_export train` runs.

The bundled REES46 events are grown by replication into a larger shop, not a longer one: copy i gets its own user
and session ids (suffix ~i), the item ids are shared within ceil(sqrt(copies)) groups (copy i sells group
i mod groups: suffix ~gN), and every timestamp is kept, so the window stays the same 2 h 50 min. At 10x that is
45,040 users and 25,972 items; at 100x 450,400 users and 64,930 items.

Each size is written as a canonical Parquet file and trained by a fresh `python -m model_export train` process,
as an operator runs it; its wall time and peak RSS (the child's getrusage, like /usr/bin/time -v) are measured
from outside, and the seconds per stage are read from the manifest the run wrote (metrics.stages_s).

Figures (the JSON object on the last line):
  events_max, users_max, items_max   the largest size trained
  train_s_max                        wall seconds of the train command at the largest size
  peak_rss_gb_max                    its peak resident memory (GB)
  time_per_event_ratio               wall time per event at 100x over that at 10x (linear: about 1 or below)
  sizes                              per size: events, users, items, wall_s, events_per_s, peak_rss_gb, stages_s
Then (unless --no-spark, or PySpark or Java is missing) the largest size is trained with `--engine spark` on
local[1] and local[2], each a fresh process too:
  spark_wall_s_1_core, spark_wall_s_2_cores   wall seconds of those runs (single process: train_s_max)
  spark_stages_s_1_core, spark_stages_s_2_cores   their distributed stages: replay + counts, the ones Spark runs
  spark_speedup_2_cores              distributed stages on one core / on two (spark_speedup_2_cores_measures says
                                     so): what a second core buys the stages that grow with the data; the driver's
                                     stages (segments, search, fit, export) run alike in every engine
  spark_speedup_2_cores_whole_train  wall time on one core / on two, JVM start and driver stages included
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.common import ROOT, bundled_events, main_of, table

SIZES = (1, 10, 100)
STAGES = ("replay", "counts", "segments", "search", "fit", "export")
# The stages `--engine spark` runs on Spark; the others run on the driver in both engines.
SPARK_STAGES = ("replay", "counts")
GROWTH = (
    "grown by replication: copy i has its own user and session ids, item ids shared within ceil(sqrt(copies))"
    " groups, timestamps unchanged (the same 2 h 50 min window: a larger shop, not a longer one)"
)


def grow(frame: pd.DataFrame, copies: int) -> pd.DataFrame:
    """`copies` copies of canonical `frame` as one larger shop over the same window (module docstring)."""
    groups = math.ceil(math.sqrt(copies))
    parts = []
    for copy in range(copies):
        part = frame.copy()
        if copy:
            part["user_id"] = part["user_id"] + f"~{copy}"
            part["session_id"] = part["session_id"].where(part["session_id"].isna(), part["session_id"] + f"~{copy}")
        if copy % groups:
            part["item_id"] = part["item_id"] + f"~g{copy % groups}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def base_frame() -> pd.DataFrame:
    from model_export.data.datasets import load_any

    return load_any(bundled_events())


def run_train(events: Path, out: Path, log: Path, extra: list[str]) -> dict[str, Any]:
    """One `python -m model_export train` process: its wall seconds, peak RSS and the manifest it wrote."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])}
    command = [sys.executable, "-m", "model_export", "train", "--events", str(events), "--out", str(out), *extra]
    started = time.perf_counter()
    with log.open("w") as stderr:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        # wait4 gives this child's own rusage: its peak RSS, as /usr/bin/time -v reports it (KB on Linux).
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"train failed ({child.returncode}); its log: {log}\n{log.read_text()[-2000:]}")
    manifest = json.loads(next(out.glob("*/manifest.json")).read_text())
    return {"wall_s": wall, "peak_rss_gb": usage.ru_maxrss / 1024**2, "metrics": manifest["metrics"]}


def measure_size(base: pd.DataFrame, copies: int, scratch: Path, extra: list[str], name: str = "") -> dict[str, Any]:
    from model_export.data.canonical import write_events

    events = scratch / f"events_{copies}x.parquet"
    if not events.exists():
        write_events(grow(base, copies), events)
    label = f"{copies}x{name}"
    found = run_train(events, scratch / f"out_{label}", scratch / f"train_{label}.log", extra)
    metrics = found["metrics"]
    n = int(metrics["events"])
    stages = {stage: float(metrics["stages_s"].get(stage, 0.0)) for stage in STAGES}
    # Start-up, reading the file and writing the version folder: the wall time the stages do not cover.
    stages["read_write"] = max(found["wall_s"] - float(metrics["train_s"]), 0.0)
    return {
        "copies": copies,
        "engine": name.lstrip("-") or "single process",
        "events": n,
        "users": int(metrics["users"]),
        "items": int(metrics["items"]),
        "wall_s": round(found["wall_s"], 2),
        "events_per_s": round(n / found["wall_s"], 1),
        "peak_rss_gb": round(found["peak_rss_gb"], 3),
        "stages_s": {stage: round(seconds, 2) for stage, seconds in stages.items()},
    }


def run(sizes: tuple[int, ...] = SIZES, spark: bool = False) -> dict[str, Any]:
    base = base_frame()
    rows = []
    on_spark: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as scratch:
        for copies in sizes:
            rows.append(measure_size(base, copies, Path(scratch), []))
            print(f"{copies}x: {rows[-1]['events']:,} events in {rows[-1]['wall_s']:.1f} s", file=sys.stderr)
        for cores in (1, 2) if spark else ():
            extra = ["--engine", "spark", "--spark-cores", str(cores)]
            on_spark[cores] = measure_size(base, sizes[-1], Path(scratch), extra, f"-spark-local[{cores}]")
            print(f"{sizes[-1]}x on Spark local[{cores}]: {on_spark[cores]['wall_s']:.1f} s", file=sys.stderr)
    largest = rows[-1]
    by_copies = {row["copies"]: row for row in rows}
    ratio = None
    if 10 in by_copies and 100 in by_copies:
        per_event = {c: by_copies[c]["wall_s"] / by_copies[c]["events"] for c in (10, 100)}
        ratio = round(per_event[100] / per_event[10], 3)
    figures: dict[str, Any] = {}
    if on_spark:
        staged = {cores: sum(on_spark[cores]["stages_s"][stage] for stage in SPARK_STAGES) for cores in on_spark}
        figures = {
            "spark_wall_s_1_core": on_spark[1]["wall_s"],
            "spark_wall_s_2_cores": on_spark[2]["wall_s"],
            "spark_stages_s_1_core": round(staged[1], 2),
            "spark_stages_s_2_cores": round(staged[2], 2),
            "spark_replay_s_1_core": on_spark[1]["stages_s"]["replay"],
            "spark_replay_s_2_cores": on_spark[2]["stages_s"]["replay"],
            "spark_speedup_2_cores": round(staged[1] / max(staged[2], 1e-9), 3),
            "spark_speedup_2_cores_measures": "distributed stages (replay + counts), local[1] / local[2]",
            "spark_speedup_2_cores_whole_train": round(on_spark[1]["wall_s"] / max(on_spark[2]["wall_s"], 1e-9), 3),
            "spark_peak_rss_gb_2_cores": on_spark[2]["peak_rss_gb"],
            "spark_sizes": [on_spark[cores] for cores in sorted(on_spark)],
        }
    return {
        **figures,
        "events_max": largest["events"],
        "users_max": largest["users"],
        "items_max": largest["items"],
        "train_s_max": largest["wall_s"],
        "peak_rss_gb_max": max(row["peak_rss_gb"] for row in rows),
        "time_per_event_ratio": ratio,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "sizes": rows,
    }


def report(figures: dict[str, Any]) -> None:
    print(f"bundled events {GROWTH}.")
    headers = ["size", "events", "users", "items", *STAGES, "read_write", "wall_s", "events/s", "peak_rss_gb"]
    rows = [
        [
            f"{row['copies']}x {row.get('engine', '')}".strip(),
            row["events"],
            row["users"],
            row["items"],
            *(row["stages_s"][stage] for stage in (*STAGES, "read_write")),
            row["wall_s"],
            row["events_per_s"],
            row["peak_rss_gb"],
        ]
        for row in [*figures["sizes"], *figures.get("spark_sizes", [])]
    ]
    print(table(headers, rows))
    if "spark_speedup_2_cores" in figures:
        print(
            f"largest size on Spark: {figures['spark_wall_s_1_core']:.1f} s on local[1],"
            f" {figures['spark_wall_s_2_cores']:.1f} s on local[2] (single process {figures['train_s_max']:.1f} s);"
            f" distributed stages (replay + counts) {figures['spark_stages_s_1_core']:.1f} s ->"
            f" {figures['spark_stages_s_2_cores']:.1f} s: speedup {figures['spark_speedup_2_cores']:.2f}"
            f" (whole train {figures['spark_speedup_2_cores_whole_train']:.2f})"
        )
    print(
        f"time per event at 100x / 10x: {figures['time_per_event_ratio']}"
        f"  (load average {figures['load_average_1m']} while measuring)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="copies of the bundled data, e.g. 1,10")
    parser.add_argument(
        "--no-spark", action="store_true", help="skip training the largest size on Spark (local[1] and local[2])"
    )
    args = parser.parse_args()
    sizes = tuple(int(size) for size in args.sizes.split(","))
    spark = not args.no_spark and spark_available()
    return main_of(lambda: run(sizes, spark), report)


def spark_available() -> bool:
    """PySpark (the optional extra `spark`) and a Java runtime (`make java`) are both there; says so if not."""
    import importlib.util
    import shutil

    missing = [
        name
        for name, found in (("pyspark", importlib.util.find_spec("pyspark")), ("java", shutil.which("java")))
        if not found
    ]
    if missing:
        print(f"no Spark runs: {' and '.join(missing)} missing (uv sync --extra spark; make java)", file=sys.stderr)
    return not missing


if __name__ == "__main__":
    sys.exit(main())
