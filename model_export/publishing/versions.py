"""The versions in the artifact bucket: what each learned from, how it was evaluated, which is live; rollback.

A rollback is an explicit promotion of an older version: it is checked as serve will load it (every file's
sha256, the graphs, the feature schema) before `current` is switched, so a rollback cannot take serve down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from model_export.publishing.scoring import servable
from store.artifacts import ArtifactError, ModelVersion


class RollbackError(RuntimeError):
    """The version asked for does not exist or cannot be served; `current` is left as it was."""


class VersionCatalog(Protocol):
    """The artifact store as listing and rollback use it (store.artifacts.ArtifactStore)."""

    def versions(self) -> list[str]: ...

    def manifest(self, version: str) -> dict[str, Any]: ...

    def current_version(self) -> str: ...

    def load(self, version: str | None = None) -> ModelVersion: ...

    def point_to(self, version: str) -> None: ...


@dataclass(frozen=True)
class VersionRow:
    version: str
    live: bool
    created: str | None
    events: int | None
    window_end: str | None
    ndcg: float | None
    compared_with: str | None
    live_ndcg: float | None
    decision: str | None
    reason: str | None
    psi: float | None

    @classmethod
    def of(cls, version: str, manifest: dict[str, Any], live: bool) -> VersionRow:
        evaluation = manifest.get("evaluation") or {}
        promotion = manifest.get("promotion") or {}
        window = (manifest.get("data") or {}).get("window") or {}
        return cls(
            version=version,
            live=live,
            created=manifest.get("created"),
            events=(manifest.get("metrics") or {}).get("events"),
            window_end=window.get("end"),
            ndcg=(evaluation.get("candidate") or {}).get("ndcg"),
            compared_with=evaluation.get("compared_with"),
            live_ndcg=(evaluation.get("live") or {}).get("ndcg"),
            decision=promotion.get("decision"),
            reason=promotion.get("reason"),
            psi=(manifest.get("drift") or {}).get("psi_max"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def live_version(store: VersionCatalog) -> str | None:
    try:
        return store.current_version()
    except ArtifactError:
        return None


def list_versions(store: VersionCatalog) -> list[VersionRow]:
    """Every version, oldest first; one whose manifest cannot be read is listed with nothing but its name."""
    live = live_version(store)
    rows = []
    for version in store.versions():
        try:
            manifest = store.manifest(version)
        except (ArtifactError, ValueError):
            manifest = {}
        rows.append(VersionRow.of(version, manifest, version == live))
    return rows


def rollback(store: VersionCatalog, version: str) -> str | None:
    """Make `version` current again; returns the version it replaced."""
    previous = live_version(store)
    try:
        model = store.load(version)
        servable(model.files, model.manifest)
    except Exception as exc:  # ArtifactError, ModelError, or a manifest serve could not read
        raise RollbackError(f"{version} cannot be served: {exc}") from exc
    store.point_to(version)
    return previous
