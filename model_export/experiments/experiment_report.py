"""The `experiment` subcommand: its options, the terminal tables, report.md and report.json."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from model_export.experiments.experiment import (
    SRM_ALPHA,
    WINDOW_MINUTES,
    ExperimentReport,
    analyze,
    parse_shares,
)
from model_export.experiments.experiment_stats import CONFIDENCE
from personalization.provenance import impression_key

PEPPER_ENV = "PERSONALIZATION_PEPPER"
PEPPER_HEX_ENV = "PERSONALIZATION_PEPPER_HEX"
IDENTITY_KEY_ENV = "PERSONALIZATION_IDENTITY_KEY"
VARIANT_HEADERS = ("experiment", "variant", "impressions", "clicks", "CTR", "95% CI", "users")
COMPARISON_HEADERS = ("experiment", "variant vs control", "CTR difference", "95% CI (Newcombe)", "p (z test)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", required=True, help="a JSON-lines stream dump (.jsonl, .jsonl.gz) or a folder")
    parser.add_argument("--experiment", help="report only this experiment (default: every one seen)")
    parser.add_argument(
        "--window-minutes",
        type=float,
        default=WINDOW_MINUTES,
        help="a view counts as a click when it comes at most this long after the impression",
    )
    parser.add_argument("--out", help="folder for report.json and report.md (default: print only)")
    parser.add_argument(
        "--shares",
        help="configured traffic shares, e.g. control=0.5,popular=0.5: enables the sample ratio mismatch check",
    )
    parser.add_argument(
        "--identity-key",
        default=os.environ.get(IDENTITY_KEY_ENV),
        help=f"serve's identity key exactly as stored in its SSM parameter (or ${IDENTITY_KEY_ENV}): only"
        " impressions serve signed are counted (without it, every impression is, and the report says so)",
    )
    pepper = parser.add_mutually_exclusive_group()
    # Both read from the environment by default: a secret on the command line shows in `ps` and shell history.
    pepper.add_argument(
        "--pepper",
        default=os.environ.get(PEPPER_ENV),
        help=f"the ingest pepper exactly as stored in its SSM parameter (or ${PEPPER_ENV}); pseudonymizes"
        " raw user ids (pseudonymous=false) so their views join serve's impressions",
    )
    pepper.add_argument(
        "--pepper-hex",
        default=os.environ.get(PEPPER_HEX_ENV),
        help=f"the pepper's key bytes in hex (or ${PEPPER_HEX_ENV}), for a pepper that is not text",
    )


def identity_key_bytes(text: str | None) -> bytes | None:
    """The impression signing key, derived from serve's identity key as stored in SSM (its UTF-8 bytes)."""
    return impression_key(text.encode()) if text else None


def pepper_bytes(text: str | None, hex_text: str | None) -> bytes | None:
    """The HMAC key ingest pseudonymizes with: store.parameters.get_secret uses the SSM text's UTF-8 bytes."""
    if text and hex_text:
        raise ValueError(f"give the pepper once: --pepper/${PEPPER_ENV} or --pepper-hex/${PEPPER_HEX_ENV}")
    if text:
        return text.encode()
    if hex_text:
        try:
            return bytes.fromhex(hex_text)
        except ValueError:
            raise ValueError("--pepper-hex is not hexadecimal") from None
    return None


def run(args: argparse.Namespace) -> int:
    try:
        shares = parse_shares(args.shares) if args.shares else None
        report = analyze(
            Path(args.events),
            experiment=args.experiment,
            window_minutes=args.window_minutes,
            pepper=pepper_bytes(args.pepper, args.pepper_hex),
            shares=shares,
            impression_key=identity_key_bytes(args.identity_key),
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_tables(report)
    if args.out:
        print(f"report: {write_report(report, Path(args.out), args.events)}")
    # The last line is one JSON object, so any script can read the figures.
    print(json.dumps(report.summary(), separators=(",", ":")))
    return 0


# -- rows, shared by the terminal and report.md -----------------------------------------------------------


def _percent(value: float) -> str:
    return f"{value:.2%}"


def variant_rows(report: ExperimentReport) -> list[list[str]]:
    rows = []
    for experiment, variants in report.experiments.items():
        for variant, stats in variants.items():
            low, high = stats.interval
            rows.append(
                [
                    experiment,
                    variant,
                    f"{stats.impressions:,}",
                    f"{stats.clicks:,}",
                    _percent(stats.ctr),
                    f"{_percent(low)} – {_percent(high)}",
                    f"{stats.users:,}",
                ]
            )
    return rows


def _points(value: float) -> str:
    return f"{value * 100:+.2f} pp"


def comparison_rows(report: ExperimentReport) -> list[list[str]]:
    return [
        [
            c.experiment,
            f"{c.variant} vs {c.control}",
            _points(c.difference),
            f"{_points(c.low)} – {_points(c.high)}",
            f"{c.p_value:.3g}",
        ]
        for c in report.comparisons
    ]


def input_lines(report: ExperimentReport) -> list[str]:
    inputs = report.inputs
    lines = [
        f"{inputs.lines:,} line(s) in {inputs.files} file(s): {inputs.impressions:,} impressions and"
        f" {inputs.views:,} views used, {inputs.other:,} other events, {inputs.duplicates:,} redelivered"
        f" duplicates and {inputs.no_consent:,} events without analytics consent skipped,"
        f" {inputs.unparsed:,} unparsed.",
        f"Click: a view_product of a shown item by the same user within {report.window_minutes:g} minutes after"
        " the impression, credited to the latest such impression (last touch); raw user ids"
        + (" pseudonymized with the given pepper." if report.pseudonymized else " not pseudonymized (no pepper)."),
    ]
    lines += [f"  unparsed {reason}" for reason in inputs.reasons]
    return lines


def srm_lines(report: ExperimentReport) -> list[str]:
    lines = []
    for ratio in report.sample_ratios:
        users = ", ".join(f"{name} {count:,}" for name, count in ratio.users.items())
        if ratio.p_value is None:
            lines.append(f"SRM {ratio.experiment}: not checked ({ratio.note}); users: {users}")
            continue
        verdict = f"MISMATCH (p < {SRM_ALPHA:g}): do not trust this experiment" if ratio.mismatch else "ok"
        lines.append(f"SRM {ratio.experiment}: users {users}; p = {ratio.p_value:.3g}, {verdict}")
    return lines


# -- terminal ----------------------------------------------------------------------------------------------


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), "  ".join("-" * width for width in widths), *(line(row) for row in rows)])


def table_text(report: ExperimentReport) -> str:
    """Everything the terminal shows before the JSON line, as plain text."""
    parts = [plain_table(VARIANT_HEADERS, variant_rows(report))]
    if report.comparisons:
        parts.append(plain_table(COMPARISON_HEADERS, comparison_rows(report)))
    parts.append("\n".join([*srm_lines(report), *input_lines(report), *(f"warning: {w}" for w in report.warnings)]))
    return "\n\n".join(parts)


def print_tables(report: ExperimentReport) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is optional: the same figures in plain text
        print(table_text(report))
        return
    # Piped output (a script reading the JSON line) gets no colour and a width that does not fold the tables.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    for title, headers, rows in (
        ("CTR per variant", VARIANT_HEADERS, variant_rows(report)),
        ("Against the control", COMPARISON_HEADERS, comparison_rows(report)),
    ):
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        for index, header in enumerate(headers):
            table.add_column(header, justify="left" if index < 2 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for line in [*srm_lines(report), *input_lines(report)]:
        console.print(line, markup=False)
    for warning in report.warnings:
        console.print(f"[bold yellow]warning:[/] {warning}")
    console.file.flush()


# -- files -------------------------------------------------------------------------------------------------


def markdown(report: ExperimentReport, source: str) -> str:
    def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
        return [f"| {' | '.join(headers)} |", "|" + "---|" * len(headers), *(f"| {' | '.join(r)} |" for r in rows)]

    level = f"{CONFIDENCE:.0%}"
    lines = [
        "# Experiment report",
        "",
        f"Events: `{source}`.",
        "",
        *input_lines(report),
        "",
        "## CTR per variant",
        f"CTR = clicked impressions / impressions; the interval is the {level} Wilson score interval.",
        "",
        *table(VARIANT_HEADERS, variant_rows(report)),
        "",
    ]
    if report.comparisons:
        lines += [
            "## Against the control",
            f"Absolute CTR difference (percentage points) with Newcombe's {level} hybrid score interval, and the"
            " two-sided p-value of the pooled two-proportion z test. The unit is the impression: a user's"
            " impressions are not independent, so with heavy users the intervals are optimistic.",
            "",
            *table(COMPARISON_HEADERS, comparison_rows(report)),
            "",
        ]
    if report.sample_ratios:
        lines += ["## Sample ratio", *(f"- {line}" for line in srm_lines(report)), ""]
    if report.warnings:
        lines += ["## Warnings", *(f"- {warning}" for warning in report.warnings), ""]
    lines += ["See docs/experiments.md for what these numbers assume.", ""]
    return "\n".join(lines)


def write_report(report: ExperimentReport, out: Path, source: str) -> Path:
    """report.json (the figures) and report.md (the same, readable) in `out`; returns report.md's path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.summary(), indent=2) + "\n")
    path = out / "report.md"
    path.write_text(markdown(report, source))
    return path
