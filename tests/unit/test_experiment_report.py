"""`python -m model_export experiment`: attribution, statistics and the report, on hand-made stream dumps."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from model_export.experiments.experiment import ExperimentReport, analyze, parse_shares
from model_export.experiments.experiment_report import (
    PEPPER_ENV,
    add_arguments,
    markdown,
    pepper_bytes,
    run,
    table_text,
)
from model_export.experiments.experiment_stats import newcombe, two_proportion_p_value, wilson
from model_export.experiments.stream import NO_EXPERIMENT, NO_VARIANT
from personalization.events import Event
from personalization.identity import pseudonymize

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONSENT = {"analytics": True, "personalization": True}
Z = 1.959963984540054  # the 97.5% normal quantile, as printed in any table


def user(name: str) -> str:
    """A pseudonymous id (64 hex), as serve and the collector send."""
    return hashlib.sha256(name.encode()).hexdigest()


def impression(
    event_id: str,
    who: str,
    at: datetime,
    items: list[str],
    experiment: str | None = "exp1",
    variant: str | None = "control",
) -> bytes:
    body = {
        "event_id": event_id,
        "pseudonymous": True,
        "user_id": user(who),
        "type": "impression",
        "ts": at.isoformat(),
        "consent": CONSENT,
        "impression": {
            "slot": "home",
            "items": items,
            "experiment": experiment,
            "variant": variant,
            "model_version": "v1",
            "rules_version": "r1",
        },
    }
    # Through the real schema, exactly as the stream would carry it.
    return Event.model_validate(body).to_json_bytes()


def view(event_id: str, who: str, at: datetime, item: str, *, raw: bool = False, analytics: bool = True) -> bytes:
    body = {
        "event_id": event_id,
        "pseudonymous": not raw,
        "user_id": who if raw else user(who),
        "type": "view_product",
        "ts": at.isoformat(),
        "item_id": item,
        "consent": {"analytics": analytics, "personalization": True},
    }
    return Event.model_validate(body).to_json_bytes()


def dump(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def report_of(tmp_path: Path, lines: list[bytes], **options: Any) -> ExperimentReport:
    return analyze(dump(tmp_path / "events.jsonl", lines), **options)


def figures(report: ExperimentReport, experiment: str = "exp1") -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = report.summary()["experiments"][experiment]
    return found


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# -- the statistics, against values computed independently --------------------------------------------------


def wilson_by_hand(x: int, n: int) -> tuple[float, float]:
    # The textbook form (x + z²/2 ± z·sqrt(x(n-x)/n + z²/4)) / (n + z²), arranged differently from the code.
    root = Z * math.sqrt(x * (n - x) / n + Z * Z / 4)
    return (x + Z * Z / 2 - root) / (n + Z * Z), (x + Z * Z / 2 + root) / (n + Z * Z)


@pytest.mark.parametrize(
    ("x", "n", "published"),
    [
        (0, 10, (0.0, 0.2775)),  # the "rule of three"-like upper bound for zero successes
        (5, 10, (0.2366, 0.7634)),
        (50, 1000, (0.0381, 0.0653)),
    ],
)
def test_wilson_matches_the_formula_and_published_values(x: int, n: int, published: tuple[float, float]) -> None:
    low, high = wilson(x, n)
    assert (low, high) == pytest.approx(wilson_by_hand(x, n), abs=1e-12)
    assert (round(low, 4), round(high, 4)) == published


def test_wilson_stays_inside_zero_and_one_where_the_normal_approximation_does_not() -> None:
    low, high = wilson(0, 3)
    assert low == 0.0
    assert high == pytest.approx(0.5615, abs=1e-4)
    assert wilson(3, 3)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)


def test_newcombe_reproduces_the_examples_of_his_1998_paper() -> None:
    # Newcombe, Statistics in Medicine 17:873-890, Table II, method 10: 56/70 - 48/80 and 9/10 - 3/10.
    difference, low, high = newcombe(48, 80, 56, 70)
    assert (round(difference, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)
    difference, low, high = newcombe(3, 10, 9, 10)
    assert (round(difference, 4), round(low, 4), round(high, 4)) == (0.6, 0.1705, 0.8090)


def test_two_proportion_p_value() -> None:
    # By hand: pooled p = 0.15, se = sqrt(.15 * .85 * (2 / 100)) = 0.050498, z = 0.1 / se = 1.980.
    assert two_proportion_p_value(10, 100, 20, 100) == pytest.approx(0.04771, abs=1e-4)
    assert two_proportion_p_value(0, 10, 0, 10) == 1.0
    # Far in the tail the value is still a positive number, not a rounded 0.
    assert 0 < two_proportion_p_value(100, 10_000, 400, 10_000) < 1e-30


# -- the report on tiny files, every figure by hand ----------------------------------------------------------


def test_a_tiny_file_gives_exact_counts_ctr_and_intervals(tmp_path: Path) -> None:
    # Given three control impressions (one clicked) and two popular ones (both clicked), to four users
    lines = [
        impression("i1", "ann", T0, ["a", "b"]),
        view("v1", "ann", T0 + minutes(3), "b"),
        impression("i2", "bob", T0, ["a"]),
        view("v2", "bob", T0 + minutes(3), "z"),  # not a shown item
        impression("i3", "bob", T0 + minutes(60), ["c"]),
        impression("i4", "cat", T0, ["a"], variant="popular"),
        view("v4", "cat", T0 + minutes(1), "a"),
        impression("i5", "dan", T0, ["d"], variant="popular"),
        view("v5", "dan", T0 + minutes(29), "d"),
    ]
    # When the report runs
    report = report_of(tmp_path, lines)
    # Then every figure is what counting by hand gives
    control, popular = figures(report)["control"], figures(report)["popular"]
    assert (control["impressions"], control["clicks"], control["users"]) == (3, 1, 2)
    assert (popular["impressions"], popular["clicks"], popular["users"]) == (2, 2, 2)
    assert control["ctr"] == pytest.approx(1 / 3)
    assert (control["ctr_low"], control["ctr_high"]) == pytest.approx(wilson_by_hand(1, 3))
    assert (popular["ctr_low"], popular["ctr_high"]) == (pytest.approx(wilson_by_hand(2, 2)[0]), 1.0)
    [comparison] = report.summary()["comparisons"]
    assert (comparison["control"], comparison["variant"]) == ("control", "popular")
    assert comparison["diff"] == pytest.approx(2 / 3)
    assert (comparison["diff_low"], comparison["diff_high"]) == pytest.approx(newcombe(1, 3, 2, 2)[1:])
    assert comparison["p_value"] == pytest.approx(two_proportion_p_value(1, 3, 2, 2))
    assert report.summary()["lines"] == 9
    assert report.summary()["unparsed"] == 0


@pytest.mark.parametrize(
    ("after", "clicked"),
    [
        (timedelta(0), True),  # at the impression's own instant
        (minutes(30), True),  # exactly at the end of the window
        (minutes(30) + timedelta(milliseconds=1), False),
        (-timedelta(milliseconds=1), False),  # before the impression
    ],
)
def test_the_window_edges(tmp_path: Path, after: timedelta, clicked: bool) -> None:
    report = report_of(tmp_path, [impression("i1", "ann", T0, ["a"]), view("v1", "ann", T0 + after, "a")])
    assert figures(report)["control"]["clicks"] == int(clicked)


def test_the_window_is_an_option(tmp_path: Path) -> None:
    lines = [impression("i1", "ann", T0, ["a"]), view("v1", "ann", T0 + minutes(45), "a")]
    assert figures(report_of(tmp_path, lines))["control"]["clicks"] == 0
    assert figures(report_of(tmp_path, lines, window_minutes=60))["control"]["clicks"] == 1


def test_a_view_is_credited_to_the_latest_impression_that_showed_the_item(tmp_path: Path) -> None:
    # Given two impressions within the window that both showed item a, one in each variant
    lines = [
        impression("i1", "ann", T0, ["a", "b"], variant="control"),
        impression("i2", "ann", T0 + minutes(5), ["a"], variant="popular"),
        view("v1", "ann", T0 + minutes(10), "a"),
        view("v2", "ann", T0 + minutes(11), "a"),  # a second look at the same item: still one click
    ]
    # Then only the later one is clicked: last touch, no double counting
    report = report_of(tmp_path, lines)
    assert figures(report)["control"]["clicks"] == 0
    assert figures(report)["popular"]["clicks"] == 1


def test_an_item_only_the_earlier_impression_showed_credits_the_earlier_one(tmp_path: Path) -> None:
    lines = [
        impression("i1", "ann", T0, ["a", "b"]),
        impression("i2", "ann", T0 + minutes(5), ["a"]),
        view("v1", "ann", T0 + minutes(10), "b"),
    ]
    assert figures(report_of(tmp_path, lines))["control"]["clicks"] == 1


def test_a_view_after_the_latest_window_is_not_credited_to_an_earlier_impression(tmp_path: Path) -> None:
    lines = [
        impression("i1", "ann", T0, ["a"]),
        impression("i2", "ann", T0 + minutes(20), ["a"], variant="popular"),
        view("v1", "ann", T0 + minutes(55), "a"),  # 35 min after i2, 55 after i1
        view("v2", "ann", T0 + minutes(19), "a"),  # before i2: i1's
    ]
    report = report_of(tmp_path, lines)
    assert figures(report)["control"]["clicks"] == 1
    assert figures(report)["popular"]["clicks"] == 0


def test_another_users_view_is_not_a_click(tmp_path: Path) -> None:
    lines = [impression("i1", "ann", T0, ["a"]), view("v1", "bob", T0 + minutes(1), "a")]
    assert figures(report_of(tmp_path, lines))["control"]["clicks"] == 0


def test_redelivered_events_count_once(tmp_path: Path) -> None:
    shown, seen = impression("i1", "ann", T0, ["a"]), view("v1", "ann", T0 + minutes(1), "a")
    other = impression("i2", "bob", T0, ["a"])
    report = report_of(tmp_path, [shown, seen, shown, other, seen, shown])
    assert figures(report)["control"]["impressions"] == 2
    assert figures(report)["control"]["clicks"] == 1
    assert report.summary()["duplicates"] == 3


def test_lines_out_of_order_give_the_same_report(tmp_path: Path) -> None:
    lines = [
        impression("i1", "ann", T0, ["a"]),
        impression("i2", "ann", T0 + minutes(5), ["a"], variant="popular"),
        view("v1", "ann", T0 + minutes(10), "a"),
        impression("i3", "bob", T0, ["b"]),
        view("v3", "bob", T0 + minutes(2), "b"),
    ]
    in_order = report_of(tmp_path, lines).summary()["experiments"]
    for seed in range(5):
        shuffled = lines[:]
        random.Random(seed).shuffle(shuffled)
        assert report_of(tmp_path, shuffled).summary()["experiments"] == in_order
    assert in_order["exp1"]["control"]["clicks"] == 1
    assert in_order["exp1"]["popular"]["clicks"] == 1


def test_bad_lines_are_counted_with_reasons_and_never_stop_the_report(tmp_path: Path) -> None:
    # Given good events among lines that are not events, one of them naming a raw user id
    no_item = json.loads(view("v9", "ann", T0, "a"))
    del no_item["item_id"]
    bad = [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps(no_item).encode(),
        b'{"event_id": "x", "user_id": "alice@example.com", "type": "nope"}',
        b'{"event_id": "y"}',
    ]
    lines = [impression("i1", "ann", T0, ["a"]), *bad, view("v1", "ann", T0 + minutes(1), "a")]
    # When the report runs
    report = report_of(tmp_path, lines)
    # Then the bad lines are counted, the first five explained, and the good ones reported
    summary = report.summary()
    assert summary["lines"] == 8
    assert summary["unparsed"] == 6
    assert len(summary["unparsed_reasons"]) == 5
    assert summary["unparsed_reasons"][0].startswith("events.jsonl:2: ")
    assert "item_id is required" in summary["unparsed_reasons"][3]
    assert not any("alice" in reason for reason in summary["unparsed_reasons"])
    assert figures(report)["control"]["clicks"] == 1
    assert any("not valid events" in warning for warning in report.warnings)


def test_views_without_analytics_consent_are_not_counted(tmp_path: Path) -> None:
    lines = [impression("i1", "ann", T0, ["a"]), view("v1", "ann", T0 + minutes(1), "a", analytics=False)]
    report = report_of(tmp_path, lines)
    assert figures(report)["control"]["clicks"] == 0
    assert report.summary()["no_consent"] == 1


def test_raw_id_views_join_only_with_the_pepper_and_the_report_says_so(tmp_path: Path) -> None:
    # Given an impression logged under the pseudonym of raw id "u-42", and that user's raw-id view
    pepper = b"ingest pepper"
    shown = impression("i1", "x", T0, ["a"])
    body = json.loads(shown)
    body["user_id"] = pseudonymize(pepper, "u-42")
    lines = [json.dumps(body).encode(), view("v1", "u-42", T0 + minutes(1), "a", raw=True)]
    # Without the pepper the view cannot join, and a warning says why
    without = report_of(tmp_path, lines)
    assert figures(without)["control"]["clicks"] == 0
    assert without.summary()["raw_id_views"] == 1
    assert any("raw user ids" in warning and "--pepper" in warning for warning in without.warnings)
    # With it, the view is pseudonymized on parsing and joins
    with_pepper = report_of(tmp_path, lines, pepper=pepper)
    assert figures(with_pepper)["control"]["clicks"] == 1
    assert not [w for w in with_pepper.warnings if "not verified" not in w]


def test_the_pepper_is_the_ssm_text_or_its_bytes_in_hex() -> None:
    # Ingest keys the HMAC with the SSM value's UTF-8 bytes, so --pepper takes that text as it is.
    assert pepper_bytes("ab12", None) == b"ab12"
    assert pepper_bytes(None, "ab12") == bytes([0xAB, 0x12])
    assert pepper_bytes(None, None) is None
    with pytest.raises(ValueError, match="hexadecimal"):
        pepper_bytes(None, "xyz")


def test_control_comes_first_and_other_variants_in_order_of_appearance(tmp_path: Path) -> None:
    lines = [
        impression("i1", "ann", T0, ["a"], variant="popular"),
        impression("i2", "bob", T0, ["a"], variant="similar"),
        impression("i3", "cat", T0, ["a"], variant="control"),
        impression("i4", "dan", T0, ["a"], experiment="exp2", variant="b"),
        impression("i5", "eve", T0, ["a"], experiment="exp2", variant="a"),
    ]
    report = report_of(tmp_path, lines)
    assert list(figures(report)) == ["control", "popular", "similar"]
    assert list(figures(report, "exp2")) == ["b", "a"]
    pairs = [(c["experiment"], c["control"], c["variant"]) for c in report.summary()["comparisons"]]
    assert pairs == [("exp1", "control", "popular"), ("exp1", "control", "similar"), ("exp2", "b", "a")]


def test_impressions_outside_any_experiment_form_one_group_and_are_not_compared(tmp_path: Path) -> None:
    lines = [
        impression("i1", "ann", T0, ["a"], experiment=None, variant=None),
        impression("i2", "bob", T0, ["a"], experiment=None, variant=None),
        view("v1", "bob", T0 + minutes(1), "a"),
    ]
    report = report_of(tmp_path, lines)
    assert figures(report, NO_EXPERIMENT)[NO_VARIANT]["impressions"] == 2
    assert figures(report, NO_EXPERIMENT)[NO_VARIANT]["clicks"] == 1
    assert report.comparisons == []


def test_one_experiment_can_be_chosen(tmp_path: Path) -> None:
    lines = [
        impression("i1", "ann", T0, ["a"]),
        impression("i2", "bob", T0, ["a"], experiment="exp2"),
        impression("i3", "cat", T0, ["a"], experiment=None),
    ]
    report = report_of(tmp_path, lines, experiment="exp2")
    assert list(report.experiments) == ["exp2"]
    missing = report_of(tmp_path, lines, experiment="exp9")
    assert missing.experiments == {}
    assert any("'exp9'" in warning for warning in missing.warnings)


def test_users_in_several_variants_are_flagged(tmp_path: Path) -> None:
    lines = [
        impression("i1", "ann", T0, ["a"], variant="control"),
        impression("i2", "ann", T0 + minutes(90), ["a"], variant="popular"),
    ]
    report = report_of(tmp_path, lines)
    assert report.mixed_users == {"exp1": 1}
    assert any("more than one variant" in warning for warning in report.warnings)


def test_a_folder_of_plain_and_gzipped_files_reads_like_one_file(tmp_path: Path) -> None:
    lines = [
        impression("i1", "ann", T0, ["a"]),
        view("v1", "ann", T0 + minutes(1), "a"),
        impression("i2", "bob", T0, ["a"], variant="popular"),
        view("v2", "bob", T0 + minutes(2), "a"),
    ]
    folder = tmp_path / "dump"
    (folder / "2026" / "03").mkdir(parents=True)
    dump(folder / "2026" / "03" / "part-1.jsonl", lines[:2])
    (folder / "2026" / "03" / "part-2.jsonl.gz").write_bytes(gzip.compress(b"".join(x + b"\n" for x in lines[2:])))
    (folder / "README.txt").write_text("not an event file: ignored")
    single = report_of(tmp_path, lines).summary()
    from_folder = analyze(folder).summary()
    assert from_folder["experiments"] == single["experiments"]
    assert from_folder["lines"] == 4


def test_a_missing_path_or_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        analyze(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match=r"\.jsonl"):
        analyze(tmp_path)


def test_shares_are_parsed_and_checked() -> None:
    assert parse_shares("control=0.5, popular=0.5") == {"control": 0.5, "popular": 0.5}
    assert parse_shares("a=1,b=3") == {"a": 1.0, "b": 3.0}
    for bad in ("control", "control=-1", "control=x", "=1", "a=inf", ""):
        with pytest.raises(ValueError, match="share"):
            parse_shares(bad)


def test_sample_ratio_needs_a_share_for_every_variant(tmp_path: Path) -> None:
    lines = [impression("i1", "ann", T0, ["a"]), impression("i2", "bob", T0, ["a"], variant="popular")]
    report = report_of(tmp_path, lines, shares={"control": 1.0})
    [ratio] = report.sample_ratios
    assert ratio.p_value is None
    assert "popular" in ratio.note


def test_the_plain_text_and_markdown_reports_show_every_variant(tmp_path: Path) -> None:
    lines = [impression("i1", "ann", T0, ["a"]), impression("i2", "bob", T0, ["a"], variant="popular")]
    report = report_of(tmp_path, lines, shares={"control": 1, "popular": 1})
    for text in (table_text(report), markdown(report, "events.jsonl")):
        assert "popular vs control" in text
        assert "SRM exp1" in text
        assert "0.00% – 79.35%" in text  # Wilson for 0 of 1


# -- a simulated A/B test ------------------------------------------------------------------------------------

TRUE_CTR = {"control": 0.05, "popular": 0.07}


def simulated_ab(path: Path, impressions: int = 20_000, seed: int = 7) -> Path:
    """Users split 50/50; each sees fragments an hour apart and clicks one shown item at its variant's rate."""
    rng = random.Random(seed)
    per_user = 5
    lines: list[bytes] = []
    for n in range(impressions // per_user):
        who = f"user-{n}"
        variant = "control" if rng.random() < 0.5 else "popular"
        for k in range(per_user):
            at = T0 + timedelta(hours=k, seconds=rng.randrange(3600))
            items = rng.sample(range(500), 4)
            lines.append(impression(f"{who}-i{k}", who, at, [f"item-{i}" for i in items], variant=variant))
            if rng.random() < TRUE_CTR[variant]:
                clicked_at = at + timedelta(seconds=rng.randrange(1, 30 * 60))
                lines.append(view(f"{who}-v{k}", who, clicked_at, f"item-{rng.choice(items)}"))
            if rng.random() < 0.3:  # browsing that is not a click: an item the fragment did not show
                lines.append(view(f"{who}-b{k}", who, at + minutes(5), f"item-{500 + k}"))
    rng.shuffle(lines)  # the stream's shards interleave
    return dump(path, lines)


def test_a_simulated_ab_test_recovers_the_true_rates(tmp_path: Path) -> None:
    # Given 20,000 impressions with true CTRs of 5% and 7%
    path = simulated_ab(tmp_path / "ab.jsonl")
    # When the report runs with the configured 50/50 shares
    report = analyze(path, shares={"control": 0.5, "popular": 0.5})
    # Then each interval covers its true rate, the difference's interval covers 2 points, and p is small
    found = figures(report)
    assert found["control"]["impressions"] + found["popular"]["impressions"] == 20_000
    for variant, truth in TRUE_CTR.items():
        assert found[variant]["ctr_low"] < truth < found[variant]["ctr_high"]
    [comparison] = report.summary()["comparisons"]
    assert comparison["diff_low"] < 0.02 < comparison["diff_high"]
    assert comparison["diff_low"] > 0
    assert comparison["p_value"] < 1e-4
    [ratio] = report.sample_ratios
    assert ratio.p_value is not None
    assert not ratio.mismatch


def test_a_sample_ratio_mismatch_is_flagged(tmp_path: Path) -> None:
    path = simulated_ab(tmp_path / "ab.jsonl", impressions=5_000)
    [ratio] = analyze(path, shares={"control": 0.6, "popular": 0.4}).sample_ratios
    assert ratio.mismatch


# -- the command ---------------------------------------------------------------------------------------------


def test_the_command_prints_the_figures_as_its_last_line_and_writes_the_report(tmp_path: Path) -> None:
    # Given a dump with one clicked control impression, one unclicked popular one and a bad line
    events = dump(
        tmp_path / "events.jsonl",
        [
            impression("i1", "ann", T0, ["a"]),
            view("v1", "ann", T0 + minutes(30), "a"),
            impression("i2", "bob", T0, ["a"], variant="popular"),
            b"{broken",
        ],
    )
    out = tmp_path / "report"
    # When the command runs as a user would
    result = subprocess.run(
        [sys.executable, "-m", "model_export", "experiment", "--events", str(events), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then the last line is the figures, and report.json holds the same
    assert result.returncode == 0, result.stderr[-3000:]
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["experiments"]["exp1"]["control"] == {
        "impressions": 1,
        "clicks": 1,
        "ctr": 1.0,
        "ctr_low": pytest.approx(wilson_by_hand(1, 1)[0]),
        "ctr_high": 1.0,
        "users": 1,
    }
    assert last["experiments"]["exp1"]["popular"]["clicks"] == 0
    assert (last["lines"], last["unparsed"]) == (4, 1)
    assert len(last["comparisons"]) == 1
    assert json.loads((out / "report.json").read_text()) == last
    assert "popular vs control" in (out / "report.md").read_text()


def test_the_command_refuses_a_missing_file_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "model_export", "experiment", "--events", str(tmp_path / "none.jsonl")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_the_chi_square_p_value_matches_its_closed_forms() -> None:
    from model_export.experiments.experiment_stats import chi_square_p_value

    # 1 degree of freedom: P(chi2 > x) = erfc(sqrt(x / 2)); 480 vs 520 of 1,000 at 50/50 gives x = 1.6.
    assert chi_square_p_value([480, 520], [0.5, 0.5]) == pytest.approx(math.erfc(math.sqrt(0.8)))
    # 2 degrees of freedom: exp(-x / 2); 300/500/200 at 1:2:1 gives x = 10 + 0 + 10 = 20.
    assert chi_square_p_value([300, 500, 200], [1, 2, 1]) == pytest.approx(math.exp(-10))


def test_the_options_read_the_pepper_from_the_environment_and_check_the_shares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a raw-id view whose pseudonym under the pepper in the environment saw the impression
    pepper = "pepper from ssm"
    shown = json.loads(impression("i1", "x", T0, ["a"]))
    shown["user_id"] = pseudonymize(pepper.encode(), "u-7")
    events = dump(tmp_path / "e.jsonl", [json.dumps(shown).encode(), view("v1", "u-7", T0 + minutes(1), "a", raw=True)])
    monkeypatch.setenv(PEPPER_ENV, pepper)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    # When the command's options are parsed and run in-process
    code = run(parser.parse_args(["--events", str(events), "--shares", "control=1"]))
    # Then the view joined, and the last line holds the SRM verdict
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert last["experiments"]["exp1"]["control"]["clicks"] == 1
    assert last["pseudonymized"] is True
    assert last["srm"]["exp1"]["p_value"] is None  # one variant: nothing to test
    # And malformed shares are refused with a message, not a traceback
    assert run(parser.parse_args(["--events", str(events), "--shares", "control"])) == 2
    assert "variant=share" in capsys.readouterr().err


# -- only impressions serve signed count (issue 21, finding 7) ----------------------------------------------

IDENTITY_KEY = "the identity key as stored in SSM"


def signed(line: bytes, key: str = IDENTITY_KEY) -> bytes:
    """An impression line as serve writes it: signed under the key derived from its identity key."""
    from personalization.provenance import impression_key, impression_signature

    event = Event.model_validate_json(line)
    assert event.impression is not None
    signature = impression_signature(impression_key(key.encode()), event)
    return event.model_copy(
        update={"impression": event.impression.model_copy(update={"signature": signature})}
    ).to_json_bytes()


def test_impressions_not_signed_by_serve_do_not_count_when_the_key_is_given(tmp_path: Path) -> None:
    # Given serve's impressions for two visitors of each variant, one click in control...
    lines = []
    for n, variant in enumerate(["control", "control", "popular", "popular"]):
        lines.append(signed(impression(f"s{n}", f"u{n}", T0, ["a", "b"], variant=variant)))
    lines.append(view("v0", "u0", T0 + minutes(1), "a"))
    # ...and a client's forgeries: control impressions it clicks itself, unsigned, mis-signed or altered
    for n in range(30):
        forged = impression(f"f{n}", f"forger{n}", T0, ["a"], variant="control")
        lines.append(
            [forged, signed(forged, key="a guessed key"), signed(forged).replace(b"control", b"popular")][n % 3]
        )
        lines.append(view(f"fv{n}", f"forger{n}", T0 + minutes(1), "a"))

    # When the report is made with serve's key, only serve's impressions count
    report = report_of(tmp_path, lines, impression_key=impression_key_of(IDENTITY_KEY))
    found = figures(report)
    assert (found["control"]["impressions"], found["control"]["clicks"]) == (2, 1)
    assert (found["popular"]["impressions"], found["popular"]["clicks"]) == (2, 0)
    assert report.summary()["untrusted_impressions"] == 30
    assert report.summary()["impressions_verified"] is True
    assert any("not signed by serve" in w for w in report.warnings)

    # And without the key every impression counts, and the report says they were not verified
    unverified = report_of(tmp_path, lines)
    assert figures(unverified)["control"]["impressions"] == 22
    assert unverified.summary()["impressions_verified"] is False
    assert any("not verified" in w for w in unverified.warnings)


def impression_key_of(identity_key: str) -> bytes:
    from model_export.experiments.experiment_report import identity_key_bytes

    key = identity_key_bytes(identity_key)
    assert key is not None
    return key


def test_serve_signs_the_impressions_it_logs_and_any_change_breaks_the_signature() -> None:
    from personalization.catalog import CatalogItem
    from personalization.fragments import Labels, Mode, build
    from personalization.provenance import impression_key, signed_by_serve
    from personalization.ranking import Scored
    from serve.impressions import impression_event

    item = CatalogItem(id="i-1", category="c", price=1.0, popularity=1.0)
    fragment = build("for-you", Mode.PERSONALIZED, [Scored(item, 1.0)], "v1", labels=Labels("r1", "exp1", "control"))
    event = impression_event(user("someone"), fragment, T0, IDENTITY_KEY.encode())
    key = impression_key(IDENTITY_KEY.encode())
    assert signed_by_serve(key, event)
    assert signed_by_serve(key, Event.model_validate_json(event.to_json_bytes()))  # through the stream
    assert event.impression is not None
    for change in ({"variant": "popular"}, {"items": ["i-2"]}, {"signature": None}):
        assert not signed_by_serve(
            key, event.model_copy(update={"impression": event.impression.model_copy(update=change)})
        )
    assert not signed_by_serve(key, event.model_copy(update={"user_id": user("another")}))
    assert not signed_by_serve(impression_key(b"another key"), event)
