"""fastapi_deferred: FastAPI imported with its OpenAPI models built on first use changes nothing a client sees
(the OpenAPI documents and the 422 answers of serve and the collector are what they are with FastAPI imported
plainly), leaves FastAPI's models unbuilt until the document is asked for, and defers no other model."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"

PROBE = """
import json, sys
PLAIN = sys.argv[1] == "plain"
if PLAIN:
    import fastapi.applications  # FastAPI first, as any process that had not imported fastapi_deferred
from serve import app as serve_app
from collect import app as collect_app
import fastapi.openapi.models as openapi_models
from fastapi.testclient import TestClient
from pydantic import BaseModel
from serve.config import ServeConfig
built_at_import = openapi_models.OpenAPI.__pydantic_complete__
ours_built = all(m.__pydantic_complete__ for m in (serve_app.Problem, serve_app.InvalidRequest, ServeConfig))
leaked = "defer_build" in BaseModel.model_config
# No stack here: the state is never reached, the parameters are refused first.
serve_app.app.dependency_overrides[serve_app._state] = lambda: None
client = TestClient(serve_app.app)
answers = [
    [r.status_code, r.json()]
    for r in (client.get("/v1/fragments/for-you?k=0"), client.get("/v1/fragments/for-you?k=x&format=pdf"))
]
documents = [serve_app.app.openapi(), collect_app.app.openapi()]
print(json.dumps({
    "built_at_import": built_at_import,
    "built_after_document": openapi_models.OpenAPI.__pydantic_complete__,
    "ours_built": ours_built,
    "leaked": leaked,
    "answers": answers,
    "documents": documents,
}))
"""


@cache
def probe(mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=FUNCTIONS, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_deferred_import_changes_no_document_and_no_answer() -> None:
    deferred, plain = probe("deferred"), probe("plain")
    assert deferred["documents"] == plain["documents"]
    assert deferred["answers"] == plain["answers"]
    assert [status for status, _ in deferred["answers"]] == [422, 422]


def test_fastapis_models_wait_for_the_document_and_no_other_model_waits() -> None:
    deferred, plain = probe("deferred"), probe("plain")
    assert deferred["built_at_import"] is False
    assert deferred["built_after_document"] is True
    assert plain["built_at_import"] is True  # the probe can tell: imported plainly, they are built at once
    assert deferred["ours_built"] is True
    assert deferred["leaked"] is False
