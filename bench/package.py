"""`python -m bench.package`: each function's deployment package, built as `sam build` builds it.

Runs functions/Makefile's build targets (the ones template.yaml's `BuildMethod: makefile` calls) into
temporary folders, zips them, and reports zipped and unzipped sizes, what each package must not contain, and,
where a python3.12 interpreter is at hand, that the serve package's native wheels import on the runtime's
Python. Needs the package index (wheels for the python3.12 Lambda platform are downloaded once, then cached).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = {
    "ingest": "IngestFunction",
    "serve": "ServeFunction",
    "collect": "CollectFunction",
    "erase": "EraseFunction",
}
# The runtime provides boto3/botocore; training libraries never ship; only serve runs models.
_NO_MODELS = ("boto3", "botocore", "onnxruntime", "sklearn", "skl2onnx", "numpy")
FORBIDDEN = {
    "ingest": _NO_MODELS,
    "collect": _NO_MODELS,
    "erase": _NO_MODELS,
    "serve": ("boto3", "botocore", "sklearn", "skl2onnx", "scipy", "pandas"),
}
TARGETS = {"ingest_zip_mb": 15.0, "serve_zip_mb": 50.0, "serve_unzipped_mb": 250.0}
MB = 1024 * 1024


def build(logical_id: str, into: Path) -> None:
    uv = Path(sys.executable).with_name("uv")
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT / "functions"),
            f"build-{logical_id}",
            f"ARTIFACTS_DIR={into}",
            f"UV={uv}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def zipped_size(folder: Path, out: Path) -> int:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
    return out.stat().st_size


def runtime_python() -> str | None:
    # A real interpreter first: pyenv's shim on PATH resolves through the caller's environment.
    candidates = [*sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")), shutil.which("python3.12")]
    return next((str(c) for c in candidates if c), None)


def imports_on_runtime(folder: Path, modules: list[str]) -> bool | None:
    python = runtime_python()
    if python is None:
        return None
    code = "; ".join(f"import {m}" for m in modules)
    env = {**os.environ, "PYTHONPATH": str(folder)}
    return subprocess.run([python, "-c", code], env=env, capture_output=True, check=False).returncode == 0


def main() -> int:
    figures: dict[str, object] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, logical_id in FUNCTIONS.items():
            folder = Path(tmp) / name
            folder.mkdir()
            build(logical_id, folder)
            unzipped = tree_size(folder) / MB
            zipped = zipped_size(folder, Path(tmp) / f"{name}.zip") / MB
            present = sorted(m for m in FORBIDDEN[name] if (folder / m).exists())
            figures[f"{name}_zip_mb"] = round(zipped, 1)
            figures[f"{name}_unzipped_mb"] = round(unzipped, 1)
            figures[f"{name}_forbidden_present"] = present
            rows.append((name, zipped, unzipped, ", ".join(present) or "none"))
        figures["serve_native_imports_on_py312"] = imports_on_runtime(
            Path(tmp) / "serve", ["numpy", "onnxruntime", "pydantic_core", "jinja2", "fastapi", "mangum"]
        )
    print(f"{'function':<10} {'zip MB':>8} {'unzipped MB':>12}  forbidden packages present")
    for name, zipped, unzipped, listed in rows:
        print(f"{name:<10} {zipped:8.1f} {unzipped:12.1f}  {listed}")
    print("targets: " + ", ".join(f"{k} <= {v}" for k, v in TARGETS.items()))
    print(f"serve's native wheels import on python3.12: {figures['serve_native_imports_on_py312']}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
