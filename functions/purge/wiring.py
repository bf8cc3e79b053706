"""Wiring for the purge function and CLI: config and stores, built once per container."""

from __future__ import annotations

from functools import lru_cache

from purge.config import PurgeConfig
from purge.usecase import PurgeDeps
from store.archive import ArchiveBucket, ArchiveSettings, PurgeStateObject
from store.erasure_log import ErasureLogStore
from store.profiles import ProfileStore, TableSettings


@lru_cache(maxsize=1)
def purge_deps() -> PurgeDeps:
    config = PurgeConfig.from_env()
    # No delivery stream: the purge only reads and rewrites the bucket. Botocore's standard retries (3 attempts)
    # for each read and write: a run has minutes, and the next run repeats whatever this one could not finish.
    settings = ArchiveSettings(delivery_stream="", bucket=config.archive_bucket, region=config.region)
    return PurgeDeps(
        profiles=ProfileStore(TableSettings(config.profiles_table, config.region)),
        archive=ArchiveBucket.connect(settings, retries=3),
        log=ErasureLogStore(config.erasure_log_table, config.region, config.erasure_log_retention),
        state=PurgeStateObject.connect(settings),
    )
