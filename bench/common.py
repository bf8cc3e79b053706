"""What every benchmark prints: a readable table, then its figures as one JSON object on the last line."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The bundled shop sits beside the repository (../shared, as the demo reads it); a clone without it falls back to
# the committed sample, so every benchmark still runs.
BUNDLED_EVENTS = ROOT.parent / "shared" / "datasets" / "rees46_multicategory_2019oct_head" / "events.csv"
SAMPLE_EVENTS = ROOT / "tests" / "data" / "rees46_head2000.csv"


def bundled_events() -> Path:
    """The real events the benchmarks replay: the bundled shop when it is there, else the committed sample."""
    return BUNDLED_EVENTS if BUNDLED_EVENTS.exists() else SAMPLE_EVENTS


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table; numbers are right-aligned, everything else left-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(list(headers)), rule, *(line(row) for row in cells)])


def _cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `fraction` of the values at or below it."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def print_figures(figures: Mapping[str, object]) -> None:
    """The last line of a benchmark's output: one JSON object any script can read."""
    print(json.dumps(figures, separators=(", ", ": ")), flush=True)


def main_of(run: Callable[[], dict[str, Any]], report: Callable[[dict[str, Any]], None]) -> int:
    """A benchmark's entry point: measure, print the readable table, then the figures as the LAST line."""
    figures = run()
    report(figures)
    print_figures(figures)
    return 0
