"""What serve loads once per container (before the SnapStart snapshot): config, models, catalog, stores, rules."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache

from observability import logger
from personalization.catalog import Catalog
from personalization.features import FEATURE_SCHEMA_VERSION
from personalization.models import ModelError, Models, load_models
from personalization.rules import RuleEngine
from serve.config import ServeConfig
from serve.impressions import ImpressionLog
from serve.live_rules import LiveRules
from store.artifacts import ArtifactError, ArtifactStore, ModelVersion
from store.parameters import get_secret
from store.profiles import ProfileStore, TableSettings
from store.rules_source import RulesSource
from store.stream import EventStream, StreamSettings

EMPTY_VERSION = "none"
# An experiment variant may name another model version; a handful is plenty, each holds two small graphs.
VARIANT_MODELS_KEPT = 4


@dataclass
class ServeState:
    config: ServeConfig
    profiles: ProfileStore
    catalog: Catalog
    model_version: str
    model_error: str | None
    models: Models | None = None
    rules: LiveRules | None = None
    artifacts: ArtifactStore | None = None
    impressions: ImpressionLog | None = None
    _variant_models: dict[str, Models | None] = field(default_factory=dict)
    _variant_lock: threading.Lock = field(default_factory=threading.Lock)

    def identity_key(self) -> bytes | None:
        try:
            return get_secret(self.config.identity_key_parameter)
        except Exception:
            logger.exception("identity key unavailable; every visitor is anonymous until it is")
            return None

    def rules_engine(self) -> RuleEngine | None:
        """The rules document in force (None: no document, serve's built-in defaults apply)."""
        return self.rules.current() if self.rules else None

    def models_for(self, version: str | None) -> tuple[Models | None, str]:
        """The models of `version` (an experiment variant's), else the live ones: never raises.

        A variant's version is loaded on first use and kept; one that cannot serve this catalog (missing,
        corrupt, another feature schema, items the catalog lacks) is remembered as unusable and the live
        models answer instead, so a bad experiment set-up degrades to control rather than to an error.
        """
        if version is None or version == self.model_version or self.artifacts is None:
            return self.models, self.model_version
        with self._variant_lock:
            if version not in self._variant_models:
                if len(self._variant_models) >= VARIANT_MODELS_KEPT:
                    self._variant_models.pop(next(iter(self._variant_models)))
                self._variant_models[version] = self._load_variant(version)
            models = self._variant_models[version]
        return (models, version) if models is not None else (self.models, self.model_version)

    def _load_variant(self, version: str) -> Models | None:
        assert self.artifacts is not None
        try:
            model = self.artifacts.load(version)
            if str(model.manifest.get("feature_schema_version")) != FEATURE_SCHEMA_VERSION:
                raise ModelError("another feature schema")
            return load_models(model.files, model.manifest, self.catalog)
        except (ArtifactError, ModelError, KeyError, ValueError) as exc:
            logger.warning("experiment model version unusable; serving the live one", extra={"error": str(exc)})
            return None


def _load_live(artifacts: ArtifactStore) -> tuple[Catalog, str, str | None, Models | None]:
    try:
        model: ModelVersion = artifacts.load()
        catalog = Catalog.from_dict(model.json("catalog.json"))
    except (ArtifactError, KeyError, ValueError) as exc:
        logger.warning("no usable model version; serving an empty catalog", extra={"error": str(exc)})
        return Catalog([]), EMPTY_VERSION, "model_unavailable", None
    schema = str(model.manifest.get("feature_schema_version"))
    if schema != FEATURE_SCHEMA_VERSION:
        # Its models would read vectors this code does not compute; its catalog is still a fine fallback.
        logger.warning(
            "model trained on another feature schema", extra={"model": schema, "serve": FEATURE_SCHEMA_VERSION}
        )
        return catalog, model.version, "unknown_feature_schema", None
    if "recs_model" not in model.manifest:
        return catalog, model.version, None, None  # a catalog-only version
    try:
        models = load_models(model.files, model.manifest, catalog)
    except ModelError as exc:
        logger.warning("model version unusable; serving its catalog", extra={"error": str(exc)})
        return catalog, model.version, "model_unavailable", None
    return catalog, model.version, None, models


@lru_cache(maxsize=1)
def serve_state() -> ServeState:
    config = ServeConfig.from_env()
    profiles = ProfileStore(
        TableSettings(
            config.profiles_table,
            config.region,
            connect_timeout_s=config.profile_connect_timeout_s,
            read_timeout_s=config.profile_read_timeout_s,
            max_retry_attempts=0,
        )
    )
    artifacts = ArtifactStore(config.artifact_bucket, config.region)
    catalog, version, error, models = _load_live(artifacts)
    source = RulesSource(config.artifact_bucket, config.region, config.rules_max_age_s)
    rules = LiveRules(source.fetch, catalog, retry_after_s=config.rules_max_age_s)
    rules.current()  # compile the document now, before the snapshot, not on the first request
    impressions = None
    if config.stream_name:
        impressions = ImpressionLog(EventStream.connect(StreamSettings(config.stream_name, config.region)))
    return ServeState(config, profiles, catalog, version, error, models, rules, artifacts, impressions)
