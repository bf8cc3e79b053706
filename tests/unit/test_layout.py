"""The code's rooms stay as docs and newcomers read them: modules small enough to read in one sitting, every
model_export room saying what it holds, and `python -m model_export`'s entry never used as a library."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A module over this is holding more than one idea: split it by idea (issue 22).
MAX_LINES = 500
SOURCES = ("functions", "model_export", "infra", "bench", "tests")


def python_files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from (path for path in sorted((ROOT / folder).rglob("*.py")) if "__pycache__" not in path.parts)


def imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_no_module_in_functions_or_model_export_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in python_files("functions", "model_export")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_nothing_imports_the_model_export_entry() -> None:
    importers = [
        str(path.relative_to(ROOT))
        for path in python_files(*SOURCES)
        if path != ROOT / "model_export" / "__main__.py" and "model_export.__main__" in set(imported_modules(path))
    ]
    assert importers == []


def test_the_model_export_entry_only_runs_the_cli() -> None:
    entry = ROOT / "model_export" / "__main__.py"
    assert set(imported_modules(entry)) - {"__future__", "__future__.annotations", "sys"} == {
        "model_export.cli",
        "model_export.cli.main",
    }


def test_every_model_export_room_says_what_it_holds() -> None:
    rooms = sorted(path.parent for path in (ROOT / "model_export").glob("*/*.py") if "__pycache__" not in path.parts)
    silent = [
        str(room.relative_to(ROOT))
        for room in dict.fromkeys(rooms)
        if not (room / "__init__.py").exists() or not ast.get_docstring(ast.parse((room / "__init__.py").read_text()))
    ]
    assert rooms
    assert silent == []
