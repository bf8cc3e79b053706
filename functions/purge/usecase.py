"""The purge use case: one run over the archive, rewriting it without erased people's events."""

from __future__ import annotations

from datetime import datetime

from personalization.purge import PurgeRecord, purge_archive
from purge.wiring import PurgeDeps


def purge(deps: PurgeDeps, now: datetime) -> PurgeRecord:
    """Purge what the tombstones name; the receipt holds counts only."""
    return purge_archive(tombstones=deps.profiles, archive=deps.archive, log=deps.log, state=deps.state, now=now)
