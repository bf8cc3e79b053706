"""One model version as serve answers with it: catalog, models and the rules compiled against that catalog.

A snapshot is built whole and never changed: a new version, or a new rules document, builds a new one that
replaces the old with one reference assignment. A request takes the snapshot once and uses only it, so no
request sees one version's catalog with another's models or rules.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from observability import logger
from personalization.catalog import Catalog, CatalogError
from personalization.features import FEATURE_SCHEMA_VERSION
from personalization.fragments import Reason
from personalization.models import Models, Sessions, load_models, load_sessions
from personalization.rules import RuleEngine
from store.artifacts import ArtifactError, ArtifactInvalid, ModelVersion, PendingVersion

NO_VERSION = "none"
# An experiment variant may name another model version; a handful is plenty, each holds two small graphs.
VARIANT_MODELS_KEPT = 4


class ArtifactSource(Protocol):
    def current_version(self) -> str: ...

    def load(self, version: str | None = None) -> ModelVersion: ...

    def fetch(self, version: str | None = None) -> PendingVersion: ...


class VersionRefused(Exception):
    """A version serve cannot use at all. `lasting`: asking again would meet the same bytes (a wrong shape or
    a digest mismatch), as opposed to a read that failed and may succeed later."""

    def __init__(self, version: str, message: str, lasting: bool) -> None:
        super().__init__(f"{version}: {message}")
        self.version = version
        self.lasting = lasting


class VariantModels:
    """Experiment variants' model versions, loaded against one snapshot's catalog on first use and kept.

    A version that cannot serve this catalog (missing, corrupt, another feature schema, items the catalog
    lacks) is remembered as unusable and the live models answer instead, so a bad experiment set-up degrades
    to control rather than to an error.
    """

    def __init__(self, load: Callable[[str], Models]) -> None:
        self._load = load
        self._kept: dict[str, Models | None] = {}
        self._lock = threading.Lock()

    def get(self, version: str) -> Models | None:
        with self._lock:
            if version not in self._kept:
                if len(self._kept) >= VARIANT_MODELS_KEPT:
                    self._kept.pop(next(iter(self._kept)))
                self._kept[version] = self._try(version)
            return self._kept[version]

    def _try(self, version: str) -> Models | None:
        try:
            return self._load(version)
        except Exception as exc:  # whatever the bucket holds, an experiment never takes a page down
            logger.warning("experiment model version unusable; serving the live one", extra={"error": str(exc)})
            return None


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: str
    catalog: Catalog
    # Why this version answers with the popular fallback (None: it serves as published).
    error: Reason | None = None
    models: Models | None = None
    rules: RuleEngine | None = None
    variants: VariantModels | None = field(default=None, compare=False)

    @property
    def rules_version(self) -> str:
        return self.rules.version if self.rules else NO_VERSION

    def models_for(self, version: str | None) -> tuple[Models | None, str]:
        """The models of `version` (an experiment variant's), else this snapshot's: never raises."""
        if version is None or version == self.version or self.variants is None:
            return self.models, self.version
        models = self.variants.get(version)
        return (models, version) if models is not None else (self.models, self.version)

    def with_rules(self, rules: RuleEngine | None) -> Snapshot:
        return Snapshot(self.version, self.catalog, self.error, self.models, rules, self.variants)


def empty(error: Reason = Reason.MODEL_UNAVAILABLE) -> Snapshot:
    """No usable version: an empty catalog, so fragments are empty and flagged, never an error."""
    return Snapshot(NO_VERSION, Catalog([]), error)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a version loads: loading makes millions of objects (ids, their
    positions, the rules' item sets) that all live on, and the collector would walk them again and again as they
    pile up (about a second of a 500,000-item version's init) to find no garbage. What garbage the load leaves is
    collected after it, at the next threshold."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sessions(pending: PendingVersion) -> Sessions:
    """The version's graphs loaded, each as soon as it has arrived (ModelError or ArtifactError otherwise)."""
    spec = pending.manifest
    graphs = [info.file for info in (spec.segment_model, spec.recs_model) if info is not None]
    return load_sessions({name: pending.file(name) for name in graphs}, spec)


def _models_of(model: ModelVersion, catalog: Catalog) -> Models:
    spec = model.manifest
    if spec.feature_schema_version != FEATURE_SCHEMA_VERSION:
        raise ArtifactInvalid(f"feature schema {spec.feature_schema_version}, not {FEATURE_SCHEMA_VERSION}")
    return load_models(model.files, spec, catalog)


def load_snapshot(
    artifacts: ArtifactSource, version: str, compile_rules: Callable[[Catalog], RuleEngine | None]
) -> Snapshot:
    """`version` whole, with the rules in force compiled against its catalog.

    Raises VersionRefused when it has no usable catalog. A version whose models cannot serve (another feature
    schema, a graph that does not load) still yields a snapshot, flagged, that serves its catalog's popular
    items; a caller that already serves a healthy version keeps that one instead (serve.rollout).
    """
    with collector_paused():
        return _load_snapshot(artifacts, version, compile_rules)


@contextmanager
def _refusing(version: str) -> Iterator[None]:
    """What reading the version's files raises, as the version's refusal: lasting when its bytes are wrong (a
    wrong shape, a digest mismatch: the same next time), not when they could not be read."""
    try:
        yield
    except (ArtifactInvalid, CatalogError) as exc:
        raise VersionRefused(version, str(exc), lasting=True) from None
    except ArtifactError as exc:
        raise VersionRefused(version, str(exc), lasting=False) from None


def _load_snapshot(
    artifacts: ArtifactSource, version: str, compile_rules: Callable[[Catalog], RuleEngine | None]
) -> Snapshot:
    with _refusing(version):
        pending = artifacts.fetch(version)
    spec = pending.manifest
    schema = spec.feature_schema_version
    usable = schema == FEATURE_SCHEMA_VERSION and spec.recs_model is not None
    # The catalog parses as soon as it has arrived, while the graphs still download; they load on a thread as
    # they arrive (onnxruntime builds a session mostly without the GIL). Nothing is used before every file of
    # the version has matched its sha256 (complete()).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx") as pool:
        sessions = pool.submit(_sessions, pending) if usable else None
        with _refusing(version):
            catalog = Catalog.from_bytes(pending.file(spec.catalog_file))
            catalog.relative_prices  # noqa: B018  # computed now, at load, not by the first request that needs it
        # The rules compile against the catalog while the graphs still arrive and load on the other threads.
        try:
            rules = compile_rules(catalog)
        except Exception as exc:
            raise VersionRefused(
                version, f"the rules in force do not compile against its catalog: {exc}", True
            ) from None
        with _refusing(version):
            model = pending.complete()
        error: Reason | None = None
        models: Models | None = None
        if schema != FEATURE_SCHEMA_VERSION:
            # Its models would read vectors this code does not compute; its catalog is still a fine fallback.
            logger.warning(
                "model trained on another feature schema", extra={"model": schema, "serve": FEATURE_SCHEMA_VERSION}
            )
            error = Reason.UNKNOWN_FEATURE_SCHEMA
        elif sessions is not None:
            try:
                models = load_models(model.files, spec, catalog, sessions.result())
            except Exception as exc:  # ModelError, or whatever a hostile graph provokes in onnxruntime
                logger.warning("model version unusable; serving its catalog", extra={"error": str(exc)[:2000]})
                error = Reason.MODEL_UNAVAILABLE
    variants = VariantModels(lambda other: _models_of(artifacts.load(other), catalog))
    return Snapshot(version, catalog, error, models, rules, variants)
