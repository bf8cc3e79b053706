"""What serve's cold start imports: the pydantic.v1 stand-in (serve/pydantic_v1.py) takes the real module's
place, and nothing serve ships needs the real one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def imported(code: str) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=FUNCTIONS, capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


def test_serve_app_loads_without_pydantic_v1_and_fastapi_still_answers_no() -> None:
    result = imported(
        "import json, sys, serve.app; from fastapi._compat import annotation_is_pydantic_v1; "
        "from fastapi.encoders import jsonable_encoder; from serve.app import app; "
        "v1 = sys.modules['pydantic.v1']; "
        "print(json.dumps({'stand_in': getattr(v1, '__file__', None), 'answers': annotation_is_pydantic_v1(int), "
        "'encodes': jsonable_encoder({'at': frozenset({1})}), "
        "'documented': '/v1/fragments/{slot}' in app.openapi()['paths'], "
        "'real_v1_parts': sorted(m for m in sys.modules if m.startswith('pydantic.v1.'))}))"
    )
    assert result == {
        "stand_in": None,
        "answers": False,
        "encodes": {"at": [1]},
        "documented": True,
        "real_v1_parts": [],
    }


def test_a_process_that_loaded_the_real_pydantic_v1_first_keeps_it() -> None:
    result = imported(
        "import json, sys, warnings; warnings.simplefilter('ignore'); from pydantic import v1; import serve.app; "
        "print(json.dumps({'real': sys.modules['pydantic.v1'] is v1 and hasattr(v1, 'validator')}))"
    )
    assert result == {"real": True}


def test_no_shipped_module_uses_pydantic_v1() -> None:
    shipped = [
        path
        for path in FUNCTIONS.rglob("*.py")
        if path.name != "pydantic_v1.py"
        and ("pydantic.v1" in path.read_text() or "pydantic import v1" in path.read_text())
    ]
    assert shipped == []
