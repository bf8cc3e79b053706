"""A versioned model folder: the files, and a manifest that records where they came from and their sha256."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from personalization.features import FEATURE_SCHEMA_VERSION
from personalization.manifest import MANIFEST_SCHEMA_VERSION, Manifest


def write_version(
    out: Path,
    files: dict[str, bytes],
    data_hash: str,
    parameters: dict[str, Any],
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    created = datetime.now(UTC)
    version = f"{created:%Y%m%dT%H%M%SZ}-{data_hash[:8]}"
    manifest = {
        "manifest_schema_version": MANIFEST_SCHEMA_VERSION,
        "version": version,
        "created": created.isoformat(),
        "data_hash": data_hash,
        "feature_schema_version": FEATURE_SCHEMA_VERSION,
        "parameters": parameters,
        "metrics": metrics,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        **(extra or {}),
    }
    Manifest.model_validate(manifest)  # what serve will read: a manifest it would refuse is never written
    folder = out / version
    folder.mkdir(parents=True, exist_ok=False)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return folder
