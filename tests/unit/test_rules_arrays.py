"""The rules over candidates as arrays give, for any document, catalog, request and candidates, exactly what the
object path they replaced gave (tests/helpers/rules_objects holds it): the same items with the same scores to the
bit, the same notes, the same applied rules and the same exclusions; whether the candidates come as arrays or as
objects, with the selection cached or not."""

from __future__ import annotations

import math
import struct
from dataclasses import replace
from typing import Any
from unittest.mock import patch

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from personalization.catalog import Catalog, CatalogItem
from personalization.ranking import Candidates, Scored
from personalization.rules import RuledList, RuleEngine, RuleRequest, RulesDocument, parse_document
from personalization.rules import plan as plan_module
from tests.helpers.rules import NOW_MS
from tests.helpers.rules_objects import RuleEngine as ObjectEngine
from tests.unit.test_rules import CATALOGS, DAY_MS, EXPERIMENT, IDS, MATCHES, RULE_BODIES, SCOPES

# Factors whose products depend on the order they are multiplied in: the array path must keep the object path's.
AWKWARD = st.sampled_from([0.1, 0.3, 0.7, 1.1, 1.3, 2.9, 3.0, 10.0])
BODIES = st.one_of(
    RULE_BODIES,
    st.fixed_dictionaries({"kind": st.just("boost"), "when": SCOPES, "match": MATCHES, "factor": AWKWARD}),
    st.fixed_dictionaries(
        {"kind": st.just("exclude_seen"), "when": SCOPES, "times": st.integers(1, 3), "days": st.integers(1, 30)}
    ),
)
SHOWN = st.lists(st.integers(0, 40).map(lambda days: NOW_MS - days * DAY_MS), min_size=1, max_size=5, unique=True)
REQUESTS = st.builds(
    RuleRequest,
    slot=st.sampled_from(["for-you", "home"]),
    journey=st.sampled_from([None, "checkout"]),
    segment=st.sampled_from([None, "buyers"]),
    segment_id=st.sampled_from([None, 1]),
    variants=st.frozensets(st.sampled_from(["exp:a", "exp:b"])),
    now_ms=st.just(NOW_MS),
    purchased=st.dictionaries(
        st.sampled_from(IDS), st.integers(0, 90).map(lambda days: NOW_MS - days * DAY_MS), max_size=4
    ),
    cart=st.lists(st.sampled_from(IDS), max_size=3),
    seen=st.dictionaries(st.sampled_from(IDS), SHOWN.map(lambda shown: (0, *sorted(shown))), max_size=4),
    dismissed=st.frozensets(st.sampled_from(IDS), max_size=2),
)
# Ties (a popularity fallback's), negative scores, both zeros, and the graph's float32 scores.
SCORES = st.one_of(
    st.sampled_from([0.0, -0.0, 0.5, 1.0, -1.0, 0.25]),
    st.floats(-5, 5, allow_nan=False),
    st.floats(-5, 5, allow_nan=False, width=32),
)
CANDIDATE_ROWS = st.lists(st.tuples(st.integers(0, len(IDS) - 1), SCORES), max_size=2 * len(IDS))


def document(bodies: list[dict[str, Any]]) -> RulesDocument:
    rules = [{"id": f"r{n}", **body} for n, body in enumerate(bodies)]
    return parse_document({"version": "arrays", "rules": rules, "experiments": [EXPERIMENT]})


DOCUMENTS = st.lists(BODIES, min_size=1, max_size=10).map(document)


def bits(ruled: RuledList) -> tuple[list[tuple[CatalogItem, bytes]], list[str], list[str]]:
    """Everything a fragment reads, each score by its bits (so -0.0 is not 0.0)."""
    return [(s.item, struct.pack("<d", s.score)) for s in ruled.items], ruled.notes, ruled.applied


def check(catalog: Catalog, doc: RulesDocument, req: RuleRequest, rows: list[tuple[int, float]], k: int) -> None:
    candidates = [Scored(catalog.items[n % len(catalog)], score) for n, score in rows]
    before = ObjectEngine(doc, catalog).plan(req)
    expected = bits(before.apply(candidates, k))
    engine = RuleEngine(doc, catalog)
    # Another person first, on the same selection: what it caches (pins, notes, the curated ranking) must not leak.
    other = replace(req, purchased={}, cart=list(req.cart)[:1], seen={}, dismissed=frozenset(list(req.dismissed)[:1]))
    engine.plan(other).apply(Candidates.of(catalog, candidates[::-1]), k)
    plan = engine.plan(req)
    assert set(plan.excluded) == set(before.excluded)
    positions = plan.excluded.catalog_positions(catalog)
    assert positions is not None
    assert positions.tolist() == sorted(catalog.position[i] for i in before.excluded if i in catalog.position)
    assert bits(plan.apply(Candidates.of(catalog, candidates), k)) == expected
    # Again on the cached selection (its arrays built by the first request), and as objects, uncached.
    assert bits(engine.plan(req).apply(Candidates.of(catalog, candidates), k)) == expected
    assert bits(RuleEngine(doc, catalog, cache_size=0).plan(req).apply(candidates, k)) == expected


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CATALOGS, DOCUMENTS, REQUESTS, CANDIDATE_ROWS, st.integers(1, 12))
def test_the_array_path_gives_what_the_object_path_gave(
    catalog: Catalog, doc: RulesDocument, req: RuleRequest, rows: list[tuple[int, float]], k: int
) -> None:
    check(catalog, doc, req, rows, k)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CATALOGS, DOCUMENTS, REQUESTS, CANDIDATE_ROWS, st.integers(1, 12), st.integers(0, 4))
def test_a_ranking_made_into_lists_a_prefix_first_gives_the_same(
    catalog: Catalog, doc: RulesDocument, req: RuleRequest, rows: list[tuple[int, float]], k: int, prefix: int
) -> None:
    # The test catalogs hold a dozen items, fewer than serve's prefix: a prefix of a few puts every path through
    # Ranking.whole() (the diversity window, the merge, runs of equal scores at the prefix's end) to the test.
    with patch.object(plan_module, "PREFIX", prefix):
        check(catalog, doc, req, rows, k)


def test_a_prefix_that_cuts_a_run_of_equal_scores_or_runs_short_gives_the_same() -> None:
    # Runs of equal scores across every prefix's end, and diversity windows that pass over items: the prefix
    # must be extended past a run, and made whole when the window or what follows it reaches past the prefix.
    catalog = Catalog([CatalogItem(f"i{n:02}", "ab"[n % 2], 1.0, float(n)) for n in range(12)])
    order = [7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 4, 6]
    rows = [(n, 1.0 if rank < 7 else 0.5) for rank, n in enumerate(order)]
    req = RuleRequest("for-you", None, None, None, frozenset(), NOW_MS, {}, ())
    docs = [
        document([{"kind": "diversity", "max_per_category": 1, "top_k": 1}]),
        document([{"kind": "diversity", "max_per_category": 2}]),
        document([{"kind": "pin", "items": ["i04"], "position": 2}]),
    ]
    for prefix in range(8):
        with patch.object(plan_module, "PREFIX", prefix):
            for doc in docs:
                for k in (1, 3, 10):
                    check(catalog, doc, req, rows, k)


def test_boosts_multiply_in_document_order_to_the_bit() -> None:
    # 0.1 * 0.3 * 0.7 is not 0.7 * 0.3 * 0.1 in binary floating point: the order is the object path's.
    assert (0.1 * 0.3) * 0.7 != (0.7 * 0.3) * 0.1
    catalog = Catalog([CatalogItem(f"i{n}", "a", 1.0, float(n), "Acme") for n in range(4)])
    boosts = [{"kind": "boost", "match": {"categories": ["a"]}, "factor": f} for f in (0.1, 0.3, 0.7)]
    doc = document(boosts)
    check(catalog, doc, RuleRequest("for-you", None, None, None, frozenset(), NOW_MS, {}, ()), [(0, 1.0), (1, 0.3)], 2)
    scored = RuleEngine(doc, catalog).plan(RuleRequest("x", None, None, None, frozenset(), NOW_MS, {}, ()))
    shown = scored.apply(Candidates.of(catalog, [Scored(catalog.items[0], 1.0)]), 1).items
    assert shown[0].score == (1.0 * 0.1 * 0.3) * 0.7


@given(st.lists(st.tuples(st.integers(0, 5), SCORES), max_size=20))
@example([(0, 1.0), (0, 2.0), (1, -0.0), (1, 0.0)])
def test_candidates_of_objects_keep_each_items_best_score_in_first_place(rows: list[tuple[int, float]]) -> None:
    catalog = Catalog([CatalogItem(f"i{n}", None, None, float(n)) for n in range(6)])
    objects = [Scored(catalog.items[n], score) for n, score in rows]
    candidates = Candidates.of(catalog, [*objects, Scored(CatalogItem("ghost", None, None, 1.0), 9.0)])
    best: dict[str, float] = {}
    for scored in objects:
        if scored.item.id not in best or scored.score > best[scored.item.id]:
            best[scored.item.id] = scored.score
    assert candidates.ids() == list(best)
    assert [struct.pack("<d", s.score) for s in candidates.scored()] == [struct.pack("<d", v) for v in best.values()]
    assert len(set(candidates.positions.tolist())) == len(candidates)
    assert candidates.scored(2) == candidates.scored()[:2]
    assert all(math.isfinite(score) for score in candidates.scores)
    assert candidates.positions.dtype == np.intp


@given(st.lists(st.integers(0, 60_000), max_size=300))
def test_distinct_positions_are_numpys_unique(values: list[int]) -> None:
    from personalization.rules.arrays import distinct

    positions = np.asarray(values, dtype=np.intp)
    found = distinct(positions)
    assert found.dtype == np.intp
    assert found.tolist() == np.unique(positions).tolist()


def test_distinct_positions_do_not_import_numpy_ma() -> None:
    """np.unique (and np.union1d, which calls it) would: a container's first personal fragment would pay
    numpy.ma's import. Both unions of positions serve asks for: the selection's, and it with the person's."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from personalization.catalog import Catalog, CatalogItem\n"
        "from personalization.rules import RuleEngine, RuleRequest, parse_document\n"
        "catalog = Catalog([CatalogItem(f'i{n}', 'a', 1.0, float(n)) for n in range(5)])\n"
        "rules = [{'id': 'x', 'kind': 'exclude', 'match': {'items': ['i1', 'i3']}},\n"
        "         {'id': 'c', 'kind': 'exclude_cart'}]\n"
        "engine = RuleEngine(parse_document({'version': 'v', 'rules': rules}), catalog)\n"
        "request = RuleRequest('s', None, None, None, frozenset(), 0, {}, ['i0', 'i3'])\n"
        "positions = engine.plan(request).excluded.catalog_positions(catalog)\n"
        "assert positions.tolist() == sorted(catalog.position[i] for i in ('i0', 'i1', 'i3'))\n"
        "print('numpy.ma' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
