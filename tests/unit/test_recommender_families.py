"""The contract every recommender family must pass (the shape of implicit's recommender_base_test): it fits
on the bundled sample, exports, its ONNX graph answers as its reference does for every user of the sample,
ties go to the lower item index on both sides, and an empty history gets a full list."""

import numpy as np
import onnxruntime as ort
import pytest

from model_export.data.canonical import normalize
from model_export.recommenders import FAMILIES, Blend, Factors, Hybrid, ItemKNN, Recommender, RecsParams
from model_export.recommenders.blend import typical_gap
from model_export.training.parity import MAX_SCORE_DIFF, only_ties, recs_parity
from model_export.training.recs import QUANTUM, RecsData
from model_export.training.replay import replay
from model_export.training.tuning import CLEAR_ERRORS, MARGIN, Trials, validation
from personalization.profile import Profile
from personalization.recommend import OUTPUT_INDICES, OUTPUT_SCORES, onnx_feed
from tests.helpers.data import rees46_sample


@pytest.fixture(scope="module")
def frame_data() -> tuple[RecsData, dict[str, Profile]]:
    frame = normalize(rees46_sample())
    return RecsData(frame), replay(frame)


# Every part of the graph at once: EASE, cosine and co-occurrence neighbours, factors, categories.
RICH_HYBRID = {**RecsParams().to_dict(), "category": 0.2, "factors": 0.2, "ease": 0.25, "decay": 0.7}


def fitted(family: type[Recommender], data: RecsData) -> Recommender:
    if family is Blend:
        # Two factor models side by side, neighbours side by side, a category part: the hardest blend.
        params = {
            "first": "hybrid",
            "first_params": RICH_HYBRID,
            "second": "factors",
            "second_params": {"dimensions": 32, "prior": 0.001, "decay": 0.7},
            "share": 0.5,
            "decay": 0.7,
        }
        return family(**params).fit(data)
    params = {**next(iter(family.grid(data))), "decay": 0.7}
    if family is Hybrid:
        params = RICH_HYBRID
    return family(**params).fit(data)


def run(graph: bytes, idx: list[int], w: list[float], exclude: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    feed = onnx_feed(
        np.asarray(idx, dtype=np.int64), np.asarray(w, dtype=np.float32), np.asarray(exclude, dtype=np.int64), k
    )
    top_idx, top_score = session.run([OUTPUT_INDICES, OUTPUT_SCORES], feed)
    return top_idx, top_score


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_a_family_exports_a_graph_equal_to_its_reference_for_every_user(
    family: type[Recommender], frame_data: tuple[RecsData, dict[str, Profile]]
) -> None:
    # Given the family fitted on the sample
    data, profiles = frame_data
    model = fitted(family, data)
    # When its graph and its reference answer every user's recent items, with serve's exclusions
    report = recs_parity(model.export(), model.fitted(), list(profiles.values()), data.index.position)
    # Then the top-10 lists agree (beyond ties within the tolerance) and so do the scores
    assert report.users == len(profiles)
    assert report.top10_set_mismatches == 0
    assert report.max_abs_score_diff <= MAX_SCORE_DIFF
    assert model.fitted().family == family.name


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_an_empty_history_gets_a_full_list_and_ties_go_to_the_lower_index(
    family: type[Recommender], frame_data: tuple[RecsData, dict[str, Profile]]
) -> None:
    data, _ = frame_data
    model = fitted(family, data)
    graph = model.export()
    for k in (1, 10, 50):
        top_idx, top_score = run(graph, [], [], [], k)
        ref_idx, _ = model.recommend(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64), k)
        assert len(top_idx) == k
        assert top_idx.tolist() == ref_idx.tolist()
        # Equal scores come out in index order on both sides.
        for a, b in zip(range(k - 1), range(1, k), strict=True):
            if top_score[a] == top_score[b]:
                assert top_idx[a] < top_idx[b]
    # An item the data saw once, alone in a history: still a full list, without it, equal to the reference.
    once = int(np.flatnonzero(np.diff(data.user_items.tocsc().indptr) == 1)[-1])
    top_idx, top_score = run(graph, [once], [1.0], [once], 10)
    ref_idx, _ = model.recommend(np.asarray([once]), np.ones(1, np.float32), np.asarray([once]), 10)
    reference = model.fitted().score_vector(np.asarray([once]), np.ones(1, np.float32), np.asarray([once]))
    assert once not in top_idx.tolist()
    assert top_idx.tolist() == ref_idx.tolist() or only_ties(top_idx, top_score, ref_idx, reference)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_a_family_searches_on_the_validation_split(family: type[Recommender]) -> None:
    valid = validation(normalize(rees46_sample()), 0.2)
    assert valid is not None
    trials = Trials(valid)
    if family is Blend:
        # A blend is made of the best trials of the families searched before it.
        ItemKNN.search(valid.data, trials)
        Factors.search(valid.data, trials)
        before = len(trials.tried)
        family.search(valid.data, trials)
        trials.tried[:before] = []
    else:
        family.search(valid.data, trials)
    assert trials.tried
    assert all(t.family == family.name for t in trials.tried)
    assert all("decay" in t.params for t in trials.tried)
    best = trials.winner(family.name)
    # The family's choice is its first trial (its defaults) unless a later one was clearly better than the choice
    # of its time (tuning.Trials.challenge): then the last such move.
    moves = [d for d in trials.decisions if d.challenger.family == family.name and d.clear]
    if best is trials.tried[0]:
        assert not moves
    else:
        assert moves
        assert moves[-1].challenger is best
    assert all(d.gain > MARGIN and d.overall > CLEAR_ERRORS * d.error for d in moves)


def test_a_blend_scores_as_the_weighted_sum_of_its_two_models(frame_data: tuple[RecsData, dict[str, Profile]]) -> None:
    data, _ = frame_data
    blend = fitted(Blend, data).fitted()
    first = Hybrid(**RICH_HYBRID).fit(data).fitted()
    second = Factors(dimensions=32, prior=0.001, decay=0.7).fit(data).fitted()
    wa, wb = 0.5 / typical_gap(first), 0.5 / typical_gap(second)
    idx, w, none = np.asarray([3, 17]), np.asarray([0.25, 0.75], np.float32), np.zeros(0, np.int64)
    expected = wa * first.score_vector(idx, w, none) + wb * second.score_vector(idx, w, none)
    # Each part is rounded to the score quantum before it is weighted, the blend once after the sum.
    assert np.max(np.abs(blend.score_vector(idx, w, none) - expected)) <= (wa + wb + 1) * QUANTUM


def test_a_swap_counts_as_a_tie_only_within_the_tolerance() -> None:
    reference = np.asarray([3.0, 2.0, 1.0, 1.0 + 5e-5, 0.0], dtype=np.float32)
    ref_idx = np.asarray([0, 1, 3])
    # The graph kept item 2 where the reference kept item 3: 5e-5 apart, within tolerance.
    assert only_ties(np.asarray([0, 1, 2]), np.asarray([3.0, 2.0, 1.0], np.float32), ref_idx, reference)
    # Item 4 is a whole point below the tenth place: a real mismatch.
    assert not only_ties(np.asarray([0, 1, 4]), np.asarray([3.0, 2.0, 0.0], np.float32), ref_idx, reference)
