"""A versioned model folder: the files, and a manifest that records where they came from and their sha256."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from personalization.features import FEATURE_SCHEMA_VERSION
from personalization.manifest import MANIFEST_FILE, MANIFEST_SCHEMA_VERSION, Manifest


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
    # The model serve reads it with: a manifest serve would refuse is never written (ValidationError here).
    manifest = Manifest.model_validate(
        {
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
    )
    folder = out / version
    folder.mkdir(parents=True, exist_ok=False)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    write_manifest(folder, manifest)
    return folder


def read_manifest(folder: Path) -> Manifest:
    """A version folder's manifest, as serve will read it."""
    return Manifest.model_validate_json((folder / MANIFEST_FILE).read_bytes())


def write_manifest(folder: Path, manifest: Manifest) -> None:
    (folder / MANIFEST_FILE).write_text(manifest.to_json())
