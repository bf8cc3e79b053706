"""The purge use case: one run over the archive, rewriting it without erased people's events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from personalization.purge import PurgeRecord, purge_archive
from store.archive import ArchiveBucket, PurgeStateObject
from store.erasure_log import ErasureLogStore
from store.profiles import ProfileStore


@dataclass(frozen=True)
class PurgeDeps:
    # Read for the tombstones: who is erased, and since when.
    profiles: ProfileStore
    archive: ArchiveBucket
    log: ErasureLogStore
    state: PurgeStateObject


def purge(deps: PurgeDeps, now: datetime) -> PurgeRecord:
    """Purge what the tombstones name; the receipt holds counts only."""
    return purge_archive(tombstones=deps.profiles, archive=deps.archive, log=deps.log, state=deps.state, now=now)
