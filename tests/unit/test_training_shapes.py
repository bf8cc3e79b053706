"""Training never fails on a well-formed dataset, whatever its shape: each shape below is built from the
bundled sample, trained end to end (replay, segments, selection among the families, export, parity), and the
exported graph must pass parity. A row the one event schema refuses is skipped and counted by reason."""

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from model_export.cli import main
from model_export.data.canonical import normalize
from model_export.training.training import train_models
from personalization.events import Reason
from tests.helpers.data import rees46_sample


def sample() -> pd.DataFrame:
    return normalize(rees46_sample())


def views_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(event_type="view_product")


def purchases_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(event_type="purchase")


def no_categories_no_prices(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["category", "price", "brand"])


def one_category(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(category="everything")


def most_users_one_event(frame: pd.DataFrame) -> pd.DataFrame:
    """Four users in five keep only their first event."""
    first = ~frame.duplicated("user_id")
    many = frame["user_id"].map(lambda user: hash(user) % 5 == 0)
    return frame[first | many]


def items_seen_once(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop_duplicates("item_id")


def tied_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Views only, each user's first two distinct items: every pair co-occurs once and popularity barely
    varies, so most scores tie, at the tenth place too."""
    views = views_only(frame).drop_duplicates(["user_id", "item_id"])
    return views.groupby("user_id", sort=False).head(2).drop(columns=["category"])


SHAPES: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "views-only": views_only,
    "purchases-only": purchases_only,
    "no-categories-no-prices": no_categories_no_prices,
    "one-category": one_category,
    "most-users-one-event": most_users_one_event,
    "items-seen-once": items_seen_once,
    "tied-scores": tied_scores,
}


@pytest.mark.parametrize("shape", SHAPES)
def test_training_succeeds_and_passes_parity_on_every_shape(shape: str) -> None:
    # Given the sample reshaped
    frame = normalize(SHAPES[shape](sample()))
    # When the trainer runs end to end
    trained = train_models(frame)
    # Then it exported a graph that answers as its reference does, over the whole catalog
    assert trained.parity.ok, trained.parity
    assert trained.parity.top10_set_mismatches == 0
    assert trained.recs.n_items == frame["item_id"].nunique()
    assert trained.refused == {}


def test_rows_the_event_schema_refuses_are_skipped_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the sample with a quantity above the schema's cap (fuel sold by the unit), an overlong user id, and
    # an event type nobody knows
    frame = rees46_sample().head(600).copy()
    frame.loc[5, "quantity"] = 12_608
    frame.loc[9, "user_id"] = "u" * 300
    frame.loc[11, "event_type"] = "teleport"
    events = tmp_path / "events.csv"
    frame.to_csv(events, index=False)
    # When the CLI trains on it
    assert main(["train", "--events", str(events), "--out", str(tmp_path / "models")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    # Then the run went on, and the manifest and the output count each refused row under ingest's reason
    expected = {Reason.INVALID_FIELD.value: 2, Reason.UNKNOWN_TYPE.value: 1}
    manifest = json.loads((Path(out[-1]) / "manifest.json").read_text())
    assert manifest["metrics"]["refused_rows"] == expected
    assert manifest["metrics"]["events"] == 597
    assert any("refused" in line and "invalid_field: 2" in line for line in out)
