"""`python -m bench.package`: each function's deployment package, built as `sam build` builds it.

Runs functions/Makefile's build targets (the ones template.yaml's `BuildMethod: makefile` calls) into
temporary folders, zips them, and reports zipped and unzipped sizes, what each package must not contain, and,
where a python3.12 interpreter is at hand, that the serve package's native wheels import on the runtime's
Python. Needs the package index (wheels for the python3.12 Lambda platform are downloaded once, then cached).
"""

from __future__ import annotations

import importlib.util
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
TARGETS = {"ingest_zip_mb": 15.0, "serve_zip_mb": 45.0, "serve_unzipped_mb": 250.0}
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


# The Lambda runtime provides these (boto3 and what it needs); the built package leaves them out on purpose.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "dateutil", "six", "urllib3")
# Runs on python3.12 against the built package only (plus the runtime-provided libraries): imports every module
# of serve and of the code it shares, answers a request through the Lambda entry point's Mangum adapter, and
# scores with onnxruntime, so a file the build strips that serve needs fails here.
SERVE_SMOKE = """
import importlib, json, pkgutil, sys, sysconfig
import numpy as np
package, model = sys.argv[1], sys.argv[2]
for name in ("serve", "personalization", "store"):
    root = importlib.import_module(name)
    for info in pkgutil.walk_packages(root.__path__, name + "."):
        if info.name != "serve.handler":  # its import loads the live state from S3 (needs a stack)
            importlib.import_module(info.name)
import observability, http_headers, mangum, onnxruntime
from serve.app import app
event = {"version": "2.0", "rawPath": "/v1/no-such-route", "rawQueryString": "", "headers": {"host": "x"},
         "requestContext": {"http": {"method": "GET", "path": "/v1/no-such-route", "sourceIp": "127.0.0.1"}},
         "isBase64Encoded": False}
status = mangum.Mangum(app, lifespan="off")(event, None)["statusCode"]
session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
scores = session.run(None, {session.get_inputs()[0].name: np.ones((2, 4), np.float32)})
paths = sysconfig.get_paths()
site = (paths["purelib"], paths["platlib"])
def found_outside(path):  # neither the package, nor the runtime-provided libraries, nor the standard library
    if path is None or path.startswith((package, sys.argv[3])):
        return False
    return path.startswith(site) or not path.startswith((paths["stdlib"], paths["platstdlib"]))
loaded = list(sys.modules.items())
outside = sorted({m.split(".")[0] for m, mod in loaded if found_outside(getattr(mod, "__file__", None))})
print(json.dumps({"status": status, "scored": len(scores[-1]), "outside": outside}))
"""


def tiny_model(out: Path) -> Path:
    """A 4-feature classifier exported as serve's models are (skl2onnx, no zipmap)."""
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    features = np.random.default_rng(0).random((50, 4), dtype=np.float32)
    model = LogisticRegression().fit(features, np.arange(50) % 2)
    out.write_bytes(to_onnx(model, features[:1], options={"zipmap": False}).SerializeToString())
    return out


def serves_from_package(folder: Path, tmp: Path) -> dict[str, object] | None:
    """SERVE_SMOKE's figures on python3.12, or None without that interpreter."""
    python = runtime_python()
    if python is None:
        return None
    provided = tmp / "runtime-provided"
    provided.mkdir()
    for name in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            origin = Path(spec.origin)
            # A package is its folder; a single-file module (six) is its file.
            if spec.submodule_search_locations:
                (provided / name).symlink_to(origin.parent)
            else:
                (provided / origin.name).symlink_to(origin)
    env = {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{provided}", "POWERTOOLS_METRICS_NAMESPACE": "bench"}
    model = tiny_model(tmp / "tiny.onnx")
    args = [python, "-c", SERVE_SMOKE, str(folder), str(model), str(provided)]
    run = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        return {"error": (run.stderr.strip().splitlines() or ["unknown"])[-1]}
    figures: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    return figures


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
            Path(tmp) / "serve", ["numpy", "onnxruntime", "pydantic_core", "markupsafe", "fastapi", "mangum"]
        )
        smoke = serves_from_package(Path(tmp) / "serve", Path(tmp))
        # True when all of serve imported from the package alone and a request and a model run went through.
        figures["serve_runs_from_package"] = (
            None
            if smoke is None
            else smoke.get("status") == 404 and smoke.get("scored") == 2 and smoke.get("outside") == []
        )
        figures["serve_smoke"] = smoke
    print(f"{'function':<10} {'zip MB':>8} {'unzipped MB':>12}  forbidden packages present")
    for name, zipped, unzipped, listed in rows:
        print(f"{name:<10} {zipped:8.1f} {unzipped:12.1f}  {listed}")
    print("targets: " + ", ".join(f"{k} <= {v}" for k, v in TARGETS.items()))
    print(f"serve's native wheels import on python3.12: {figures['serve_native_imports_on_py312']}")
    print(f"serve imports, answers a request and scores from its package alone: {figures['serve_runs_from_package']}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
