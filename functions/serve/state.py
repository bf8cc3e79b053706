"""What serve loads once per container (before the SnapStart snapshot): config, models, catalog, stores."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from observability import logger
from personalization.catalog import Catalog
from personalization.features import FEATURE_SCHEMA_VERSION
from personalization.models import ModelError, Models, load_models
from serve.config import ServeConfig
from store.artifacts import ArtifactError, ArtifactStore
from store.parameters import get_secret
from store.profiles import ProfileStore, TableSettings

EMPTY_VERSION = "none"


@dataclass
class ServeState:
    config: ServeConfig
    profiles: ProfileStore
    catalog: Catalog
    model_version: str
    model_error: str | None
    models: Models | None = None

    def identity_key(self) -> bytes | None:
        try:
            return get_secret(self.config.identity_key_parameter)
        except Exception:
            logger.exception("identity key unavailable; every visitor is anonymous until it is")
            return None


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
    try:
        model = ArtifactStore(config.artifact_bucket, config.region).load()
        catalog = Catalog.from_dict(model.json("catalog.json"))
    except (ArtifactError, KeyError, ValueError) as exc:
        logger.warning("no usable model version; serving an empty catalog", extra={"error": str(exc)})
        return ServeState(config, profiles, Catalog([]), EMPTY_VERSION, "model_unavailable")
    schema = str(model.manifest.get("feature_schema_version"))
    if schema != FEATURE_SCHEMA_VERSION:
        # Its models would read vectors this code does not compute; its catalog is still a fine fallback.
        logger.warning(
            "model trained on another feature schema", extra={"model": schema, "serve": FEATURE_SCHEMA_VERSION}
        )
        return ServeState(config, profiles, catalog, model.version, "unknown_feature_schema")
    if "recs_model" not in model.manifest:
        return ServeState(config, profiles, catalog, model.version, None)  # a catalog-only version
    try:
        models = load_models(model.files, model.manifest, catalog)
    except ModelError as exc:
        logger.warning("model version unusable; serving its catalog", extra={"error": str(exc)})
        return ServeState(config, profiles, catalog, model.version, "model_unavailable")
    return ServeState(config, profiles, catalog, model.version, None, models)
