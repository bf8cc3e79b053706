"""An empty stand-in for `pydantic.v1`, put in place before FastAPI declares serve's routes.

FastAPI no longer supports pydantic v1 models, and to refuse one it asks of every route parameter's type, and of
some values it encodes, whether it is a `pydantic.v1` model: the asking imports `pydantic.v1`, pydantic's whole
copy of its old version (about 60 ms of every cold start on the deployment machine kind, 10% of serve's budget).
Serve declares no v1 model and ships nothing that uses one (tests/unit/test_serve_cold_imports.py proves both),
so the truthful answer is always "no": a module whose `BaseModel` nothing derives from gives it without the
import. Where the real `pydantic.v1` is already loaded (a process that needed it first), it is left alone.
Anything that tried to use the stand-in for real would fail loudly on a missing name, not quietly.
"""

from __future__ import annotations

import sys
import types

NAME = "pydantic.v1"


class BaseModel:
    """The class no serve model derives from: `isinstance`/`issubclass` against it are always False."""


def install() -> None:
    if NAME not in sys.modules:
        stand_in = types.ModuleType(NAME, __doc__)
        stand_in.BaseModel = BaseModel  # type: ignore[attr-defined]
        sys.modules[NAME] = stand_in
