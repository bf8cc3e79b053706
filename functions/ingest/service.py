"""Wiring for the ingest function: config, stores and secrets, built once per container."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ingest.archiving import Archiver
from ingest.batch import BatchWriter
from ingest.config import IngestConfig
from personalization.profile import FoldSettings
from store.archive import ArchiveBucket, ArchiveSettings, FirehoseArchive
from store.parameters import get_secret
from store.profiles import ProfileStore, TableSettings
from store.quarantine import QuarantineStore


@dataclass
class IngestService:
    config: IngestConfig
    writer: BatchWriter

    @property
    def pepper(self) -> bytes:
        # Read through the powertools cache on every batch, so a rotated pepper is picked up within its TTL.
        return get_secret(self.config.pepper_parameter)


# Profiles written side by side per batch, and as many pooled connections to carry them.
WRITE_WORKERS = 16


def archiver(config: IngestConfig) -> Archiver | None:
    if not config.archive_delivery_stream or not config.archive_bucket:
        return None
    settings = ArchiveSettings(config.archive_delivery_stream, config.archive_bucket, config.region)
    # The fallback object is the last chance before the records are reported: let botocore retry it twice more.
    return Archiver(FirehoseArchive.connect(settings), ArchiveBucket.connect(settings, retries=3))


@lru_cache(maxsize=1)
def ingest_service() -> IngestService:
    config = IngestConfig.from_env()
    writer = BatchWriter(
        profiles=ProfileStore(TableSettings(config.profiles_table, config.region, max_pool_connections=WRITE_WORKERS)),
        quarantine=QuarantineStore(config.quarantine_table, config.region, config.quarantine_retention),
        fold_settings=FoldSettings(affinity_half_life_ms=int(config.affinity_half_life_hours * 3600 * 1000)),
        retention=config.retention,
        max_conflict_retries=config.max_conflict_retries,
        max_write_workers=WRITE_WORKERS,
        archiver=archiver(config),
    )
    return IngestService(config, writer)
