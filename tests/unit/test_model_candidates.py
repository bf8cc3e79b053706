"""The recs graph hands its top k to the rules as catalog positions and scores: the same items and scores the
previous decode into objects gave, for an index in catalog order and for one in another order; and the rules'
exclusions reach the graph as catalog positions, the same indices a look-up per excluded id gave."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_export.training.interactions import ItemIndex
from personalization.catalog import Catalog, CatalogItem
from personalization.models import RecsModel
from personalization.profile import Profile
from personalization.recommend import (
    OUTPUT_INDICES,
    OUTPUT_SCORES,
    RecentWeighting,
    decode,
    exclusion_indices,
    onnx_feed,
    recent_inputs,
)
from personalization.rules import RuleEngine, RuleRequest, parse_document
from tests.helpers.graphs import views_graph
from tests.helpers.rules import NOW_MS

ITEMS = [CatalogItem(f"i{n}", "shoes" if n % 3 else "bags", 10.0 + n, 100.0 - n) for n in range(12)]
CATALOG = Catalog(ITEMS)
# Excludes the bags and two shoes; the person's cart and purchases add to it.
RULES = parse_document(
    {
        "version": "t",
        "rules": [
            {"id": "no-bags", "kind": "exclude", "match": {"categories": ["bags"]}},
            {"id": "gone", "kind": "exclude", "match": {"items": ["i1", "i2"]}},
            {"id": "cart", "kind": "exclude_cart"},
            {"id": "bought", "kind": "exclude_purchased", "days": 30},
        ],
    }
)


@pytest.fixture(scope="module")
def graph() -> tuple[bytes, ItemIndex]:
    index = ItemIndex.from_catalog(CATALOG)
    rows = [(f"u{n}", item) for n in range(6) for item in ("i10", "i11", "i4")]
    rows += [(f"w{n}", f"i{n}") for n in range(10)]
    return views_graph(rows, index), index


def person(*recent: str) -> Profile:
    profile = Profile("p", affinity={"shoes": 1.0}, affinity_at_ms=int(time.time() * 1000))
    profile.recent = [(item, "v", profile.affinity_at_ms) for item in recent]
    return profile


@settings(max_examples=60, deadline=None)
@given(
    recent=st.lists(st.sampled_from([item.id for item in ITEMS]), min_size=1, max_size=4),
    cart=st.lists(st.sampled_from([item.id for item in ITEMS]), max_size=3),
    bought=st.lists(st.sampled_from([item.id for item in ITEMS]), max_size=3),
    k=st.integers(1, 12),
)
def test_the_graphs_candidates_and_exclusions_are_the_object_paths(
    graph: tuple[bytes, ItemIndex], recent: list[str], cart: list[str], bought: list[str], k: int
) -> None:
    model_bytes, index = graph
    recs = RecsModel(model_bytes, index.ids, CATALOG, RecentWeighting())
    plan = RuleEngine(RULES, CATALOG).plan(
        RuleRequest("for-you", None, None, None, frozenset(), NOW_MS, dict.fromkeys(bought, NOW_MS), cart)
    )
    excluded = plan.excluded
    # The mask from positions equals the mask from ids.
    assert recs._exclusion_indices(excluded).tolist() == exclusion_indices(excluded, recs.index).tolist()
    assert excluded.catalog_positions(Catalog(ITEMS)) is None  # another catalog: its positions mean other items
    # The top k as positions equals what decoding the graph's outputs into (id, score) gave.
    profile = person(*recent)
    candidates = recs.recommend(profile, k, excluded)
    item_idx, item_w = recent_inputs(profile.recent, recs.index, recs.weighting)
    feed = onnx_feed(item_idx, item_w, exclusion_indices(excluded, recs.index), min(k, len(recs)))
    indices, scores = recs._session.run([OUTPUT_INDICES, OUTPUT_SCORES], feed)
    decoded = decode(indices, scores, recs.item_ids)
    assert [(s.item.id, s.score) for s in candidates.scored()] == decoded
    assert candidates.catalog is CATALOG
    assert not set(candidates.ids()) & set(excluded)


def test_an_index_in_another_order_maps_to_catalog_positions(graph: tuple[bytes, ItemIndex]) -> None:
    model_bytes, index = graph
    # A catalog holding the graph's items and more, in its own order: the graph's index i is not position i.
    bigger = Catalog([*ITEMS, CatalogItem("top", "shoes", 1.0, 1000.0)])
    recs = RecsModel(model_bytes, index.ids, bigger, RecentWeighting())
    assert bigger.ids[0] == "top"
    assert recs.index["i0"] == 0
    plan = RuleEngine(RULES, bigger).plan(
        RuleRequest("for-you", None, None, None, frozenset(), NOW_MS, {"i4": NOW_MS}, ["i5", "top"])
    )
    positions = plan.excluded.catalog_positions(bigger)
    assert positions is not None
    assert positions.tolist() == sorted(bigger.position[item] for item in plan.excluded)
    assert recs._exclusion_indices(plan.excluded).tolist() == exclusion_indices(plan.excluded, recs.index).tolist()
    candidates = recs.recommend(person("i10"), 5, plan.excluded)
    assert candidates.catalog is bigger
    assert [bigger.ids[p] for p in candidates.positions.tolist()] == candidates.ids()
    assert all(item in recs.index for item in candidates.ids())
    assert not set(candidates.ids()) & set(plan.excluded)
    similar = recs.similar("i10", 5, plan.excluded)
    assert "i10" not in similar.ids()
    assert not set(similar.ids()) & set(plan.excluded)
    assert np.all(np.diff(similar.scores) <= 0)
