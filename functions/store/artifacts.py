"""The artifact store: versioned model folders in S3, and a `current.json` pointer that names the live one.

Layout: s3://BUCKET/models/<version>/{manifest.json, catalog.json, ...} and s3://BUCKET/models/current.json.
Publishing writes the folder first and the pointer last, so readers never see a half-written version.

Reading is the one place that judges what the bucket holds: the pointer and the manifest are validated by
their models (pydantic, from the bytes), every file against its sha256. Whatever is wrong (unreadable, not
JSON, nested or numbered past the parser's limits, the wrong shape, a digest mismatch) is an ArtifactError;
nothing else escapes, so a caller needs one except clause to fall back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from botocore.config import Config
from pydantic import BaseModel, ConfigDict, ValidationError

from personalization.manifest import Manifest, VersionName
from store import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "models"
# A version holds a handful of files; botocore's connection pool holds 10.
FETCH_THREADS = 6
POINTER = f"{PREFIX}/current.json"


class ArtifactError(Exception):
    """An artifact is missing, unreadable, of the wrong shape or fails its integrity check."""


class ArtifactUnreadable(ArtifactError):
    """The bucket did not answer with the object (missing, denied, unreachable): worth asking again later."""


class ArtifactInvalid(ArtifactError):
    """The object is there and wrong: asking again returns the same bytes."""


class Pointer(BaseModel):
    """models/current.json: which version is live. Keys it does not name are ignored (a note from whoever
    switched it, say)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: VersionName


@dataclass(frozen=True, slots=True)
class ModelVersion:
    version: str
    # Validated when read: every key the trainer wrote is kept (`Manifest.extra`).
    manifest: Manifest
    files: dict[str, bytes]

    def json(self, name: str) -> Any:
        return json.loads(self.files[name])

    @property
    def catalog_data(self) -> bytes:
        """The catalog file's bytes, whichever format the manifest names (personalization.catalog.from_bytes)."""
        return self.files[self.manifest.catalog_file]


class PendingVersion:
    """A version whose files are on their way: each file's bytes once it has arrived and matched its sha256."""

    def __init__(self, version: str, manifest: Manifest, files: dict[str, Future[bytes]]) -> None:
        self.version = version
        self.manifest = manifest
        self._files = files

    def file(self, name: str) -> bytes:
        """One file (KeyError when the manifest lists no such file; ArtifactError as load raises it)."""
        return self._files[name].result()

    def complete(self) -> ModelVersion:
        """Every file, checked (the first ArtifactError in the manifest's order, as load raises it)."""
        return ModelVersion(self.version, self.manifest, {name: found.result() for name, found in self._files.items()})


def _problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "document"
    return f"{where}: {error['msg']}" + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3_client(region: str) -> S3Client:
    """The S3 client artifacts are read with (serve shares it with the rules source: a second S3 client costs a
    cold start some 40 ms). A plain botocore client: boto3 would add s3transfer and its own session for nothing,
    since artifacts are a few objects read whole. Every file is checked against the manifest's sha256 (load), so
    botocore's own CRC of each response body would hash the bytes twice."""
    config = Config(response_checksum_validation="when_required")
    return cast("S3Client", aws.client("s3", region, config))


class ArtifactStore:
    def __init__(
        self, bucket: str, region: str, read: Callable[[str], bytes] | None = None, s3: S3Client | None = None
    ) -> None:
        """`read` (a key's bytes, raising anything when it has none) replaces S3 for a local stand-in; `s3`: a
        client to share (s3_client), else one is made on first use."""
        self._bucket = bucket
        self._region = region
        self._read = read or self._read_s3
        if s3 is not None:
            self._s3 = s3

    @cached_property
    def _s3(self) -> S3Client:
        return s3_client(self._region)

    def _read_s3(self, key: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return body

    def _get(self, key: str) -> bytes:
        try:
            return self._read(key)
        except Exception as exc:
            raise ArtifactUnreadable(f"cannot read s3://{self._bucket}/{key}: {exc}") from exc

    def current_version(self) -> str:
        """The version models/current.json names (ArtifactError when it is missing or names none)."""
        try:
            return Pointer.model_validate_json(self._get(POINTER)).version
        except ValidationError as exc:
            raise ArtifactInvalid(f"{POINTER}: {_problem(exc)}") from None

    def load(self, version: str | None = None) -> ModelVersion:
        """Fetch a version and check every file against the sha256 its manifest records."""
        return self.fetch(version).complete()

    def fetch(self, version: str | None = None) -> PendingVersion:
        """Start fetching a version's files (its manifest read and validated now, ArtifactError otherwise):
        side by side, each checked against its sha256 as it arrives. A read waits on the network and hashlib lets
        go of the GIL on large buffers, so a 40 MB graph is read and hashed while the catalog already parses."""
        version = version or self.current_version()
        try:
            manifest = Manifest.model_validate_json(self._get(f"{PREFIX}/{version}/manifest.json"))
        except ValidationError as exc:
            raise ArtifactInvalid(f"{version}/manifest.json: {_problem(exc)}") from None
        pool = ThreadPoolExecutor(max_workers=min(len(manifest.files), FETCH_THREADS), thread_name_prefix="fetch")
        try:
            futures = {
                name: pool.submit(self._verified, version, name, digest) for name, digest in manifest.files.items()
            }
        finally:
            pool.shutdown(wait=False)  # the submitted reads still run; the threads end with them
        return PendingVersion(version, manifest, futures)

    def _verified(self, version: str, name: str, digest: str) -> bytes:
        data = self._get(f"{PREFIX}/{version}/{name}")
        if sha256(data) != digest:
            raise ArtifactInvalid(f"{version}/{name} does not match its manifest sha256")
        return data

    def publish(self, folder: Path) -> str:
        """Upload a model folder (which holds manifest.json), then point `current` at it."""
        version = self.upload(folder)
        self.point_to(version)
        return version

    def upload(self, folder: Path) -> str:
        """Upload a model folder as a version without making it current; the manifest goes last, so a version
        whose manifest can be read is complete. A manifest serve would refuse is refused here (ArtifactInvalid),
        before anything is written."""
        try:
            manifest = Manifest.model_validate_json((folder / "manifest.json").read_bytes())
        except ValidationError as exc:
            raise ArtifactInvalid(f"{folder / 'manifest.json'}: {_problem(exc)}") from None
        version = manifest.version
        for name in manifest.files:
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
        """A version's manifest, validated as serve reads it (ArtifactError otherwise), every key kept."""
        try:
            return Manifest.model_validate_json(self._get(f"{PREFIX}/{version}/manifest.json")).model_dump()
        except ValidationError as exc:
            raise ArtifactInvalid(f"{version}/manifest.json: {_problem(exc)}") from None

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
