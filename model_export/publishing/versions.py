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
    def of(cls, version: str, manifest: Any, live: bool) -> VersionRow:
        """Whatever the manifest holds: a field that is missing or not of its type is shown as unknown."""
        evaluation = _part(manifest, "evaluation")
        promotion = _part(manifest, "promotion")
        return cls(
            version=version,
            live=live,
            created=_text(_part(manifest).get("created")),
            events=_int(_part(manifest, "metrics").get("events")),
            window_end=_text(_part(_part(manifest, "data"), "window").get("end")),
            ndcg=_float(_part(evaluation, "candidate").get("ndcg")),
            compared_with=_text(evaluation.get("compared_with")),
            live_ndcg=_float(_part(evaluation, "live").get("ndcg")),
            decision=_text(promotion.get("decision")),
            reason=_text(promotion.get("reason")),
            psi=_float(_part(manifest, "drift").get("psi_max")),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _part(value: Any, key: str | None = None) -> dict[str, Any]:
    found = value.get(key) if key is not None and isinstance(value, dict) else value
    return found if isinstance(found, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


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
