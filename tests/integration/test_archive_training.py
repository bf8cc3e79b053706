"""`train --archive s3://...` against the loopback S3: the same window, de-duplication and consent as a folder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.local.stack import LocalStack
from model_export.cli import main
from model_export.data.archive import Window
from model_export.data.window import load_window
from tests.helpers.archive import archive_objects, archived, sample_frame

UNTIL = datetime.now(UTC).replace(microsecond=0)


def put_objects(stack: LocalStack, bucket: str, objects: dict[str, bytes]) -> None:
    s3 = stack.client("s3")
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_train_reads_the_window_from_s3(
    clean_stack: LocalStack, stack_env: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two days of archived events in the loopback bucket, one delivery repeated, and an older day
    bucket = clean_stack.physical_names["ArtifactBucket"]
    events = archived(sample_frame(UNTIL, days=2, rows=700))
    objects = archive_objects(events, prefix="events", per_object=100)
    first = next(iter(objects))
    objects[first + "-again"] = objects[first]
    old = archived(sample_frame(UNTIL - timedelta(days=10), days=1, rows=100))
    objects.update(archive_objects(old, prefix="events", per_object=100))
    put_objects(clean_stack, bucket, objects)

    # When the last two days are loaded, then trained on through the CLI
    loaded = load_window(f"s3://{bucket}/events", Window.last_days(2, UNTIL), clean_stack.region)
    argv = ["train", "--archive", f"s3://{bucket}/events/", "--days", "2", "--until", UNTIL.isoformat()]
    assert main([*argv, "--out", str(tmp_path)]) == 0

    # Then each event of the window counts once, the older day is not read, and the version says so
    assert loaded.stats.events == len(events) == 700
    assert loaded.stats.duplicates == 100
    assert loaded.stats.objects_skipped_by_date == 1
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["data"]["source"] == f"s3://{bucket}/events/"
    assert manifest["metrics"]["events"] == 700
