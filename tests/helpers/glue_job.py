"""The retraining Glue job as template.yaml declares it, for the tests that check it and the one that runs it."""

from __future__ import annotations

from pathlib import Path

from infra.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Template.load(ROOT / "template.yaml")
JOB = dict(TEMPLATE.resource("RetrainJob").properties)
# Arguments Glue itself reads; every other one is the job's own.
GLUE_ARGUMENTS = {
    "--job-language",
    "--job-bookmark-option",
    "--enable-continuous-cloudwatch-log",
    "--continuous-log-logGroup",
    "--extra-py-files",
    "--additional-python-modules",
    "--python-modules-installer-option",
}
