"""`python -m infra.glue.bundle`: the retraining job's code and dependency list, as Glue takes them.

- edge_personalization.zip: the packages the job imports (the domain and store from functions/, model_export),
  at the zip's top level, as `--extra-py-files` puts a zip on sys.path. Entries are sorted and dated
  1980-01-01, so the same sources always give the same bytes.
- requirements.txt: the locked, hashed dependency list (infra/glue/requirements.txt, exported from uv.lock by
  `make requirements`), which Glue 5.0 installs with pip (`--additional-python-modules` + `-r`).
"""

from __future__ import annotations

import argparse
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = "edge_personalization.zip"
REQUIREMENTS = ROOT / "infra" / "glue" / "requirements.txt"
# (source, name in the zip): what `model_export retrain` imports, and nothing of the Lambda handlers.
SOURCES = (
    (ROOT / "functions" / "personalization", "personalization"),
    (ROOT / "functions" / "store", "store"),
    (ROOT / "functions" / "observability.py", "observability.py"),
    (ROOT / "functions" / "http_headers.py", "http_headers.py"),
    (ROOT / "model_export", "model_export"),
)


def _files() -> Iterator[tuple[Path, str]]:
    for source, name in SOURCES:
        if source.is_file():
            yield source, name
            continue
        for path in sorted(source.rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path, f"{name}/{path.relative_to(source).as_posix()}"


def build(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / BUNDLE
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, name in sorted(_files(), key=lambda pair: pair[1]):
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes())
    shutil.copyfile(REQUIREMENTS, out / "requirements.txt")
    return bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.glue.bundle")
    parser.add_argument("--out", default=str(ROOT / "build" / "glue"))
    args = parser.parse_args(argv)
    bundle = build(Path(args.out))
    print(f"{bundle} ({bundle.stat().st_size / 1e6:.2f} MB) and {bundle.with_name('requirements.txt')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
