"""`experiment`: click-through per experiment variant, from the impression and view events on the stream.

Serve writes an impression event for every fragment it shows a known visitor (slot, shown items, experiment,
variant, versions); the tracker's `view_product` events are the clicks. This module reads a dump of the
stream (JSON lines, the exact record bytes: experiments/stream.py), joins the two per user by last touch
(experiments/attribution.py), and reports CTR with intervals.

Statistics: per variant a Wilson score interval for the CTR; per non-control variant the CTR difference to
the control with Newcombe's hybrid score interval (built from the two Wilson intervals) and the two-sided
p-value of the pooled two-proportion z test. The unit is the impression: see docs/experiments.md for what
that assumes, and for the other caveats (novelty, peeking, sample ratio mismatch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_export.experiments.attribution import tally_by_group
from model_export.experiments.experiment_stats import chi_square_p_value, newcombe, two_proportion_p_value, wilson
from model_export.experiments.stream import NO_EXPERIMENT, Collector, InputStats, event_files, read_lines

WINDOW_MINUTES = 30.0
CONTROL = "control"
# A mismatch this unlikely under the configured shares means the assignment or the logging is broken; the
# threshold is strict because the check runs on every report, and a false alarm costs a needless investigation.
SRM_ALPHA = 0.001


# -- results -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantStats:
    impressions: int
    clicks: int
    users: int

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.clicks, self.impressions)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "impressions": self.impressions,
            "clicks": self.clicks,
            "ctr": self.ctr,
            "ctr_low": low,
            "ctr_high": high,
            "users": self.users,
        }


@dataclass(frozen=True)
class Comparison:
    experiment: str
    control: str
    variant: str
    difference: float
    low: float
    high: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "control": self.control,
            "variant": self.variant,
            "diff": self.difference,
            "diff_low": self.low,
            "diff_high": self.high,
            "p_value": self.p_value,
            "interval": "newcombe",
            "test": "two-proportion z (pooled)",
        }


@dataclass(frozen=True)
class SampleRatio:
    """Users per variant against the configured shares; `p_value` None when the check does not apply."""

    experiment: str
    users: dict[str, int]
    shares: dict[str, float]
    p_value: float | None
    note: str = ""

    @property
    def mismatch(self) -> bool:
        return self.p_value is not None and self.p_value < SRM_ALPHA

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "shares": self.shares,
            "p_value": self.p_value,
            "mismatch": self.mismatch,
            "note": self.note,
        }


@dataclass
class ExperimentReport:
    window_minutes: float
    pseudonymized: bool
    inputs: InputStats
    # experiment -> variant -> figures, variants in report order (control first)
    experiments: dict[str, dict[str, VariantStats]]
    comparisons: list[Comparison]
    # experiment -> users seen in more than one of its variants (assignment should make this 0)
    mixed_users: dict[str, int]
    sample_ratios: list[SampleRatio]
    warnings: list[str]
    # Whether only impressions signed by serve were counted.
    verified: bool = False

    def summary(self) -> dict[str, Any]:
        """The JSON last line."""
        return {
            "experiments": {
                name: {variant: stats.to_dict() for variant, stats in variants.items()}
                for name, variants in self.experiments.items()
            },
            "comparisons": [c.to_dict() for c in self.comparisons],
            "srm": {s.experiment: s.to_dict() for s in self.sample_ratios},
            "mixed_users": self.mixed_users,
            "window_minutes": self.window_minutes,
            "lines": self.inputs.lines,
            "unparsed": self.inputs.unparsed,
            "unparsed_reasons": self.inputs.reasons,
            "duplicates": self.inputs.duplicates,
            "no_consent": self.inputs.no_consent,
            "impression_events": self.inputs.impressions,
            "view_events": self.inputs.views,
            "raw_id_views": self.inputs.raw_id_views,
            "impressions_verified": self.verified,
            "untrusted_impressions": self.inputs.untrusted_impressions,
            "pseudonymized": self.pseudonymized,
            "warnings": self.warnings,
        }


# -- the report --------------------------------------------------------------------------------------------


def _ordered(variants: dict[str, VariantStats]) -> dict[str, VariantStats]:
    """Control first when a variant is called so, then the order of first appearance in the input."""
    first = [CONTROL] if CONTROL in variants else []
    return {name: variants[name] for name in first + [v for v in variants if v != CONTROL]}


def _compare(experiment: str, variants: dict[str, VariantStats]) -> list[Comparison]:
    (control, base), *others = variants.items()
    comparisons = []
    for name, stats in others:
        difference, low, high = newcombe(base.clicks, base.impressions, stats.clicks, stats.impressions)
        p_value = two_proportion_p_value(base.clicks, base.impressions, stats.clicks, stats.impressions)
        comparisons.append(Comparison(experiment, control, name, difference, low, high, p_value))
    return comparisons


def sample_ratio(experiment: str, variants: dict[str, VariantStats], shares: dict[str, float]) -> SampleRatio:
    """Chi-square test of users per variant against the configured shares (a sample ratio mismatch check)."""
    users = {name: stats.users for name, stats in variants.items()}
    unknown = [name for name in users if name not in shares]
    if unknown:
        return SampleRatio(experiment, users, shares, None, f"no share given for {', '.join(unknown)}")
    if len(shares) < 2:
        return SampleRatio(experiment, users, shares, None, "needs at least two variants")
    observed = [users.get(name, 0) for name in shares]
    return SampleRatio(experiment, users, shares, chi_square_p_value(observed, list(shares.values())))


def _warnings(collector: Collector, mixed: dict[str, int]) -> list[str]:
    inputs, found = collector.inputs, []
    if inputs.raw_id_views:
        found.append(
            f"{inputs.raw_id_views:,} view_product events carry raw user ids (pseudonymous=false) and no pepper"
            " was given: they can only join impressions logged under the same raw id, and serve logs"
            " pseudonymous ids, so their clicks are missing. Pass --pepper (the ingest pepper) to include them."
        )
    if collector.impression_key is None:
        found.append(
            "impressions were not verified: anyone who can write to the stream could have added some. Pass"
            " --identity-key (serve's identity key) to count only the impressions serve signed."
        )
    elif inputs.untrusted_impressions:
        found.append(f"{inputs.untrusted_impressions:,} impression(s) not signed by serve were not counted.")
    if inputs.unparsed:
        found.append(f"{inputs.unparsed:,} line(s) are not valid events and were skipped (first reasons listed).")
    if not collector.groups:
        wanted = f" of experiment {collector.experiment!r}" if collector.experiment else ""
        found.append(f"no impressions{wanted} found: nothing to report.")
    for name, users in mixed.items():
        found.append(f"{name}: {users:,} user(s) saw more than one variant; assignment is not sticky per user.")
    return found


def build_report(
    collector: Collector, window_minutes: float = WINDOW_MINUTES, shares: dict[str, float] | None = None
) -> ExperimentReport:
    window_us = round(window_minutes * 60 * 1_000_000)
    tallies, mixed = tally_by_group(collector, window_us)
    experiments: dict[str, dict[str, VariantStats]] = {}
    for (experiment, variant), tally in zip(collector.groups, tallies, strict=True):
        stats = VariantStats(tally.impressions, tally.clicks, tally.users)
        experiments.setdefault(experiment, {})[variant] = stats
    experiments = {name: _ordered(variants) for name, variants in experiments.items()}
    real = {name: variants for name, variants in experiments.items() if name != NO_EXPERIMENT}
    comparisons = [c for name, variants in real.items() for c in _compare(name, variants)]
    ratios = [sample_ratio(name, variants, shares) for name, variants in real.items()] if shares else []
    return ExperimentReport(
        window_minutes=window_minutes,
        pseudonymized=collector.pepper is not None,
        inputs=collector.inputs,
        experiments=experiments,
        comparisons=comparisons,
        mixed_users=mixed,
        sample_ratios=ratios,
        warnings=_warnings(collector, mixed),
        verified=collector.impression_key is not None,
    )


def analyze(
    path: Path,
    experiment: str | None = None,
    window_minutes: float = WINDOW_MINUTES,
    pepper: bytes | None = None,
    shares: dict[str, float] | None = None,
    impression_key: bytes | None = None,
) -> ExperimentReport:
    """Read a stream dump (a JSON-lines file or a folder of them) and report CTR per experiment variant.

    With `impression_key`, only impressions serve signed count (see personalization.provenance)."""
    if window_minutes < 0:
        raise ValueError("the attribution window cannot be negative")
    files = event_files(path)
    collector = Collector(experiment=experiment, pepper=pepper, impression_key=impression_key)
    collector.inputs.files = len(files)
    for where, line in read_lines(files):
        collector.add_line(where, line)
    return build_report(collector, window_minutes, shares)


def parse_shares(text: str) -> dict[str, float]:
    """Parse "control=0.5,popular=0.5" (any positive weights: they are normalised to sum to 1)."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not sep or not name.strip() or not weight > 0 or math.isinf(weight):
            raise ValueError(f"expected variant=share with a positive share, got {part!r}")
        shares[name.strip()] = weight
    if not shares:
        raise ValueError("no shares given")
    return shares
