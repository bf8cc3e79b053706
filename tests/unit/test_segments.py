"""Segment selection refuses degenerate answers; names say only what members do."""

import numpy as np

from model_export.training.segment_names import (
    CategoryMixes,
    CategoryShare,
    category_label,
    name_segments,
    signature_categories,
    signature_of,
)
from model_export.training.segments import (
    CATEGORY_GROUP,
    CATEGORY_WEIGHTS,
    FEATURE_GROUPS,
    fit_segments,
    lens_weights,
)
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


def test_every_feature_belongs_to_one_aspect_and_an_aspect_weighs_as_one_whatever_its_features() -> None:
    # Given features where every column varies
    features = np.random.default_rng(6).normal(size=(50, len(FEATURE_NAMES)))
    grouped = [name for names in FEATURE_GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(FEATURE_NAMES)
    for category_weight in CATEGORY_WEIGHTS:
        weights = lens_weights(features, category_weight)
        # Then each aspect's squared weights add up to one (the category axes: to the lens's weight squared)
        for group, names in FEATURE_GROUPS.items():
            total = sum(weights[COLUMN[name]] ** 2 for name in names)
            expected = category_weight**2 if group == CATEGORY_GROUP else 1.0
            assert np.isclose(total, expected), group
    # A constant feature leaves its aspect's weight to the features that vary
    features[:, COLUMN["share_tablet"]] = 0.0
    weights = lens_weights(features, 1.0)
    assert np.isclose(weights[COLUMN["share_mobile"]] ** 2 + weights[COLUMN["share_desktop"]] ** 2, 1.0)


def test_people_who_shop_for_different_things_are_segments_named_for_what_they_shop_for() -> None:
    rng = np.random.default_rng(7)
    # Given three crowds that behave alike (one view now and then) but shop in different parts of the catalog,
    # and behave differently in ways that say little (a noisy time-of-day mix)
    groups = [(300, (1.0, 0.0, 0.0), "shoes.sneakers"), (200, (0.0, 1.0, 0.0), "phones"), (100, (0.0, 0.0, 1.0), "tea")]
    rows, mixes = [], []
    for size, axes, category in groups:
        crowd = people(size, rng, log_views=1.0, log_visits=0.7, distinct_categories=1.0, top_category_share=1.0)
        for n, value in enumerate(axes, start=1):
            crowd[:, COLUMN[f"category_axis_{n}"]] = value + rng.normal(scale=0.05, size=size)
        crowd[:, COLUMN["share_evening"]] = rng.uniform(size=size)
        rows.append(crowd)
        mixes += [{category: 1.0}] * size
    model = fit_segments(np.vstack(rows), mixes=CategoryMixes.from_dicts(mixes))
    # Then the segments are the three crowds, a lens that weighs what they shop for chose them, and each is named
    # for its signature category (its last dotted part), which the report lists against everyone's share
    assert sorted(s.size for s in model.segments) == [100, 200, 300]
    assert model.category_weight > 0
    names = {s.size: s.name for s in model.segments}
    assert names == {300: "sneakers browsers", 200: "phones browsers", 100: "tea browsers"}
    tea = next(s for s in model.segments if s.size == 100)
    assert (tea.categories[0].category, tea.categories[0].members) == ("tea", 1.0)
    assert np.isclose(tea.categories[0].population, 100 / 600)


def test_a_category_is_in_a_name_only_when_members_bear_it_out() -> None:
    # A segment whose members spend a fifth of their interest on a category, however far above everyone's
    weak = [CategoryShare("tea", 0.2, 0.01)]
    strong = [CategoryShare("tea", 0.6, 0.5)]
    assert signature_of(weak) is None  # under a quarter of the members' interest
    assert signature_of(strong) is None  # not 1.5x everyone's share
    assert signature_of([CategoryShare("electronics.audio.headphone", 0.9, 0.05)]) == "headphone"
    assert category_label("cat:2053013553559896355") == "category 2053013553559896355"
    assert category_label("110122") == "category 110122"


def test_a_segment_lists_only_categories_its_members_shop_for_noticeably_more_than_everyone() -> None:
    # Given two segments: tea lovers (with a trace of coffee) and everyone else (all coffee, a trace of cups)
    mixes = CategoryMixes.from_dicts([{"tea": 0.997, "coffee": 0.003}] * 50 + [{"coffee": 0.999, "cups": 0.001}] * 50)
    labels = np.asarray([0] * 50 + [1] * 50, dtype=np.int64)
    tea, coffee = signature_categories(mixes, labels, 2)
    # Then the tea segment lists tea (99.7% of its interest against 49.9% of everyone's); the trace of cups,
    # 0.05 points above everyone's share, is not listed for the coffee segment
    assert [(c.category, round(c.members, 3), round(c.population, 4)) for c in tea] == [("tea", 0.997, 0.4985)]
    assert [c.category for c in coffee] == ["coffee"]
