"""Serve in-process with no sockets: the app (FastAPI's TestClient) over an artifact bucket held in a dict.

The bucket stands in for S3 behind the real ArtifactStore (its `read` hook), so the pointer, manifest, sha256 and
catalog checks, the rollout and the rules are the code serve runs; only the bytes come from memory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from personalization.features import FEATURE_SCHEMA_VERSION
from serve.config import ServeConfig
from serve.live_rules import LiveRules
from serve.rollout import Rollout
from serve.wiring import ServeState
from store.artifacts import POINTER, PREFIX, ArtifactStore
from store.rules_source import CURRENT as RULES_KEY

IDENTITY_KEY = b"k" * 32
CONFIG = ServeConfig(
    PROFILES_TABLE="profiles",  # type: ignore[call-arg]  # read by their environment names
    IDENTITY_KEY_PARAMETER="/identity-key",
    ARTIFACT_BUCKET="artifacts",
    QUARANTINE_TABLE="quarantine",
    ERASURE_LOG_TABLE="erasure-log",
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Bucket:
    """The artifact bucket: key -> bytes; a read of a missing key fails as S3's does (NoSuchKey)."""

    objects: dict[str, bytes] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)

    def read(self, key: str) -> bytes:
        self.reads.append(key)
        if key not in self.objects:
            raise LookupError(f"NoSuchKey: {key}")
        return self.objects[key]

    def rules(self) -> bytes:
        return self.read(RULES_KEY)

    def put_rules(self, body: bytes | dict[str, Any]) -> None:
        self.objects[RULES_KEY] = body if isinstance(body, bytes) else json.dumps(body).encode()

    def point(self, body: bytes | str) -> None:
        self.objects[POINTER] = body if isinstance(body, bytes) else json.dumps({"version": body}).encode()

    def publish(
        self,
        version: str,
        items: list[dict[str, Any]] | None = None,
        manifest: dict[str, Any] | bytes | None = None,
        catalog: bytes | None = None,
        point: bool = True,
    ) -> None:
        """A catalog-only version (no graphs to train, so unit tests stay fast), sha256 recorded as the trainer
        records it; `manifest` replaces or extends the manifest, `catalog` the catalog's bytes."""
        body = catalog if catalog is not None else json.dumps({"items": items if items is not None else ITEMS}).encode()
        self.objects[f"{PREFIX}/{version}/catalog.json"] = body
        written: dict[str, Any] = {
            "version": version,
            "feature_schema_version": FEATURE_SCHEMA_VERSION,
            "files": {"catalog.json": hashlib.sha256(body).hexdigest()},
        }
        raw = manifest if isinstance(manifest, bytes) else json.dumps({**written, **(manifest or {})}).encode()
        self.objects[f"{PREFIX}/{version}/manifest.json"] = raw
        if point:
            self.point(version)


ITEMS = [{"id": f"i{n}", "category": "shoes", "price": 10.0 + n, "popularity": 100.0 - n} for n in range(12)]


class NoProfiles:
    """Every visitor is unknown to the profile table."""

    def get(self, user_id: str) -> None:
        return None


class Served(ServeState):
    def identity_key(self) -> bytes | None:
        return IDENTITY_KEY


def start(
    bucket: Bucket, clock: Clock | None = None, model_max_age_s: float = 60, rules_max_age_s: float = 60
) -> Served:
    """A serve container's start against `bucket` (what serve_state() does, with the stand-ins)."""
    store = ArtifactStore("artifacts", "us-east-1", read=bucket.read)
    rollout = Rollout(store, LiveRules(bucket.rules), model_max_age_s, rules_max_age_s, clock or Clock())
    return Served(CONFIG, NoProfiles(), rollout)  # type: ignore[arg-type]  # ProfileStore's read, in memory


@dataclass
class App:
    client: TestClient
    state: Served | None = None

    def get(self, path: str) -> Any:
        return self.client.get(path)
