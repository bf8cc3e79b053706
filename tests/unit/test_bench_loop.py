"""bench.loop's own logic: when serve counts as switched, and the shuffled candidate's input."""

from __future__ import annotations

import pandas as pd

from bench.loop import Watch, shuffled_items


def watch(*answers: list[tuple[float, int, str]]) -> Watch:
    w = Watch(processes=[])
    w.answers = list(answers)
    return w


def test_switched_when_every_process_answers_the_new_version_for_good() -> None:
    first = [(1.0, 200, "old"), (2.0, 200, "new"), (3.0, 200, "new")]
    second = [(1.5, 200, "old"), (2.5, 200, "new"), (2.7, 200, "old"), (3.5, 200, "new"), (4.0, 200, "new")]
    # The second process flipped back once: it counts from its last change on
    assert watch(first, second).switched_at("new", since=0.5) == 3.5


def test_not_switched_while_a_process_still_answers_the_old_version_or_has_not_answered() -> None:
    assert watch([(1.0, 200, "new")], [(1.0, 200, "old")]).switched_at("new", since=0.0) is None
    assert watch([(1.0, 200, "new")], []).switched_at("new", since=0.0) is None
    # Answers before the promotion do not count
    assert watch([(1.0, 200, "new")]).switched_at("new", since=2.0) is None


def test_errors_5xx_counts_server_errors_and_no_answer_at_all() -> None:
    assert watch([(1.0, 200, "a"), (2.0, 503, "")], [(1.0, 599, ""), (2.0, 404, "")]).errors_5xx() == 2


def test_shuffled_items_permute_the_item_ids_and_keep_everything_else() -> None:
    frame = pd.DataFrame({"user_id": list("uuvvw"), "item_id": ["a", "b", "a", "c", "d"], "x": range(5)})
    shuffled = shuffled_items(frame)
    assert sorted(set(shuffled["item_id"])) == ["a", "b", "c", "d"]
    assert (shuffled[["user_id", "x"]] == frame[["user_id", "x"]]).all().all()
    # The same item maps to the same item everywhere (a permutation, not noise)
    assert shuffled.loc[0, "item_id"] == shuffled.loc[2, "item_id"]
    assert shuffled_items(frame).equals(shuffled)
