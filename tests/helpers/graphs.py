"""A real recommendation graph for unit tests: the trainer's default hybrid, fitted on a few made-up views."""

from __future__ import annotations

import pandas as pd

from model_export.data.canonical import normalize
from model_export.recommenders import Hybrid, RecsParams
from model_export.training.interactions import ItemIndex
from model_export.training.onnx_graphs import recs_graph
from model_export.training.recs import RecsData


def views_graph(rows: list[tuple[str, str]], index: ItemIndex) -> bytes:
    """The recs graph of a hybrid with default parameters fitted on `rows` (user, item): one view a minute from
    2024-01-01, every item in the category "shoes"."""
    frame = normalize(
        pd.DataFrame(
            {
                "user_id": [user for user, _ in rows],
                "item_id": [item for _, item in rows],
                "event_type": ["view"] * len(rows),
                "timestamp": pd.date_range("2024-01-01", periods=len(rows), freq="min", tz="UTC"),
                "category": ["shoes"] * len(rows),
            }
        )
    )
    return recs_graph(Hybrid(**RecsParams().to_dict()).fit(RecsData(frame, index)).fitted())
