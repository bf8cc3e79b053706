"""Wiring for the ingest function: config, stores and the pepper, built once per container."""

from __future__ import annotations

from functools import lru_cache, partial

from ingest.archiving import Archiver
from ingest.batch import BatchWriter
from ingest.config import IngestConfig
from ingest.trending import TrendingWriter
from ingest.usecase import IngestDeps
from personalization.profile import FoldSettings
from store.archive import ArchiveBucket, ArchiveSettings, FirehoseArchive
from store.parameters import get_secret
from store.profiles import ProfileStore, TableSettings
from store.quarantine import QuarantineStore
from store.trending import TrendingStore

# Profiles written side by side per batch, and as many pooled connections to carry them.
WRITE_WORKERS = 16


def archiver(config: IngestConfig) -> Archiver | None:
    if not config.archive_delivery_stream or not config.archive_bucket:
        return None
    settings = ArchiveSettings(config.archive_delivery_stream, config.archive_bucket, config.region)
    # The fallback object is the last chance before the records are reported: let botocore retry it twice more.
    return Archiver(FirehoseArchive.connect(settings), ArchiveBucket.connect(settings, retries=3))


def trending(config: IngestConfig) -> TrendingWriter | None:
    if not config.trending_table:
        return None
    half_life_ms = int(config.trending_half_life_hours * 3600 * 1000)
    return TrendingWriter(TrendingStore(config.trending_table, config.region), half_life_ms)


@lru_cache(maxsize=1)
def ingest_deps() -> IngestDeps:
    config = IngestConfig.from_env()
    writer = BatchWriter(
        profiles=ProfileStore(TableSettings(config.profiles_table, config.region, max_pool_connections=WRITE_WORKERS)),
        quarantine=QuarantineStore(config.quarantine_table, config.region, config.quarantine_retention),
        fold_settings=FoldSettings(affinity_half_life_ms=int(config.affinity_half_life_hours * 3600 * 1000)),
        retention=config.retention,
        max_conflict_retries=config.max_conflict_retries,
        max_write_workers=WRITE_WORKERS,
        archiver=archiver(config),
        trending=trending(config),
    )
    return IngestDeps(writer=writer, pepper=partial(get_secret, config.pepper_parameter), retention=config.retention)
