"""`evaluate` end to end on the committed sample: both protocols, every model, report, JSON last line."""

import json
from pathlib import Path

import pytest

from model_export.cli import main
from tests.helpers.data import REES46_SAMPLE

METRICS = {"ndcg@10", "recall@20", "mrr", "coverage"}
MODELS = {"popularity", "item_knn", "cooccurrence", "als", "ease", "onnx"}


def test_evaluate_prints_one_json_object_last_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the bundled sample in its raw REES46 format
    # When the evaluation runs on it
    assert main(["evaluate", "--events", str(REES46_SAMPLE), "--out", str(tmp_path)]) == 0
    # Then its last line is one JSON object with every model under both protocols
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert set(summary["models"]) >= MODELS
    assert set(summary["session"]["models"]) >= MODELS
    for by_model in (summary["models"], summary["session"]["models"]):
        for metrics in by_model.values():
            assert set(metrics) == METRICS
            assert all(0.0 <= value <= 1.0 for value in metrics.values())
    segments = summary["segments"]
    assert {"k", "shares", "method", "silhouette", "davies_bouldin", "stability", "segment_lift"} <= set(segments)
    assert len(segments["shares"]) == segments["k"] >= 1
    assert abs(sum(segments["shares"]) - 1.0) < 1e-3
    # Either a split that holds (sizeable, stable) or one segment that says why
    if segments["k"] > 1:
        assert min(segments["shares"]) >= segments["min_share"]
        assert segments["stability"] >= 0.8
        assert -1.0 <= segments["silhouette"] <= 1.0
    else:
        assert segments["note"]
        assert segments["segment_lift"] in (None, 1.0)
    assert summary["events"] == 2000
    assert summary["train_s"] > 0
    # And the report with its plots is on disk
    report = (tmp_path / "report.md").read_text()
    for plot in ("metrics.png", "segments.png", "segments_pca.png", "segments_centres.png"):
        assert (tmp_path / plot).stat().st_size > 0
        assert plot in report
    assert "never on the test" in report
    # And the families the validation split chose among are in the report, with the winner and why
    for family in ("popularity", "item_knn", "cooccurrence", "ease", "factors", "hybrid"):
        assert f"| {family} |" in report or f"| **{family}** |" in report
    assert f"| **{summary['exported_family']}** |" in report
    assert "Winner: " in report
    # And the targets compare the exported model with the best other model on each figure
    targets = summary["targets"]
    for key in ("user/ndcg@10", "user/recall@20", "session/ndcg@10", "session/recall@20"):
        found = targets[key]
        protocol = summary["models"] if key.startswith("user") else summary["session"]["models"]
        metric = key.split("/")[1]
        others = {name: m[metric] for name, m in protocol.items() if name != "onnx"}
        assert found["best_other_value"] == max(others.values())
        assert found["onnx"] == protocol["onnx"][metric]
        assert found["ok"] == (found["ratio"] is None or found["ratio"] >= 0.95)
    assert targets["met"] == all(targets[k]["ok"] for k in targets if isinstance(targets[k], dict))
    assert summary["refused_rows"] == {}
