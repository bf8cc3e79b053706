"""The Glue job's entry script against the loopback stack, with no Glue runtime: run as Glue runs it (a fresh
Python process, the job's arguments as template.yaml declares them plus Glue's own, the project's code from the
bundle `make glue` builds), from archive objects in the loopback archive bucket to a switched current.json."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from infra.glue.bundle import build
from infra.local.stack import LocalStack
from store.artifacts import ArtifactStore
from store.profiles import ProfileStore, TableSettings
from tests.helpers.archive import archive_objects, pseudonym, shopping_events
from tests.helpers.glue_job import GLUE_ARGUMENTS, JOB

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / JOB["Command"]["ScriptLocation"]
UNTIL = datetime.now(UTC).replace(microsecond=0)


def job_arguments(stack: LocalStack) -> list[str]:
    """The job's own DefaultArguments resolved against the local names, with what Glue adds to every run."""
    resolver = stack.resolver()
    argv = ["--JOB_NAME", "retrain", "--JOB_ID", "j_local", "--JOB_RUN_ID", "jr_local", "--TempDir", "s3://tmp/x"]
    argv += ["--job-bookmark-option", "job-bookmark-disable", "--enable-continuous-cloudwatch-log", "true"]
    for key, value in JOB["DefaultArguments"].items():
        if key not in GLUE_ARGUMENTS:
            argv += [key, str(resolver.resolve(value, "RetrainJob"))]
    # The held-out latest day ends at the archive's end, so the run is independent of the clock.
    return [*argv, "--days", "3", "--until", UNTIL.isoformat()]


def test_the_glue_entry_point_retrains_from_the_archive_and_switches_current(
    clean_stack: LocalStack, stack_env: LocalStack, tmp_path: Path
) -> None:
    # Given three days of archived events in the archive bucket, no model yet, and the job's code bundle
    archive = clean_stack.physical_names["ArchiveBucket"]
    bucket = clean_stack.physical_names["ArtifactBucket"]
    s3 = clean_stack.client("s3")
    for key, body in archive_objects(shopping_events(UNTIL, 3), prefix="events").items():
        s3.put_object(Bucket=archive, Key=key, Body=body)
    bundle = build(tmp_path / "glue")
    # and one customer erased since (a tombstone the archive purge has not acted on yet)
    profiles = ProfileStore(TableSettings(clean_stack.physical_names["ProfilesTable"], clean_stack.region))
    profiles.erase(pseudonym("person-3"), UNTIL + timedelta(days=30))

    # When the entry script runs in a fresh process with the bundle first on its path
    env = clean_stack.child_env()
    env["PYTHONPATH"] = str(bundle)
    run = subprocess.run(
        [sys.executable, str(SCRIPT), *job_arguments(clean_stack)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    # Then it ran the project's code from the bundle, promoted a candidate and switched current.json to it
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"code from {bundle}" in run.stdout
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["promotion"] == "promoted"
    assert ArtifactStore(bucket, clean_stack.region).current_version() == report["candidate_version"]
    assert "JOB_NAME" in run.stdout  # Glue's own arguments were seen and set aside
    assert report["left_out_erased"]["people"] == 1
