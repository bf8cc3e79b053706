"""`python -m bench.rules`: what the business rules cost a request, and what compiling them costs a catalog.

The catalog is the bundled REES46 sample (tests/data/rees46_head2000.csv, built as the trainer builds it) plus a
SYNTHETIC tail to 55,000 items: made-up ids with real categories and brands drawn at random, random prices and a
popularity below every real item's. The rules document has 112 rules of every kind, built from the catalog's real
categories, brands and ids (seeded, so every run times the same document); 200 candidates per request, half from
the best-sellers, half from anywhere, with model-like descending scores; 50 made-up people with purchases (inside
and outside the windows, some among the candidates) and carts. The candidates reach the rules as the recommendation
graph hands them over: arrays of catalog positions and scores (personalization.ranking.Candidates), no object per
candidate; only the k shown items become objects.

Figures (the JSON object on the last line):
  rules_us_p50 / _p99   engine.plan(request) + plan.apply(200 candidates, k), microseconds of this thread's CPU
                        time (time.thread_time_ns: time the scheduler gave other processes is left out), warm:
                        the worst of the model, curated and context scenarios below. Nearest-rank percentiles
                        over TIMED requests per scenario; *_wall_us_* are the same requests by the wall clock.
                        What sets p99: an interrupt (the 250 Hz timer tick, another process's wake-up) landing
                        in a request charges it the handler (~25 us on a 2-vCPU VM, as a tiny loop shows) and
                        refilling the caches the rules had warm (~40 us more). At ~60 us per request 2-3% of
                        requests are hit, so p99 is about p50 plus that; the fewer requests hit (the shorter
                        they are) and the less they touch, the lower it sits
  reference_sum_range_us  sum(range(1000)) on this machine, best of many: a yardstick to scale the figures by
  model_*               scenario "model": 111 of the 112 rules active (the curated list is scoped to the checkout
                        journey), applied to the 200 candidates
  curated_*             scenario "curated": all 112 active; the curated list (200 items) replaces the candidates
  context_*             scenario "context": the "model" requests, each from a viewer context drawn from 3 devices x
                        3 countries x 24 local hours x 4 channels; 12 of the rules are scoped to a device,
                        country, daypart or channel (the other scenarios' viewer matches them all)
  uncached_*            the "model" scenario with the per-scope selection cache off (cache_size=0): every request
                        selects its active rules afresh; what a first request for a new slot / journey / segment /
                        variant combination pays. What depends only on the active exclude rules (the union of
                        their items, the catalog mask) or boosts (their factors per signature) is shared by every
                        selection with the same ones, as it is in serve: a new combination with exclude rules no
                        other one has pays their union once more (tens of microseconds for these 1,381 items)
  compile_ms            RuleEngine(document, catalog): resolving every rule's items through the catalog indexes;
                        median of COMPILES
"""

from __future__ import annotations

import os
import random
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import main_of, median, percentile, table
from personalization.catalog import Catalog, CatalogItem
from personalization.context import Channel, Device, RequestContext
from personalization.ranking import Candidates, Scored
from personalization.rules import RuleEngine, RuleRequest, RulesDocument, parse_document

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "rees46_head2000.csv"
TARGET_ITEMS = 55_000
CANDIDATES = 200
K = 10
PEOPLE = 50
CANDIDATE_LISTS = 20
WARMUP = 500
TIMED = 5_000
COMPILES = 3
TARGETS = {"rules_us_p99": 200.0}
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 24 * 3600 * 1000
SEGMENT = "recent high-value buyers"
VARIANT = "recs-vs-popular:control"
DAYPARTS = {"night": {"start": 0, "end": 6}, "morning": {"start": 6, "end": 12}, "evening": {"start": 18, "end": 24}}
# The viewer every rule's context scope matches (mobile, Germany, 20:00, from a search engine).
EVERY_CONTEXT = RequestContext(Device.MOBILE, "DE", 20, 0, 60, Channel.SEARCH)
CONTEXT_MIX = (
    [Device.MOBILE, Device.DESKTOP, Device.TABLET],
    ["DE", "ES", "US"],
    list(range(24)),
    [Channel.SEARCH, Channel.EMAIL, Channel.DIRECT, Channel.SOCIAL],
)


def load_catalog() -> tuple[Catalog, int]:
    """The sample's catalog plus the synthetic tail; returns the catalog and how many items are real."""
    from model_export.data.canonical import normalize
    from model_export.data.catalog import build_catalog
    from model_export.data.datasets import rees46

    real = build_catalog(normalize(rees46(SAMPLE), str(SAMPLE)))
    rng = random.Random(0)
    categories = sorted(real.by_category)
    brands = sorted({item.brand for item in real.items if item.brand})
    floor = min(item.popularity for item in real.items)
    synthetic = [
        CatalogItem(
            id=f"synthetic-item-{n}",
            category=rng.choice(categories),
            price=round(rng.uniform(1, 2000), 2),
            popularity=round(rng.uniform(0, floor), 4),
            brand=rng.choice([*brands, None]),
        )
        for n in range(TARGET_ITEMS - len(real))
    ]
    return Catalog([*real.items, *synthetic]), len(real)


def document(catalog: Catalog) -> RulesDocument:
    """112 rules of every kind from the catalog's real categories, brands and ids, 12 scoped to a viewer context:
    all active at checkout for EVERY_CONTEXT, all but the curated list (scoped to checkout) elsewhere."""
    rng = random.Random(1)
    real = [item for item in catalog.items if not item.id.startswith("synthetic")]
    categories = sorted(catalog.by_category, key=lambda c: -len(catalog.by_category[c]))
    small = categories[-40:]
    brands = sorted({item.brand for item in real if item.brand})
    some = [item.id for item in catalog.items]
    window = {"start": (NOW - timedelta(days=7)).isoformat(), "end": (NOW + timedelta(days=7)).isoformat()}
    scopes: list[dict[str, Any]] = [
        {},
        {"slots": ["for-you", "home"]},
        {"segments": [SEGMENT, "7"]},
        {"variants": [VARIANT]},
        window,
    ]

    def rule(n: int, kind: str, **fields: Any) -> dict[str, Any]:
        return {"id": f"{kind}-{n}", "kind": kind, "when": scopes[n % len(scopes)], **fields}

    rules = [
        rule(0, "exclude_purchased", days=30),
        rule(1, "exclude_purchased", days=90),
        rule(2, "exclude_cart"),
        *(rule(n, "exclude", match={"items": rng.sample(some, 30)}) for n in range(4)),
        *(rule(n, "exclude", match={"categories": [small[n]]}) for n in range(4, 7)),
        *(rule(n, "exclude", match={"brands": [rng.choice(brands)], "price_min": 1500}) for n in range(7, 10)),
        *(rule(n, "exclude", match={"price_min": 1990}) for n in range(10, 12)),
        *(rule(n, "pin", items=[real[n * 7].id], position=1 + 4 * n) for n in range(10)),
        *(
            rule(n, "boost", match={"brands": [rng.choice(brands)]}, factor=round(rng.uniform(1.1, 3), 2))
            for n in range(25)
        ),
        *(
            rule(n, "boost", match={"categories": [rng.choice(categories).split(".")[0]]}, factor=1.5)
            for n in range(25, 45)
        ),
        *(
            rule(n, "boost", match={"price_max": rng.choice([5, 10, 20])}, factor=round(rng.uniform(0.2, 0.9), 2))
            for n in range(45, 55)
        ),
        *(rule(n, "boost", match={"items": rng.sample(some, 50)}, factor=2.0) for n in range(55, 71)),
        # Context-scoped: a viewer's device, country, daypart, channel (all active for EVERY_CONTEXT).
        *(
            {**rule(n, "boost", match={"brands": [rng.choice(brands)]}, factor=1.7), "when": when}
            for n, when in enumerate(CONTEXT_SCOPES, start=71)
        ),
        rule(0, "diversity", max_per_category=3, top_k=10),
        rule(1, "diversity", max_per_category=4),
        rule(2, "diversity", max_per_category=2, top_k=20),
        {
            "id": "checkout-curated",
            "kind": "curated",
            "items": [i.id for i in real[:200]],
            "when": {"journeys": ["checkout"]},
        },
    ]
    experiment = {
        "id": "recs-vs-popular",
        "slots": ["for-you"],
        "variants": [{"name": "control", "share": 0.5, "strategy": "model"}, {"name": "popular", "share": 0.5}],
    }
    return parse_document({"version": "bench-112", "dayparts": DAYPARTS, "rules": rules, "experiments": [experiment]})


CONTEXT_SCOPES: list[dict[str, Any]] = [
    *({"devices": ["mobile"]} for _ in range(3)),
    *({"countries": ["DE", "AT"]} for _ in range(3)),
    *({"dayparts": ["evening"]} for _ in range(3)),
    *({"channels": ["search", "campaign"]} for _ in range(3)),
]


def candidate_lists(catalog: Catalog, rng: random.Random) -> list[Candidates]:
    """As the graph gives them: positions and scores (turned into arrays here, before any timing)."""
    top = catalog.items[:400]
    lists = []
    for _ in range(CANDIDATE_LISTS):
        # Distinct, as the model returns them.
        chosen = list({item.id: item for item in rng.sample(top, CANDIDATES)}.values())[: CANDIDATES // 2]
        chosen += [item for item in rng.sample(catalog.items, CANDIDATES) if item not in chosen][: CANDIDATES // 2]
        scores = sorted((rng.random() for _ in chosen), reverse=True)
        lists.append(Candidates.of(catalog, [Scored(item, score) for item, score in zip(chosen, scores, strict=True)]))
    return lists


def viewer(rng: random.Random) -> RequestContext:
    devices, countries, hours, channels = CONTEXT_MIX
    return RequestContext(rng.choice(devices), rng.choice(countries), rng.choice(hours), 0, 0, rng.choice(channels))


def requests(
    catalog: Catalog, journey: str, rng: random.Random, context: RequestContext | None = EVERY_CONTEXT
) -> list[RuleRequest]:
    top = [item.id for item in catalog.items[:400]]
    return [
        RuleRequest(
            slot="for-you",
            journey=journey,
            segment=SEGMENT,
            segment_id=7,
            variants=frozenset({VARIANT}),
            now_ms=NOW_MS,
            purchased={item: NOW_MS - rng.randrange(120) * DAY_MS for item in rng.sample(top, 20)},
            cart=rng.sample(top, 5),
            context=context or viewer(rng),
        )
        for _ in range(PEOPLE * (1 if context else 4))
    ]


def timed_us(
    engine: RuleEngine, reqs: Sequence[RuleRequest], lists: Sequence[Candidates]
) -> tuple[list[float], list[float]]:
    """(CPU, wall) microseconds of plan + apply per request. The CPU clock (this thread's) leaves out the time
    other processes on the machine took the core away; the wall clock does not."""

    def once(n: int) -> tuple[float, float]:
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        engine.plan(reqs[n % len(reqs)]).apply(lists[n % len(lists)], K)
        return (time.thread_time_ns() - cpu) / 1e3, (time.perf_counter_ns() - wall) / 1e3

    for n in range(WARMUP):
        once(n)
    runs = [once(n) for n in range(TIMED)]
    return [cpu for cpu, _ in runs], [wall for _, wall in runs]


def reference_us() -> float:
    """sum(range(1000)), best of many: a yardstick to scale this machine's figures by."""
    return min(timeit.repeat("sum(range(1000))", number=100, repeat=50)) / 100 * 1e6


def compile_ms(make: Callable[[], RuleEngine]) -> tuple[float, RuleEngine]:
    runs = []
    engine = None
    for _ in range(COMPILES):
        start = time.perf_counter()
        engine = make()
        runs.append((time.perf_counter() - start) * 1e3)
    assert engine is not None
    return median(runs), engine


def run() -> dict[str, Any]:
    started = time.perf_counter()
    catalog, real_items = load_catalog()
    doc = document(catalog)
    compiled_ms, engine = compile_ms(lambda: RuleEngine(doc, catalog))
    rng = random.Random(2)
    lists = candidate_lists(catalog, rng)
    browse, checkout = requests(catalog, "browse", rng), requests(catalog, "checkout", rng)
    mixed = requests(catalog, "browse", rng, context=None)
    sample = engine.plan(browse[0])
    figures: dict[str, Any] = {
        "catalog_items": len(catalog),
        "real_items": real_items,
        "synthetic_items": len(catalog) - real_items,
        "rules": len(doc.rules),
        "rules_active_model": len(sample.rule_ids),
        "rules_active_curated": len(engine.plan(checkout[0]).rule_ids),
        "rules_context_scoped": len(CONTEXT_SCOPES),
        "candidates": CANDIDATES,
        "k": K,
        "excluded_static": len(sample.excluded.static),
        "compile_ms": round(compiled_ms, 1),
        "compile_warnings": len(engine.warnings),
    }
    scenarios = {
        "model": (engine, browse),
        "curated": (engine, checkout),
        "context": (engine, mixed),
        "uncached": (RuleEngine(doc, catalog, cache_size=0), browse),
    }
    for name, (subject, reqs) in scenarios.items():
        cpu, wall = timed_us(subject, reqs, lists)
        figures[f"{name}_us_p50"] = round(median(cpu), 1)
        figures[f"{name}_us_p99"] = round(percentile(cpu, 0.99), 1)
        figures[f"{name}_wall_us_p50"] = round(median(wall), 1)
        figures[f"{name}_wall_us_p99"] = round(percentile(wall, 0.99), 1)
    figures["reference_sum_range_us"] = round(reference_us(), 2)
    figures["load_average"] = round(os.getloadavg()[0], 2)
    figures["cpus"] = os.cpu_count()
    figures["rules_us_p50"] = max(figures["model_us_p50"], figures["curated_us_p50"], figures["context_us_p50"])
    figures["rules_us_p99"] = max(figures["model_us_p99"], figures["curated_us_p99"], figures["context_us_p99"])
    ruled = sample.apply(lists[0], K)
    figures["sample_applied"] = len(ruled.applied)
    figures["sample_notes"] = len(ruled.notes)
    figures["timed_per_scenario"] = TIMED
    figures["bench_s"] = round(time.perf_counter() - started, 1)
    return figures


def report(f: dict[str, Any]) -> None:
    print(
        f"rules: a catalog of {f['catalog_items']:,} items: {f['real_items']:,} real (REES46 sample) plus a SYNTHETIC "
        f"tail of {f['synthetic_items']:,}; {f['rules']} rules of every kind; {f['candidates']} candidates, "
        f"k={f['k']}; {f['timed_per_scenario']:,} timed requests per scenario, {PEOPLE} people"
    )
    print(
        f"(CPU time of this thread; wall clock beside it. This machine: {f['cpus']} CPUs, load average "
        f"{f['load_average']} from other work; sum(range(1000)) takes {f['reference_sum_range_us']} us here)\n"
    )
    rows = [
        ("rules_us_p99", f"{f['rules_us_p99']:.1f}", "<= 200", "plan + apply, CPU, worst of the three scenarios"),
        ("rules_us_p50", f"{f['rules_us_p50']:.1f}", "", ""),
    ]
    notes = {
        "model": f"{f['rules_active_model']} active, the model's 200 candidates",
        "curated": f"{f['rules_active_curated']} active, the 200-item curated list replaces them",
        "context": f"{f['rules_context_scoped']} context rules; viewers from 3x3x24x4 contexts",
        "uncached": "selection cache off: a new scope's first request",
    }
    for name, note in notes.items():
        rows += [
            (f"{name}_us_p50", f"{f[name + '_us_p50']:.1f}", "", note),
            (
                f"{name}_us_p99",
                f"{f[name + '_us_p99']:.1f}",
                "",
                f"wall p50 {f[name + '_wall_us_p50']:.1f}, p99 {f[name + '_wall_us_p99']:.1f}",
            ),
        ]
    rows += [
        ("compile_ms", f"{f['compile_ms']:.1f}", "<= 1,000", f"{f['compile_warnings']} compile warnings"),
        ("excluded_static", f"{f['excluded_static']:,}", "", "catalog items the exclude rules mask"),
    ]
    print(table(("figure", "value", "target", "note"), rows))
    met = f["rules_us_p99"] <= TARGETS["rules_us_p99"]
    print(f"\ntargets met: rules_us_p99 {'yes' if met else 'NO'}")


if __name__ == "__main__":
    sys.exit(main_of(run, report))
