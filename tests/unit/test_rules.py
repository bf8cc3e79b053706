import json
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalization.catalog import Catalog, CatalogItem
from personalization.experiments import to_ms
from personalization.ranking import Scored
from personalization.rules import (
    Match,
    RuleEngine,
    RuleRequest,
    RulesDocument,
    RulesError,
    Scope,
    parse_document,
)
from tests.helpers.rules import CATALOG, NOW, NOW_MS, by_popularity, ids, request

ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 24 * 3600 * 1000
EXPERIMENT = {
    "id": "exp",
    "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5, "strategy": "popular"}],
}


def document(*rules: dict[str, Any]) -> RulesDocument:
    return parse_document({"version": "test", "rules": list(rules), "experiments": [EXPERIMENT]})


def rule(rule_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": rule_id, "kind": kind, **fields}


def run(doc: RulesDocument, k: int = 10, candidates: Sequence[Scored] | None = None, **changes: Any) -> list[str]:
    plan = RuleEngine(doc, CATALOG).plan(request(**changes))
    return ids(plan.apply(by_popularity() if candidates is None else candidates, k).items)


# -- each kind ---------------------------------------------------------------------------------------------


def test_no_rules_keep_the_ranking() -> None:
    assert run(document(), k=4) == ["p1", "p2", "p3", "p4"]


def test_exclude_purchased_within_the_window_only() -> None:
    doc = document(rule("bought", "exclude_purchased", days=30))
    purchased = {"p1": NOW_MS - 29 * DAY_MS, "p2": NOW_MS - 31 * DAY_MS}
    plan = RuleEngine(doc, CATALOG).plan(request(purchased=purchased))
    assert "p1" in plan.excluded
    assert "p2" not in plan.excluded
    assert ids(plan.apply(by_popularity(), 3).items) == ["p2", "p3", "p4"]


def test_exclude_cart_and_the_plan_masks_before_scoring() -> None:
    doc = document(rule("cart", "exclude_cart"))
    plan = RuleEngine(doc, CATALOG).plan(request(cart=["p2", "h1"]))
    assert set(plan.excluded) == {"p2", "h1"}
    ruled = plan.apply(by_popularity(), 3)
    assert ids(ruled.items) == ["p1", "p3", "p4"]
    assert ruled.applied == ["cart"]


def test_exclude_by_item_list_category_brand_and_price() -> None:
    doc = document(
        rule("out-of-stock", "exclude", match={"items": ["p1", "unknown"]}),
        rule("no-sofas", "exclude", match={"categories": ["furniture"]}),
        rule("cheap-xiaomi", "exclude", match={"brands": ["XIAOMI"], "price_max": 100}),
    )
    engine = RuleEngine(doc, CATALOG)
    assert engine.warnings == ["rule 'out-of-stock' match.items: 1 not in the catalog (e.g. unknown)"]
    plan = engine.plan(request())
    # h1 is a xiaomi under 100; p3 and p4 are xiaomi but dearer: every criterion must hold
    assert set(plan.excluded) == {"p1", "s1", "h1"}
    assert ids(plan.apply(by_popularity(), 10).items) == ["p2", "p3", "p4", "h2", "x1", "c1", "n1"]


def test_a_category_matches_its_dotted_descendants_only() -> None:
    doc = document(rule("no-electronics", "exclude", match={"categories": ["electronics"]}))
    assert run(doc) == ["x1", "s1", "c1", "n1"]
    doc = document(rule("raw-id", "exclude", match={"categories": ["cat:2053013552326770905"]}))
    assert "c1" not in run(doc)


def test_boost_lifts_and_factor_below_one_buries() -> None:
    doc = document(
        rule("sofas-up", "boost", match={"categories": ["furniture.living_room"]}, factor=10),
        rule("samsung-down", "boost", match={"brands": ["samsung"]}, factor=0.1),
    )
    ruled = RuleEngine(doc, CATALOG).plan(request()).apply(by_popularity(), 10)
    # s1: 0.3 * 10; p1: 1.0 * 0.1 ties with n1 (0.1), and equal scores go by id
    assert ids(ruled.items) == ["s1", "p2", "p3", "p4", "h1", "h2", "x1", "c1", "n1", "p1"]
    assert ruled.items[0].score == pytest.approx(3.0)
    assert ruled.applied == ["sofas-up", "samsung-down"]


def test_boosts_multiply_and_a_negative_score_is_divided() -> None:
    doc = document(
        rule("phones", "boost", match={"categories": ["electronics.smartphone"]}, factor=2),
        rule("apple", "boost", match={"brands": ["Apple"]}, factor=3),
    )
    candidates = [
        Scored(CATALOG.by_id["p2"], -0.6),
        Scored(CATALOG.by_id["h1"], -0.2),
        Scored(CATALOG.by_id["s1"], 0.5),
    ]
    ruled = RuleEngine(doc, CATALOG).plan(request()).apply(candidates, 3)
    # p2: -0.6 / (2 * 3) = -0.1 now ranks above h1 (-0.2), not below
    assert [(s.item.id, round(s.score, 6)) for s in ruled.items] == [("s1", 0.5), ("p2", -0.1), ("h1", -0.2)]


def test_pin_places_items_at_consecutive_positions() -> None:
    doc = document(rule("campaign", "pin", items=["s1", "c1"], position=2))
    assert run(doc, k=5) == ["p1", "s1", "c1", "p2", "p3"]


def test_a_pin_beyond_the_list_goes_to_its_end_and_past_k_is_not_shown() -> None:
    doc = document(rule("far", "pin", items=["s1"], position=50))
    short = [Scored(CATALOG.by_id["p1"], 1.0), Scored(CATALOG.by_id["p2"], 0.5)]
    assert run(doc, k=5, candidates=short) == ["p1", "p2", "s1"]
    plan = RuleEngine(doc, CATALOG).plan(request())
    ruled = plan.apply(by_popularity(), 3)
    assert ids(ruled.items) == ["p1", "p2", "p3"]
    assert ruled.notes == ["pin 'far' item s1 not shown: position 50 is past the 3 shown"]


def test_two_pins_on_one_position_follow_document_order() -> None:
    doc = document(
        rule("first", "pin", items=["s1"], position=1),
        rule("second", "pin", items=["c1", "s1"], position=1),
    )
    ruled = RuleEngine(doc, CATALOG).plan(request()).apply(by_popularity(), 4)
    assert ids(ruled.items) == ["s1", "c1", "p1", "p2"]
    assert ruled.notes == ["pin 'second' item s1 dropped: already pinned by 'first'"]


def test_a_pinned_item_keeps_its_own_score_when_it_is_a_candidate() -> None:
    doc = document(rule("pin", "pin", items=["n1"], position=1))
    ruled = RuleEngine(doc, CATALOG).plan(request()).apply(by_popularity(), 2)
    assert [(s.item.id, s.score) for s in ruled.items] == [("n1", 0.1), ("p1", 1.0)]


def test_curated_replaces_candidates_and_the_first_one_wins() -> None:
    doc = document(
        rule("checkout", "curated", items=["h1", "ghost", "c1", "x1"], when={"journeys": ["checkout"]}),
        rule("later", "curated", items=["s1"]),
    )
    engine = RuleEngine(doc, CATALOG)
    assert engine.warnings == ["rule 'checkout' items: 1 not in the catalog, left out (e.g. ghost)"]
    plan = engine.plan(request(journey="checkout"))
    assert plan.pool_size(8) == 0
    assert [item.id for item in plan.curated_items or []] == ["h1", "c1", "x1"]
    ruled = plan.apply([], 8)
    assert ids(ruled.items) == ["h1", "c1", "x1"]
    assert [round(s.score, 6) for s in ruled.items] == [1.0, 0.666667, 0.333333]
    assert ruled.notes == ["curated 'later' ignored: curated 'checkout' comes first"]
    assert ids(engine.plan(request(journey="browse")).apply([], 8).items) == ["s1"]


def test_diversity_caps_each_category_in_the_whole_list() -> None:
    doc = document(rule("two", "diversity", max_per_category=2))
    ruled = RuleEngine(doc, CATALOG).plan(request()).apply(by_popularity(), 10)
    assert ids(ruled.items) == ["p1", "p2", "h1", "h2", "x1", "s1", "c1", "n1"]
    assert ruled.notes == ["diversity 'two' left out 2 item(s) over 2 per category"]


def test_diversity_with_top_k_moves_the_overflow_below_the_window() -> None:
    doc = document(rule("top3", "diversity", max_per_category=1, top_k=3))
    assert run(doc, k=6) == ["p1", "h1", "x1", "p2", "p3", "p4"]


def test_the_strictest_diversity_rule_applies() -> None:
    doc = document(
        rule("loose", "diversity", max_per_category=3),
        rule("strict", "diversity", max_per_category=1),
    )
    ruled = RuleEngine(doc, CATALOG).plan(request()).apply(by_popularity(), 3)
    assert ids(ruled.items) == ["p1", "h1", "x1"]
    assert "diversity 'loose' ignored: 'strict' is stricter" in ruled.notes


def test_pins_count_toward_the_cap_and_win_over_it() -> None:
    doc = document(
        rule("cap", "diversity", max_per_category=2),
        rule("phones", "pin", items=["p3", "p4", "p2"], position=1),
    )
    # Three pinned phones exceed the cap (pins win); no recommended phone gets in
    assert run(doc, k=6) == ["p3", "p4", "p2", "h1", "h2", "x1"]


# -- priority and conflicts --------------------------------------------------------------------------------


def test_filters_beat_pins_and_the_note_names_both_rules() -> None:
    doc = document(
        rule("exclude-cart", "exclude_cart"),
        rule("summer", "pin", items=["s1", "h2"], position=1),
    )
    ruled = RuleEngine(doc, CATALOG).plan(request(cart=["s1"])).apply(by_popularity(), 3)
    assert ids(ruled.items) == ["h2", "p1", "p2"]
    assert ruled.notes == ["pin 'summer' item s1 dropped: excluded by 'exclude-cart'"]
    assert ruled.applied == ["exclude-cart", "summer"]


def test_filters_beat_curated_and_the_note_names_the_first_filter() -> None:
    doc = document(
        rule("oos", "exclude", match={"items": ["c1"]}),
        rule("bought", "exclude_purchased", days=7),
        rule("checkout", "curated", items=["h1", "c1", "x1"]),
    )
    ruled = RuleEngine(doc, CATALOG).plan(request(purchased={"c1": NOW_MS, "x1": NOW_MS})).apply([], 5)
    assert ids(ruled.items) == ["h1"]
    assert ruled.notes == [
        "curated 'checkout' item c1 dropped: excluded by 'oos'",
        "curated 'checkout' item x1 dropped: excluded by 'bought'",
    ]
    assert ruled.applied == ["oos", "bought", "checkout"]


def test_fallback_candidates_are_filtered_again_and_deduplicated() -> None:
    doc = document(rule("cart", "exclude_cart"))
    p1, p2 = CATALOG.by_id["p1"], CATALOG.by_id["p2"]
    candidates = [Scored(p1, 0.2), Scored(p2, 0.5), Scored(p1, 0.9), Scored(CATALOG.by_id["h1"], 1.0)]
    ruled = RuleEngine(doc, CATALOG).plan(request(cart=["h1"])).apply(candidates, 5)
    assert [(s.item.id, s.score) for s in ruled.items] == [("p1", 0.9), ("p2", 0.5)]


def test_equal_scores_order_by_id() -> None:
    items = [CATALOG.by_id[i] for i in ("p3", "h1", "p1")]
    ruled = RuleEngine(document(), CATALOG).plan(request()).apply([Scored(item, 0.5) for item in items], 3)
    assert ids(ruled.items) == ["h1", "p1", "p3"]


def test_pool_size_leaves_room_for_rules_and_is_capped() -> None:
    assert RuleEngine(document(), CATALOG).plan(request()).pool_size(8) == 8
    doc = document(
        rule("pin", "pin", items=["s1", "c1"], position=1),
        rule("cap", "diversity", max_per_category=2),
    )
    plan = RuleEngine(doc, CATALOG).plan(request())
    assert plan.pool_size(8) == 8 + 2 + 16
    assert plan.pool_size(100) == 200
    assert plan.apply(by_popularity(), 0).items == []


# -- scope -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "matching", "other"),
    [
        ({"segments": ["buyers"]}, {"segment": "buyers"}, {"segment": "browsers"}),
        ({"segments": ["3"]}, {"segment": "x", "segment_id": 3}, {"segment_id": 4}),
        ({"slots": ["home"]}, {"slot": "home"}, {"slot": "for-you"}),
        ({"journeys": ["checkout"]}, {"journey": "checkout"}, {"journey": None}),
        ({"variants": ["exp:b"]}, {"variants": frozenset({"exp:b", "other:x"})}, {"variants": frozenset({"exp:a"})}),
        ({"start": "2026-11-24T12:00:00Z"}, {"now_ms": NOW_MS}, {"now_ms": NOW_MS - 1}),
        ({"end": "2026-11-24T12:00:00Z"}, {"now_ms": NOW_MS - 1}, {"now_ms": NOW_MS}),
    ],
)
def test_scopes(when: dict[str, Any], matching: dict[str, Any], other: dict[str, Any]) -> None:
    doc = document(rule("scoped", "exclude", match={"items": ["p1"]}, when=when))
    engine = RuleEngine(doc, CATALOG)
    assert engine.plan(request(**matching)).rule_ids == ["scoped"]
    assert "p1" in engine.plan(request(**matching)).excluded
    assert engine.plan(request(**other)).rule_ids == []
    # the cached selection answers the same the second time
    assert engine.plan(request(**other)).rule_ids == []
    assert engine.plan(request(**matching)).rule_ids == ["scoped"]


def test_disabled_rules_never_apply() -> None:
    doc = document(rule("off", "exclude", match={"items": ["p1"]}, enabled=False))
    assert RuleEngine(doc, CATALOG).plan(request()).rule_ids == []


def test_a_variant_switches_the_rule_set() -> None:
    doc = document(
        rule("a-only", "boost", match={"items": ["n1"]}, factor=100, when={"variants": ["exp:a"]}),
    )
    assert run(doc, k=1, variants=frozenset({"exp:a"})) == ["n1"]
    assert run(doc, k=1, variants=frozenset({"exp:b"})) == ["p1"]


# -- the document ------------------------------------------------------------------------------------------


def test_example_document_validates_and_compiles_against_the_sample_catalog() -> None:
    doc = parse_document((ROOT / "rules" / "example.json").read_bytes())
    kinds = {r.kind for r in doc.rules}
    assert kinds == {"exclude_purchased", "exclude_cart", "exclude", "pin", "boost", "curated", "diversity"}
    assert [e.id for e in doc.experiments] == ["recs-vs-popular"]
    assert any(r.when.variants for r in doc.rules)
    sample = _sample_catalog()
    engine = RuleEngine(doc, sample)
    assert engine.warnings == []
    plan = engine.plan(
        RuleRequest(
            "for-you", None, "recent high-value buyers", 2, frozenset({"recs-vs-popular:control"}), NOW_MS, {}, ()
        )
    )
    ruled = plan.apply(by_popularity(sample), 8)
    assert ids(ruled.items)[0] == "1005115"
    assert "1004767" not in ids(ruled.items)
    assert max(Counter(s.item.category for s in ruled.items).values()) <= 3


def _sample_catalog() -> Catalog:
    from model_export.data.canonical import normalize
    from model_export.data.catalog import build_catalog
    from tests.helpers.data import REES46_SAMPLE, rees46_sample

    return build_catalog(normalize(rees46_sample(), str(REES46_SAMPLE)))


def test_errors_name_the_rule_and_the_field() -> None:
    data = {
        "version": "v1",
        "rules": [
            rule("ok", "exclude_cart"),
            rule("pin-x", "pin", items=[], position=0),
            {"kind": "boost", "id": "bad id!", "match": {"brands": ["x"]}, "factor": 1},
            rule("boost-sofas", "boost", match={"categories": ["furniture"]}, factor=0),
            rule("no-criteria", "exclude", match={}),
            {"kind": "teleport", "id": "t"},
            rule("typo", "diversity", max_per_category=2, top_kk=3),
            rule("prices", "exclude", match={"price_min": 10, "price_max": 5}),
        ],
    }
    with pytest.raises(RulesError) as raised:
        parse_document(data)
    problems = raised.value.problems
    assert "rule 'boost-sofas' (rules[3]) factor: Input should be greater than 0" in problems
    assert "rule 'pin-x' (rules[1]) items: List should have at least 1 item after validation, not 0" in problems
    assert "rule 'pin-x' (rules[1]) position: Input should be greater than or equal to 1" in problems
    assert any(p.startswith("rule 'bad id!' (rules[2]) id: String should match pattern") for p in problems)
    assert (
        "rule 'no-criteria' (rules[4]) match: give at least one of items, categories, brands, price_min, price_max"
        in problems
    )
    assert any(p.startswith("rule 't' (rules[5]): Input tag 'teleport' found using 'kind'") for p in problems)
    assert "rule 'typo' (rules[6]) top_kk: Extra inputs are not permitted" in problems
    assert "rule 'prices' (rules[7]) match: price_min must not exceed price_max" in problems
    assert len(problems) == 8
    assert str(raised.value).startswith("invalid rules document (8 problems): ")


def test_cross_references_are_checked() -> None:
    data = {
        "version": "v1",
        "experiments": [EXPERIMENT, EXPERIMENT],
        "rules": [
            rule("same", "exclude_cart"),
            rule("same", "exclude_cart", when={"variants": ["exp:c"]}),
        ],
    }
    with pytest.raises(RulesError) as raised:
        parse_document(json.dumps(data))
    assert raised.value.problems == [
        "rule 'same' (rules[1]) id: duplicate of rules[0]",
        "experiment 'exp' (experiments[1]) id: duplicate of experiments[0]",
        "rule 'same' (rules[1]) when.variants[0]: 'exp:c' names no experiment variant (known: exp:a, exp:b)",
    ]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"{not json", "document: not valid JSON"),
        ("[]", "document: Input should be a valid dictionary"),
        ({"rules": []}, "version: Field required"),
        ({"version": "", "rules": []}, "version: String should have at least 1 character"),
        ({"version": "v", "rules": [], "extra": 1}, "extra: Extra inputs are not permitted"),
        (
            {"version": "v", "rules": [], "experiments": [{"id": "e", "variants": []}]},
            "experiment 'e' (experiments[0]) variants: an experiment needs at least 2 variants",
        ),
        (
            {"version": "v", "rules": [{"kind": "boost", "match": {"items": ["a"]}, "factor": "inf"}]},
            "rules[0] id: Field required",
        ),
        (
            {"version": "v", "rules": [rule("w", "exclude_cart", when={"start": "2026-01-01T00:00:00"})]},
            "rule 'w' (rules[0]) when.start: Input should have timezone info",
        ),
    ],
)
def test_document_level_errors(data: Any, problem: str) -> None:
    with pytest.raises(RulesError) as raised:
        parse_document(data)
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_a_boost_factor_must_be_finite() -> None:
    with pytest.raises(RulesError, match=r"rule 'b' \(rules\[0\]\) factor: Input should be a finite number"):
        parse_document({"version": "v", "rules": [rule("b", "boost", match={"items": ["a"]}, factor="inf")]})


# -- properties --------------------------------------------------------------------------------------------

IDS = [f"i{n}" for n in range(14)]
CATEGORIES = ["a", "a.x", "a.x.y", "a.z", "ab", "b", None]
NAMED_CATEGORIES = ["a", "a.x", "ab", "b", "c"]
BRANDS = ["Acme", "acme", "Zed", None]
PRICES = [None, 1.0, 5.0, 10.0, 50.0]
WINDOWS: list[dict[str, str]] = [
    {},
    {"start": (NOW - timedelta(days=1)).isoformat(), "end": (NOW + timedelta(days=1)).isoformat()},
    {"start": (NOW + timedelta(days=1)).isoformat()},
    {"end": NOW.isoformat()},
]


# Strategies are built once, here: building them inside composite functions costs more than the tests.
ITEM_LISTS = st.lists(st.sampled_from([*IDS, "ghost"]), min_size=1, max_size=4, unique=True)
ENABLED = st.integers(0, 5).map(bool)
PRICE_BOUNDS = st.sampled_from([0.0, 5.0, 10.0, 100.0])


def _valid_match(match: dict[str, Any]) -> dict[str, Any]:
    if not match:
        return {"price_max": 10.0}
    if match.keys() >= {"price_min", "price_max"} and match["price_min"] > match["price_max"]:
        return {**match, "price_min": match["price_max"], "price_max": match["price_min"]}
    return match


MATCHES = st.fixed_dictionaries(
    {},
    optional={
        "items": st.lists(st.sampled_from([*IDS, "ghost"]), min_size=1, max_size=4),
        "categories": st.lists(st.sampled_from(NAMED_CATEGORIES), min_size=1, max_size=2),
        "brands": st.lists(st.sampled_from(["ACME", "zed", "other"]), min_size=1, max_size=2),
        "price_min": PRICE_BOUNDS,
        "price_max": PRICE_BOUNDS,
    },
).map(_valid_match)
SCOPE_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "segments": st.lists(st.sampled_from(["buyers", "1"]), min_size=1, max_size=2, unique=True),
        "slots": st.lists(st.sampled_from(["for-you", "home"]), min_size=1, max_size=2, unique=True),
        "journeys": st.just(["checkout"]),
        "variants": st.lists(st.sampled_from(["exp:a", "exp:b"]), min_size=1, max_size=2, unique=True),
    },
)
# Mostly unrestricted, so that most drawn rules are active and meet each other.
SCOPES = st.tuples(st.sampled_from(WINDOWS[:1] * 4 + WINDOWS), st.one_of(st.just({}), st.just({}), SCOPE_FIELDS)).map(
    lambda parts: {**parts[0], **parts[1]}
)


def _kind(kind: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"kind": st.just(kind), "when": SCOPES, "enabled": ENABLED, **fields})


RULE_BODIES = st.one_of(
    _kind("exclude_purchased", days=st.integers(1, 60)),
    _kind("exclude_cart"),
    _kind("exclude", match=MATCHES),
    _kind("pin", items=ITEM_LISTS, position=st.integers(1, 12)),
    _kind("boost", match=MATCHES, factor=st.sampled_from([0.25, 0.5, 2.0, 3.0, 10.0])),
    # Curated lists replace everything: scoped to a journey, so that the other rules get exercised too.
    _kind("curated", items=ITEM_LISTS).map(lambda body: {**body, "when": {**body["when"], "journeys": ["checkout"]}}),
    _kind("diversity", max_per_category=st.integers(1, 3), top_k=st.one_of(st.none(), st.integers(1, 8))),
)


def _document(bodies: list[dict[str, Any]]) -> RulesDocument:
    rules = [{"id": f"r{n}", **body} for n, body in enumerate(bodies)]
    return parse_document({"version": "prop", "rules": rules, "experiments": [EXPERIMENT]})


def _catalog(rows: list[tuple[str | None, float | None, float, str | None]]) -> Catalog:
    return Catalog([CatalogItem(IDS[n], *row) for n, row in enumerate(rows)])


CATALOGS = st.lists(
    st.tuples(st.sampled_from(CATEGORIES), st.sampled_from(PRICES), st.floats(0, 100), st.sampled_from(BRANDS)),
    min_size=6,
    max_size=len(IDS),
).map(_catalog)
DOCUMENTS = st.lists(RULE_BODIES, min_size=2, max_size=8).map(_document)
REQUESTS = st.builds(
    RuleRequest,
    slot=st.sampled_from(["for-you", "home", "other"]),
    journey=st.sampled_from([None, "checkout", "browse"]),
    segment=st.sampled_from([None, "buyers", "browsers"]),
    segment_id=st.sampled_from([None, 1, 2]),
    variants=st.frozensets(st.sampled_from(["exp:a", "exp:b"])),
    now_ms=st.just(NOW_MS),
    purchased=st.dictionaries(
        st.sampled_from(IDS), st.integers(0, 90).map(lambda days: NOW_MS - days * DAY_MS), max_size=4
    ),
    cart=st.lists(st.sampled_from(IDS), max_size=3),
)
# (catalog position, score); positions wrap around the drawn catalog.
CANDIDATE_ROWS = st.lists(
    st.tuples(
        st.integers(0, len(IDS) - 1),
        st.one_of(st.sampled_from([0.0, 0.5, 1.0, -1.0]), st.floats(-5, 5, allow_nan=False)),
    ),
    min_size=3,
    max_size=2 * len(IDS),
)
World = tuple[Catalog, RulesDocument, RuleRequest, list[Scored], int]


def _world(parts: tuple[Catalog, RulesDocument, RuleRequest, list[tuple[int, float]], int]) -> World:
    catalog, doc, req, rows, k = parts
    candidates = [Scored(catalog.items[n % len(catalog)], score) for n, score in rows]
    return catalog, doc, req, candidates, k


WORLDS = st.tuples(CATALOGS, DOCUMENTS, REQUESTS, CANDIDATE_ROWS, st.integers(1, 12)).map(_world)


# The reference: the documented behaviour computed the plain way (every rule against every item, no index, no cache).


def in_scope(when: Scope, req: RuleRequest) -> bool:
    segment_ok = when.segments is None or req.segment in when.segments or str(req.segment_id) in when.segments
    return (
        segment_ok
        and (when.slots is None or req.slot in when.slots)
        and (when.journeys is None or req.journey in when.journeys)
        and (when.variants is None or bool(set(when.variants) & req.variants))
        and (when.start is None or to_ms(when.start) <= req.now_ms)
        and (when.end is None or req.now_ms < to_ms(when.end))
    )


def matches_item(match: Match, item: CatalogItem) -> bool:
    checks = []
    if match.items is not None:
        checks.append(item.id in match.items)
    if match.categories is not None:
        category = item.category or ""
        checks.append(any(category == c or category.startswith(c + ".") for c in match.categories))
    if match.brands is not None:
        checks.append(item.brand is not None and item.brand.lower() in {b.lower() for b in match.brands})
    if match.price_min is not None or match.price_max is not None:
        low = match.price_min if match.price_min is not None else float("-inf")
        high = match.price_max if match.price_max is not None else float("inf")
        checks.append(item.price is not None and low <= item.price <= high)
    return all(checks)


class Reference:
    """The documented behaviour computed the plain way: every rule against every item, no index, no cache."""

    def __init__(
        self, doc: RulesDocument, catalog: Catalog, req: RuleRequest, candidates: list[Scored], k: int
    ) -> None:
        self.catalog, self.k = catalog, k
        self.active = [r for r in doc.rules if r.enabled and in_scope(r.when, req)]
        self.excluded = self._excluded(req)
        self.pinned = self._pinned()
        diversity = sorted((r for r in self.active if r.kind == "diversity"), key=lambda r: r.max_per_category)
        self.cap: tuple[int, int | None] | None = (
            (diversity[0].max_per_category, diversity[0].top_k) if diversity else None
        )
        self.ranked = self._ranked(candidates)
        self.admitted = self._admitted()

    def _excluded(self, req: RuleRequest) -> set[str]:
        excluded: set[str] = set()
        for r in self.active:
            if r.kind == "exclude_purchased":
                excluded |= {i for i, ts in req.purchased.items() if ts >= req.now_ms - r.days * DAY_MS}
            elif r.kind == "exclude_cart":
                excluded |= set(req.cart)
            elif r.kind == "exclude":
                excluded |= {item.id for item in self.catalog.items if matches_item(r.match, item)}
        return excluded

    def _pinned(self) -> dict[str, int]:
        """Item -> position: document order, consecutive, a taken position goes to the next free one."""
        claimed: dict[str, int] = {}
        for r in self.active:
            position = getattr(r, "position", 0)
            for item_id in r.items if r.kind == "pin" else ():
                if item_id in self.catalog.by_id and item_id not in self.excluded and item_id not in claimed:
                    while position in claimed.values():
                        position += 1
                    claimed[item_id] = position
                    position += 1
        return claimed

    def _ranked(self, candidates: list[Scored]) -> list[str]:
        """The recommended (non-pinned) items after filters and boosts, best first."""
        curated = next((r for r in self.active if r.kind == "curated"), None)
        base: dict[str, float] = {}
        if curated is not None:
            known = [i for i in curated.items if i in self.catalog.by_id]
            base = {i: (len(known) - n) / len(known) for n, i in enumerate(known)}
        else:
            for scored in candidates:
                base[scored.item.id] = max(scored.score, base.get(scored.item.id, float("-inf")))
        scores = {}
        for item_id, score in base.items():
            if item_id in self.excluded or item_id in self.pinned:
                continue
            factor = 1.0
            for r in self.active:
                if r.kind == "boost" and matches_item(r.match, self.catalog.by_id[item_id]):
                    factor *= r.factor
            scores[item_id] = score * factor if score >= 0 else score / factor
        return sorted(scores, key=lambda i: (-scores[i], i))

    @property
    def need(self) -> int:
        return self.k - sum(1 for position in self.pinned.values() if position <= self.k)

    def _admitted(self) -> list[str]:
        """The recommended items the diversity cap admits, in order. With a cap over the first `window` of them:
        greedily, an item whose category holds `cap` items already (counting every eligible pinned item) is
        passed over; when the window fills, what was passed over and everything after follow in rank order;
        when it does not, what was passed over is left out."""
        if self.cap is None:
            return self.ranked
        cap, top_k = self.cap
        window = min(top_k or self.need, self.need)
        counts = Counter(self.catalog.by_id[i].category for i in self.pinned)
        chosen: list[str] = []
        for item_id in self.ranked:
            category = self.catalog.by_id[item_id].category
            if len(chosen) < window and (category is None or counts[category] < cap):
                counts[category] += 1
                chosen.append(item_id)
        return chosen + [i for i in self.ranked if i not in chosen] if len(chosen) == window else chosen

    def output(self) -> list[str]:
        """Pins at their positions, the admitted items around them in order, pins past the end closing the list."""
        pins = sorted(self.pinned, key=lambda i: self.pinned[i])
        fill = self.admitted[: self.need]
        output: list[str] = []
        while len(output) < self.k and (pins or fill):
            if pins and (self.pinned[pins[0]] == len(output) + 1 or not fill):
                output.append(pins.pop(0))
            else:
                output.append(fill.pop(0))
        return output


FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(WORLDS)
def test_the_engine_does_what_the_reference_says_and_the_properties_hold(
    world: World,
) -> None:
    catalog, doc, req, candidates, k = world
    engine = RuleEngine(doc, catalog)
    plan = engine.plan(req)
    ruled = plan.apply(candidates, k)
    shown = ids(ruled.items)
    ref = Reference(doc, catalog, req, candidates, k)
    assert shown == ref.output()

    # The properties, each checked on its own.
    # The plan's mask is exactly the excluded items, and none is shown
    assert set(plan.excluded) == ref.excluded
    assert len(plan.excluded) == len(ref.excluded)
    assert not set(shown) & ref.excluded
    # No duplicates; exactly min(k, eligible items): the admitted recommended items plus the eligible pins
    assert len(shown) == len(set(shown)) == min(k, len(ref.admitted) + len(ref.pinned))
    # A pinned item is at its position, or (the list being shorter) among the pins closing it; one pinned within
    # the top k is always shown
    for position, item_id in enumerate(shown, start=1):
        if item_id in ref.pinned:
            assert ref.pinned[item_id] == position or all(i in ref.pinned for i in shown[position - 1 :])
    assert {i for i, position in ref.pinned.items() if position <= k} <= set(shown)
    # The diversity cap holds among the first top_k recommended items, counting every eligible pinned item
    if ref.cap is not None:
        cap, top_k = ref.cap
        recommended = [i for i in shown if i not in ref.pinned][: top_k or k]
        pins = Counter(catalog.by_id[i].category for i in ref.pinned)
        for category, count in Counter(catalog.by_id[i].category for i in recommended).items():
            assert category is None or count <= max(cap - pins[category], 0)
    # Applied rules are active ones; the same inputs give the same output, cached or not, in any candidate order
    assert set(ruled.applied) <= set(plan.rule_ids)
    assert ruled == engine.plan(req).apply(candidates, k)
    assert ruled == RuleEngine(doc, catalog, cache_size=0).plan(req).apply(list(reversed(candidates)), k)


@settings(FAST, max_examples=100)
@given(WORLDS, st.data())
def test_irrelevant_rules_do_not_change_the_output(world: World, data: st.DataObject) -> None:
    catalog, doc, req, candidates, k = world
    # Given rules that cannot apply (disabled, or scoped to a slot no request names), inserted anywhere
    noise = [
        {"id": f"noise{n}", **body, "enabled": False}
        if n % 2
        else {"id": f"noise{n}", **body, "when": {"slots": ["nowhere"]}}
        for n, body in enumerate(data.draw(st.lists(RULE_BODIES, min_size=1, max_size=4)))
    ]
    rules = [r.model_dump(mode="json", exclude_none=True) for r in doc.rules]
    for extra in noise:
        rules.insert(data.draw(st.integers(0, len(rules))), extra)
    noisy = parse_document({"version": "noisy", "rules": rules, "experiments": [EXPERIMENT]})
    before = RuleEngine(doc, catalog).plan(req).apply(candidates, k)
    after = RuleEngine(noisy, catalog).plan(req).apply(candidates, k)
    assert after == before
