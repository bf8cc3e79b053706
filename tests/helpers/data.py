"""The committed test data (tests/data): every test reaches its files through here, by these names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from model_export.data.datasets import rees46

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
# 2,000 rows of the REES46 e-commerce log (tests/data/README.md says where they come from).
REES46_SAMPLE = DATA_DIR / "rees46_head2000.csv"


def rees46_sample() -> pd.DataFrame:
    """The REES46 sample read by the trainer's adapter, in canonical columns (a fresh frame per call)."""
    return rees46(REES46_SAMPLE)
