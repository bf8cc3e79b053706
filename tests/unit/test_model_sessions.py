"""model_export.training.interactions.session_keys: offline sessions cut where the fold cuts them, whatever unit
the timestamp column holds (pandas 3 reads microseconds, pandas 2 nanoseconds)."""

from itertools import pairwise

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from model_export.training.interactions import epoch_ms, session_keys
from personalization.profile import SESSION_TIMEOUT_MS

START = pd.Timestamp("2019-10-01 00:00:00")


def frame(gaps_ms: list[int], unit: str) -> pd.DataFrame:
    at = [START]
    for gap in gaps_ms:
        at.append(at[-1] + pd.Timedelta(milliseconds=gap))
    stamps = pd.Series(pd.to_datetime(at)).dt.as_unit(unit)
    return pd.DataFrame({"user_id": "u", "timestamp": stamps, "session_id": pd.Series([None] * len(at), dtype=object)})


@given(
    gaps=st.lists(st.integers(0, 3 * SESSION_TIMEOUT_MS), max_size=12),
    unit=st.sampled_from(["s", "ms", "us", "ns"]),
)
def test_a_session_ends_after_the_folds_inactivity_timeout_in_any_unit(gaps: list[int], unit: str) -> None:
    if unit == "s":
        gaps = [gap // 1000 * 1000 for gap in gaps]
    keys = session_keys(frame(gaps, unit)).tolist()
    expected_new = [gap > SESSION_TIMEOUT_MS for gap in gaps]
    assert [a != b for a, b in pairwise(keys)] == expected_new


def test_epoch_ms_reads_every_unit_alike() -> None:
    at = pd.Series(pd.to_datetime(["2019-10-01 00:00:01.234"]))
    for unit in ("ms", "us", "ns"):
        assert epoch_ms(at.dt.as_unit(unit)).tolist() == [1_569_888_001_234]
