import math
import os
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from personalization.experiments import Experiment, active_experiment, assign, assignment, bucket, to_ms

ROOT = Path(__file__).resolve().parents[2]
IDS = 100_000


def experiment(experiment_id: str = "recs-vs-popular", *shares: float, **fields: Any) -> Experiment:
    split = shares or (0.5, 0.5)
    variants = [{"name": f"v{n}", "share": share} for n, share in enumerate(split)]
    return Experiment.model_validate({"id": experiment_id, "variants": variants, **fields})


def pseudonyms(seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(256):064x}" for _ in range(IDS)]


@pytest.fixture(scope="module")
def people() -> list[str]:
    return pseudonyms()


def test_assignment_is_pinned_to_sha256_not_to_this_process() -> None:
    # Given fixed ids, computed once with sha256 and pinned here
    # Then every process, container and PYTHONHASHSEED agrees on them
    control = Experiment.model_validate(
        {
            "id": "recs-vs-popular",
            "variants": [{"name": "control", "share": 0.5}, {"name": "popular", "share": 0.5}],
        }
    )
    assert bucket("recs-vs-popular", "0" * 64) == 0.5785351080769799
    assert bucket("recs-vs-popular", "f" * 64) == 0.4721395735100581
    assert assign(control, "0" * 64).name == "popular"
    assert assign(control, "f" * 64).name == "control"
    assert assign(control, "a1" * 32).name == "control"


@pytest.mark.parametrize("seed", ["0", "12345"])
def test_assignment_does_not_depend_on_pythonhashseed(seed: str) -> None:
    code = "from personalization.experiments import bucket; print(repr(bucket('exp', 'someone')))"
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT / "functions")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert float(done.stdout) == bucket("exp", "someone")


def test_the_same_person_always_gets_the_same_variant() -> None:
    exp = experiment("stable", 0.2, 0.3, 0.5)
    for person in pseudonyms(1)[:1000]:
        assert assign(exp, person) == assign(exp, person)
        assert 0.0 <= bucket("stable", person) < 1.0


def test_bucket_never_reaches_one() -> None:
    # The largest 64-bit prefix divided by 2**64 rounds to 1.0 in floating point; the bucket must not.
    top = ((2**64 - 1) >> 11) / 2**53
    assert top < 1.0


@pytest.mark.parametrize("shares", [(0.5, 0.5), (0.1, 0.3, 0.6)])
def test_shares_are_met_within_one_percent(shares: tuple[float, ...], people: list[str]) -> None:
    # Given 100,000 random 64-hex pseudonyms
    exp = experiment("split", *shares)
    counts = dict.fromkeys((v.name for v in exp.variants), 0)
    for person in people:
        counts[assign(exp, person).name] += 1
    # Then each variant's observed share is within 0.01 of its share (the standard error is about 0.0016)
    for variant in exp.variants:
        assert abs(counts[variant.name] / IDS - variant.share) < 0.01, counts


def test_buckets_are_uniform_by_chi_square(people: list[str]) -> None:
    bins = 20
    observed = [0] * bins
    for person in people:
        observed[int(bucket("uniform", person) * bins)] += 1
    expected = IDS / bins
    chi_square = sum((o - expected) ** 2 / expected for o in observed)
    # 19 degrees of freedom: 43.8 is the 0.999 quantile.
    assert chi_square < 43.8, observed


def test_different_experiments_assign_independently(people: list[str]) -> None:
    first = [bucket("exp-one", person) for person in people]
    second = [bucket("exp-two", person) for person in people]
    assert abs(_correlation(first, second)) < 0.01
    # Joint assignment in two 50/50 experiments: each of the four combinations holds about a quarter.
    one, two = experiment("exp-one"), experiment("exp-two")
    both = sum(1 for person in people if assign(one, person).name == "v0" and assign(two, person).name == "v0")
    assert abs(both / IDS - 0.25) < 0.01


def _correlation(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    vx = sum((x - mx) ** 2 for x in xs)
    vy = sum((y - my) ** 2 for y in ys)
    return cov / math.sqrt(vx * vy)


def test_shares_summing_to_one_within_a_millionth_are_accepted() -> None:
    exp = experiment("thirds", 0.333333, 0.333333, 0.333334)
    assert len(exp.variants) == 3
    assert assign(exp, "x").name in {"v0", "v1", "v2"}


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}], "shares must sum to 1, not 0.9"),
        ([{"name": "a", "share": 0.5}, {"name": "a", "share": 0.5}], "duplicate variant name(s): a"),
        ([{"name": "a", "share": 1.0}], "at least 2 variants"),
        ([{"name": "a", "share": 0.0}, {"name": "b", "share": 1.0}], "greater than 0"),
        ([{"name": "A", "share": 0.5}, {"name": "b", "share": 0.5}], "should match pattern"),
        ([{"name": "a", "share": 0.5, "extra": 1}, {"name": "b", "share": 0.5}], "Extra inputs are not permitted"),
        ([{"name": "a", "share": 0.5, "strategy": "random"}, {"name": "b", "share": 0.5}], "'model' or 'popular'"),
    ],
)
def test_invalid_experiments_are_refused(variants: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Experiment.model_validate({"id": "exp", "variants": variants})


def test_window_must_be_ordered_and_zoned() -> None:
    two = [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]
    with pytest.raises(ValidationError, match="start must be before end"):
        Experiment.model_validate(
            {"id": "exp", "variants": two, "start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
        )
    with pytest.raises(ValidationError, match="timezone"):
        Experiment.model_validate({"id": "exp", "variants": two, "start": "2026-02-01T00:00:00"})


def test_active_experiment_is_the_first_in_document_order_covering_slot_and_time() -> None:
    # Given an experiment on another slot, one not started yet, then two that cover "for-you" now
    now = datetime(2026, 6, 1, tzinfo=UTC)
    experiments = [
        experiment("home-only", slots=["home"]),
        experiment("later", start="2026-07-01T00:00:00Z"),
        experiment("for-you-test", slots=["for-you"], start="2026-05-01T00:00:00Z", end="2026-06-01T00:00:00Z"),
        experiment("everywhere"),
        experiment("also-everywhere"),
    ]

    # Then the end is exclusive: at the end instant the for-you test is over and the unscoped one applies
    def chosen(slot: str, now_ms: int) -> str | None:
        found = active_experiment(experiments, slot, now_ms)
        return None if found is None else found.id

    assert chosen("for-you", to_ms(now)) == "everywhere"
    assert chosen("for-you", to_ms(now) - 1) == "for-you-test"
    assert chosen("home", to_ms(now)) == "home-only"
    assert active_experiment(experiments[:3], "cart", to_ms(now)) is None


def test_assignment_names_the_variant_as_rules_do() -> None:
    exp = experiment("recs-vs-popular")
    found = assignment([exp], "for-you", 0, "0" * 64)
    assert found is not None
    assert found.key == f"recs-vs-popular:{assign(exp, '0' * 64).name}"
    assert assignment([], "for-you", 0, "0" * 64) is None
