"""Segment selection refuses degenerate answers; names say only what members do."""

import numpy as np

from model_export.training.segment_names import name_segments
from model_export.training.segments import fit_segments
from personalization.features import FEATURE_NAMES

COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}


def people(n: int, rng: np.random.Generator, **means: float) -> np.ndarray:
    """n feature rows around the given means, with a little noise; other features 0, as for people who never
    did what they measure."""
    rows = np.zeros((n, len(FEATURE_NAMES)))
    for name, value in means.items():
        rows[:, COLUMN[name]] = np.abs(value + rng.normal(scale=0.05, size=n))
    return rows


def test_three_sizeable_groups_make_three_stable_segments_with_true_names() -> None:
    rng = np.random.default_rng(1)
    features = np.vstack(
        [
            people(300, rng, log_views=1.0, log_visits=0.7),
            people(180, rng, log_views=2.5, distinct_categories=6.0, log_visits=1.5),
            people(120, rng, log_views=1.5, log_orders=1.2, log_order_value=5.0, log_carts=1.0),
        ]
    )
    model = fit_segments(features)
    assert model.k == 3
    assert min(model.shares) >= 0.03
    assert model.stability >= 0.8
    assert model.method in {"kmeans", "kmeans_from_gmm"}
    names = {s.size: s.name for s in model.segments}
    assert names[120].endswith("buyers")
    assert names[300].endswith("browsers")
    assert names[180].endswith("browsers")
    assert "wide-ranging" in names[180]
    assert len({s.name for s in model.segments}) == 3
    # Every segment says what sets it apart
    assert all(s.defining for s in model.segments)


def test_a_tiny_far_group_is_never_a_segment_and_a_uniform_shop_is_one_segment() -> None:
    rng = np.random.default_rng(2)
    # Given one uniform crowd and 1% of far outliers
    crowd = rng.normal(size=(600, len(FEATURE_NAMES)))
    outliers = people(6, rng, log_orders=30.0, log_order_value=40.0)
    model = fit_segments(np.vstack([crowd, outliers]))
    # Then no segment is under the minimum share; where nothing qualifies there is one segment, and it says so
    assert min(model.shares) >= 0.03
    if model.k == 1:
        assert model.note
        assert model.method == "single"
    assert any(c.refusal is not None and "smallest segment" in c.refusal for c in model.candidates)


def test_a_purchases_only_shop_has_no_browsers() -> None:
    rng = np.random.default_rng(3)
    buyers = [
        people(50, rng, log_orders=0.7, log_order_value=3.0, log_visits=0.7),
        people(50, rng, log_orders=2.0, log_order_value=6.0, log_visits=2.0, bought_price_index=1.0),
    ]
    centres = np.stack([(rows.mean(axis=0) - 1.0) for rows in buyers])
    names = name_segments(centres, buyers)
    assert all("browsers" not in name for name in names)
    assert names[1].endswith("repeat buyers")
    assert names[0] != names[1]


def test_a_qualifier_is_used_only_when_members_bear_it_out() -> None:
    rng = np.random.default_rng(4)
    # A centre far above the population on mobile share, but whose members used phones for a third of events
    members = [people(40, rng, log_views=1.0, share_mobile=0.33), people(40, rng, log_views=1.0)]
    centres = np.zeros((2, len(FEATURE_NAMES)))
    centres[0, COLUMN["share_mobile"]] = 2.0
    assert "mobile" not in name_segments(centres, members)[0]
    members[0][:, COLUMN["share_mobile"]] = 0.9
    assert name_segments(centres, members)[0] == "mobile browsers"


def test_high_value_is_against_other_buyers_not_against_people_who_never_ordered() -> None:
    rng = np.random.default_rng(5)
    # Given buyers whose orders are worth what other buyers' are, among many who never ordered
    browsers = people(200, rng, log_views=1.0)
    buyers = people(40, rng, log_views=1.0, log_orders=0.7, log_order_value=4.0)
    dear = people(40, rng, log_views=1.0, log_orders=0.7, log_order_value=4.0)
    centres = np.zeros((3, len(FEATURE_NAMES)))
    centres[1, COLUMN["log_order_value"]] = 3.0  # far above the population, which is mostly zeros
    centres[2, COLUMN["log_order_value"]] = 3.0
    # Then the first buyers are not "high-value"; buyers whose orders are worth twice the others' are
    assert "high-value" not in name_segments(centres, [browsers, buyers, dear])[1]
    dear[:, COLUMN["log_order_value"]] = 4.0 + np.log(2.5)
    assert name_segments(centres, [browsers, buyers, dear])[2] == "high-value buyers"
