"""The artifact store: versioned model folders in S3, and a `current.json` pointer that names the live one.

Layout: s3://BUCKET/models/<version>/{manifest.json, catalog.json, ...} and s3://BUCKET/models/current.json.
Publishing writes the folder first and the pointer last, so readers never see a half-written version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import botocore.session

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "models"
POINTER = f"{PREFIX}/current.json"


class ArtifactError(Exception):
    """An artifact is missing, unreadable or fails its integrity check."""


@dataclass(frozen=True, slots=True)
class ModelVersion:
    version: str
    manifest: dict[str, Any]
    files: dict[str, bytes]

    def json(self, name: str) -> Any:
        return json.loads(self.files[name])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    def __init__(self, bucket: str, region: str) -> None:
        self._bucket = bucket
        # A plain botocore client: boto3 would add s3transfer and its own session to serve's cold start
        # for nothing, since artifacts are a few small objects read whole.
        self._s3 = cast("S3Client", botocore.session.get_session().create_client("s3", region_name=region))

    def _get(self, key: str) -> bytes:
        try:
            body: bytes = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except Exception as exc:
            raise ArtifactError(f"cannot read s3://{self._bucket}/{key}: {exc}") from exc
        return body

    def current_version(self) -> str:
        return str(json.loads(self._get(POINTER))["version"])

    def load(self, version: str | None = None) -> ModelVersion:
        """Fetch a version and check every file against the sha256 its manifest records."""
        version = version or self.current_version()
        manifest = json.loads(self._get(f"{PREFIX}/{version}/manifest.json"))
        files: dict[str, bytes] = {}
        for name, digest in manifest.get("files", {}).items():
            data = self._get(f"{PREFIX}/{version}/{name}")
            if sha256(data) != digest:
                raise ArtifactError(f"{version}/{name} does not match its manifest sha256")
            files[name] = data
        return ModelVersion(version, manifest, files)

    def publish(self, folder: Path) -> str:
        """Upload a model folder (which holds manifest.json), then point `current` at it."""
        version = self.upload(folder)
        self.point_to(version)
        return version

    def upload(self, folder: Path) -> str:
        """Upload a model folder as a version without making it current; the manifest goes last, so a version
        whose manifest can be read is complete."""
        manifest = json.loads((folder / "manifest.json").read_text())
        version = str(manifest["version"])
        for name in manifest.get("files", {}):
            self._s3.put_object(
                Bucket=self._bucket, Key=f"{PREFIX}/{version}/{name}", Body=(folder / name).read_bytes()
            )
        self._s3.put_object(
            Bucket=self._bucket, Key=f"{PREFIX}/{version}/manifest.json", Body=(folder / "manifest.json").read_bytes()
        )
        return version

    def point_to(self, version: str) -> None:
        """Make an uploaded version the one serve loads (one small object: readers see the old or the new)."""
        self._s3.put_object(Bucket=self._bucket, Key=POINTER, Body=json.dumps({"version": version}).encode())

    def manifest(self, version: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self._get(f"{PREFIX}/{version}/manifest.json"))
        return data

    def versions(self) -> list[str]:
        """Every uploaded version's name (the folders under models/), oldest first: names start with the time."""
        found: list[str] = []
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=f"{PREFIX}/", Delimiter="/"
            )
            for page in pages:
                found.extend(entry["Prefix"][len(PREFIX) + 1 : -1] for entry in page.get("CommonPrefixes", []))
        except Exception as exc:
            raise ArtifactError(f"cannot list s3://{self._bucket}/{PREFIX}/: {exc}") from exc
        return sorted(found)
