"""`retrain`, `versions` and `rollback` against the loopback stack: archive objects in S3 -> candidate -> gate ->
models/current.json, with the outcome metrics in CloudWatch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from infra.local.stack import LocalStack
from model_export.cli import main
from store.artifacts import ArtifactStore
from tests.helpers.archive import archive_objects, shopping_events

UNTIL = datetime.now(UTC).replace(microsecond=0)
NAMESPACE = "Personalization"


def last_json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    data: dict[str, object] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return data


def test_retrain_promotes_lists_and_rolls_back(
    clean_stack: LocalStack, stack_env: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given three days of a shop's events archived in the loopback bucket, and no model version yet
    bucket = clean_stack.physical_names["ArtifactBucket"]
    s3 = clean_stack.client("s3")
    for key, body in archive_objects(shopping_events(UNTIL, 3), prefix="events").items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    argv = ["retrain", "--archive", f"s3://{bucket}/events", "--days", "3", "--until", UNTIL.isoformat()]
    argv += ["--bucket", bucket, "--metrics-namespace", NAMESPACE]

    # When the job runs twice on the same archive
    assert main(argv) == 0
    first = last_json(capsys)
    assert main(argv) == 0
    second = last_json(capsys)

    # Then the first candidate beat popularity and went live; the second was compared with it and replaced it
    store = ArtifactStore(bucket, clean_stack.region)
    assert first["promotion"] == "promoted"
    assert first["live_version"] is None
    assert second["promotion"] == "promoted"
    assert second["live_version"] == first["candidate_version"]
    assert second["psi"] == 0.0
    assert store.current_version() == second["candidate_version"]
    assert store.manifest(str(second["candidate_version"]))["evaluation"]["compared_with"] == first["candidate_version"]

    # When the versions are listed and the first is rolled back to
    assert main(["versions", "--bucket", bucket]) == 0
    listed = last_json(capsys)
    assert main(["rollback", str(first["candidate_version"]), "--bucket", bucket]) == 0
    capsys.readouterr()

    # Then the listing marked the second live, and the first is current again
    assert listed["live"] == second["candidate_version"]
    assert [row["version"] for row in listed["versions"]] == [first["candidate_version"], second["candidate_version"]]  # type: ignore[attr-defined]
    assert store.current_version() == first["candidate_version"]
    assert main(["rollback", "no-such-version", "--bucket", bucket]) == 2
    assert store.current_version() == first["candidate_version"]

    # And the outcome reached CloudWatch, where the alarms watch it
    cloudwatch = clean_stack.client("cloudwatch")
    names = {metric["MetricName"] for metric in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]}
    assert {"RetrainRejected", "RetrainPromoted", "CandidateNdcg", "DriftPsi"} <= names
    stats = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName="RetrainRejected",
        StartTime=datetime.now(UTC) - timedelta(hours=1),
        EndTime=datetime.now(UTC) + timedelta(minutes=5),
        Period=3600,
        Statistics=["Maximum", "SampleCount"],
    )["Datapoints"]
    assert sum(point["SampleCount"] for point in stats) == 2
    assert max(point["Maximum"] for point in stats) == 0.0
