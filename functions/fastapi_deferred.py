"""FastAPI, imported with the models of its OpenAPI document built on their first use.

FastAPI defines some sixty pydantic models for the OpenAPI document (fastapi.openapi.models: Schema, Operation,
PathItem, ...) and pydantic builds each one's validator and serializer as it is defined: 30 ms of CPU at every cold
start (serve: 589 -> 555 ms CPU, median of six interleaved runs), 5% of serve's budget, for a document these
functions render only when /openapi.json or /docs is asked for. Pydantic's `defer_build` makes a model build on
first use instead, but it is a per-model setting and FastAPI's models are not ours; a model takes its config from
its bases when it is defined, so the base class carries `defer_build` while FastAPI imports and gives it back at
once. Models defined afterwards (ours) build as they are defined, as before.

Import this before anything imports FastAPI (serve.app and collect.app do, first). What it changes is proved by
tests/unit/test_fastapi_deferred.py: the same OpenAPI document and the same 422s, FastAPI's models unbuilt after
import, no other model deferred.
"""

from __future__ import annotations

import sys

from pydantic import BaseModel


def _import_fastapi() -> None:
    if "fastapi" in sys.modules:
        return  # imported already (its models built): nothing to change
    config = BaseModel.model_config
    config["defer_build"] = True
    try:
        import fastapi.applications  # noqa: F401  # fastapi's package, its routing, params and OpenAPI models
    finally:
        del config["defer_build"]


_import_fastapi()
