"""The retraining Glue job in template.yaml against the code: its script, its arguments, its bundle, its role
and the alarms on the metrics the job puts."""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path
from typing import Any

from infra.glue.bundle import BUNDLE, build
from model_export.publishing.commands import JOB_DIMENSIONS, add_retrain_arguments
from model_export.publishing.retrain import RetrainResult
from tests.helpers.glue_job import GLUE_ARGUMENTS, JOB, TEMPLATE

ROOT = Path(__file__).resolve().parents[2]


def test_the_job_is_glue_5_running_the_entry_script_on_a_schedule() -> None:
    assert JOB["GlueVersion"] == "5.0"
    assert JOB["Command"]["Name"] == "glueetl"
    # A local path: `sam package` uploads it like function code.
    script = ROOT / JOB["Command"]["ScriptLocation"]
    assert script.is_file()
    assert "glue_main" in script.read_text()
    trigger = TEMPLATE.resource("RetrainTrigger").properties
    assert trigger["Type"] == "SCHEDULED"
    assert trigger["Schedule"] == {"Ref": "RetrainSchedule"}
    assert trigger["Actions"] == [{"JobName": {"Ref": "RetrainJob"}}]
    assert JOB["ExecutionProperty"]["MaxConcurrentRuns"] == 1


def test_every_job_argument_is_one_retrain_takes() -> None:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_retrain_arguments(parser)
    own = {key: value for key, value in JOB["DefaultArguments"].items() if key not in GLUE_ARGUMENTS}
    argv = [part for key in own for part in (key, "1")]  # "1" parses as every argument's type
    _, unknown = parser.parse_known_args(argv)
    assert unknown == []
    assert own["--tolerance"] == {"Ref": "PromotionTolerance"}
    assert own["--days"] == {"Ref": "RetrainWindowDays"}


def test_the_job_reads_the_bundle_make_glue_builds(tmp_path: Path) -> None:
    arguments = JOB["DefaultArguments"]
    assert arguments["--extra-py-files"] == {"Fn::Sub": f"s3://${{ArtifactBucket}}/glue/{BUNDLE}"}
    assert arguments["--additional-python-modules"] == {"Fn::Sub": "s3://${ArtifactBucket}/glue/requirements.txt"}
    bundle = build(tmp_path)
    names = set(zipfile.ZipFile(bundle).namelist())
    assert {"model_export/publishing/commands.py", "personalization/events.py", "store/artifacts.py"} <= names
    assert not any(name.startswith(("serve/", "ingest/", "tests/")) or "__pycache__" in name for name in names)
    # Built twice from the same sources: the same bytes.
    assert build(tmp_path / "again").read_bytes() == bundle.read_bytes()


def _statements() -> list[dict[str, Any]]:
    role = TEMPLATE.resource("RetrainJobRole").properties
    return [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]


def test_the_role_reads_the_archive_and_writes_only_models() -> None:
    writes = [s for s in _statements() if "s3:PutObject" in s["Action"]]
    assert [s["Resource"] for s in writes] == [{"Fn::Sub": "${ArtifactBucket.Arn}/models/*"}]
    text = str(_statements())
    assert "${ArchiveBucket.Arn}/events/*" in text
    assert "Delete" not in text


def test_the_alarms_watch_what_the_job_puts() -> None:
    alarms = TEMPLATE.resources_of_type("AWS::CloudWatch::Alarm")
    put = {"RetrainFailed"} | set(_a_result_metrics())
    watched = {}
    for alarm in alarms.values():
        props = alarm.properties
        if props.get("Namespace") == "Personalization" and props["MetricName"].startswith(("Retrain", "Drift")):
            assert props["Dimensions"] == [{"Name": k, "Value": v} for k, v in JOB_DIMENSIONS.items()]
            watched[props["MetricName"]] = props
    assert set(watched) == {"RetrainFailed", "RetrainRuns", "RetrainRejected", "DriftPsi"}
    assert set(watched) <= put
    assert watched["DriftPsi"]["Threshold"] == {"Ref": "DriftAlarmThreshold"}
    assert TEMPLATE.parameter_default("DriftAlarmThreshold") in {"0.2", 0.2}
    metrics_statement = next(s for s in _statements() if s["Action"] == "cloudwatch:PutMetricData")
    assert metrics_statement["Condition"]["StringEquals"]["cloudwatch:namespace"] == "Personalization"
    assert JOB["DefaultArguments"]["--metrics-namespace"] == "Personalization"


def _a_result_metrics() -> dict[str, float]:
    from model_export.publishing.drift import Drift
    from model_export.publishing.gate import Decision
    from model_export.publishing.scoring import Scores

    scores = Scores(0.1, 0.2, 0.1, 0.3, 10)
    result = RetrainResult(
        decision=Decision(False, "worse"),
        candidate_version="v2",
        live_version="v1",
        candidate=scores,
        live=scores,
        popularity=scores,
        events=1,
        train_events=1,
        holdout_events=0,
        drift=Drift("v1", 0.1, {"f": 0.3}),
        data={},
        folder=None,
    )
    return result.metrics()
