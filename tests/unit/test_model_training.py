"""`train`: a versioned folder with both graphs, the catalog, the index order and a complete manifest,
on the bundled sample and on data with one event type, no categories or no prices."""

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

from model_export.cli import main
from model_export.publishing.folder import train_version
from personalization.catalog import Catalog
from personalization.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from tests.helpers.data import REES46_SAMPLE, rees46_sample

# No items.json: the recs graph indexes the catalog's own order, so the ids are shipped once (in catalog.bin).
FILES = {"segment.onnx", "recs.onnx", "catalog.bin", "segment_items.json"}


def synthetic(event_types: list[str], categories: bool, prices: bool, seed: int = 3) -> pd.DataFrame:
    """Small sparse data: 120 users over 40 items and two days, in sessions of a few events."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(120):
        start = pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(minutes=int(rng.integers(0, 2 * 24 * 60)))
        for step in range(int(rng.integers(1, 6))):
            item = int(rng.integers(0, 40))
            row: dict[str, object] = {
                "user_id": f"u{user}",
                "item_id": f"i{item}",
                "event_type": event_types[int(rng.integers(0, len(event_types)))],
                "timestamp": (start + pd.Timedelta(minutes=3 * step)).isoformat(),
            }
            if categories:
                row["category"] = f"c{item % 5}"
            if prices:
                row["price"] = float(item) + 0.99
            rows.append(row)
    return pd.DataFrame(rows)


def check_folder(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == FILES
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert manifest["feature_schema_version"] == FEATURE_SCHEMA_VERSION
    assert manifest["feature_names"] == list(FEATURE_NAMES)
    assert manifest["segments"]
    assert all(s["name"] for s in manifest["segments"])
    assert manifest["metrics"]["parity"]["ok"]
    assert manifest["catalog_file"] == "catalog.bin"
    assert "index_file" not in manifest["recs_model"]
    catalog = Catalog.from_bytes((folder / "catalog.bin").read_bytes())
    # The recs graph's index order is the catalog's order, which the catalog file lists.
    items = [item.id for item in catalog.items]
    assert manifest["recs_model"]["n_items"] == len(items)
    # Every segment has its own best-sellers for segment fragments, all of them catalog items.
    by_segment = json.loads((folder / manifest["segment_model"]["items_file"]).read_text())
    assert set(by_segment) == {str(s["id"]) for s in manifest["segments"] if s["size"] > 0}
    assert all(ids and set(ids) <= set(items) for ids in by_segment.values())
    for name in ("segment.onnx", "recs.onnx"):
        ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
    return manifest


def test_train_writes_a_complete_versioned_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the first 800 rows of the bundled sample, in its raw REES46 format
    raw = tmp_path / "rees46.csv"
    raw.write_text("".join(REES46_SAMPLE.read_text().splitlines(keepends=True)[:801]))
    # When the CLI trains on them
    assert main(["train", "--events", str(raw), "--out", str(tmp_path)]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])
    # Then the folder holds every artifact, hashed in a manifest with segment names and feature names
    manifest = check_folder(folder)
    assert folder.parent == tmp_path
    assert manifest["recs_model"]["recent_weighting"]["decay"] == manifest["parameters"]["recs"]["decay"]
    assert manifest["metrics"]["segments"]["k"] == len(manifest["segments"])


@pytest.mark.parametrize(
    ("event_types", "categories", "prices"),
    [
        (["purchase"], True, True),
        (["view"], False, False),
        (["view", "cart", "purchase"], False, True),
        (["click", "buy"], True, False),
    ],
    ids=["only-purchases", "only-clicks-no-categories-no-prices", "no-categories", "aliases-no-prices"],
)
def test_train_runs_on_thin_data(tmp_path: Path, event_types: list[str], categories: bool, prices: bool) -> None:
    folder = train_version(synthetic(event_types, categories, prices), tmp_path)
    manifest = check_folder(folder)
    if not categories:
        assert "item_category" not in {i.name for i in _initializers(folder / "recs.onnx")}
    assert manifest["metrics"]["events"] > 0


def _initializers(path: Path) -> list[onnx.TensorProto]:
    return list(onnx.load(str(path)).graph.initializer)


def test_train_version_accepts_an_adapters_frame_unsorted(tmp_path: Path) -> None:
    frame = rees46_sample().head(300).sample(frac=1.0, random_state=1)
    check_folder(train_version(frame, tmp_path))
