"""The one way to erase a person: the stores an erasure touches, built from a function's settings.

Serve's `DELETE /v1/profile` (the person asking) and the erase function (an operator asking) both erase through
`connect_eraser`, so the two paths cannot drift apart in what they delete, log, or how long the tombstone lasts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from personalization.privacy import ErasurePath, ErasureRecord, erase_person
from store.erasure_log import ErasureLogStore
from store.profiles import ProfileStore, TableSettings
from store.quarantine import QuarantineStore


class ErasureSettings(Protocol):
    """What a function's configuration must say for it to erase people (serve's and erase's both do)."""

    @property
    def region(self) -> str: ...
    @property
    def profiles_table(self) -> str: ...
    @property
    def quarantine_table(self) -> str: ...
    @property
    def erasure_log_table(self) -> str: ...
    @property
    def tombstone_days(self) -> int: ...
    @property
    def erasure_log_retention_days(self) -> int: ...


@dataclass(frozen=True)
class Eraser:
    profiles: ProfileStore
    quarantine: QuarantineStore
    log: ErasureLogStore
    # Longer than the stream's redelivery window, so no redelivered event outlives it (see store.profiles).
    tombstone_for: timedelta

    def erase(self, pseudonym: str, path: ErasurePath, now: datetime) -> ErasureRecord:
        return erase_person(
            pseudonym,
            path,
            profiles=self.profiles,
            quarantine=self.quarantine,
            log=self.log,
            now=now,
            tombstone_for=self.tombstone_for,
        )


def connect_eraser(settings: ErasureSettings) -> Eraser:
    # The default (patient) timeouts, not the fragment path's: a person asking to be erased can wait for a sure
    # answer, and an operator's run must not give up on a slow read.
    return Eraser(
        profiles=ProfileStore(TableSettings(settings.profiles_table, settings.region)),
        quarantine=QuarantineStore(settings.quarantine_table, settings.region),
        log=ErasureLogStore(
            settings.erasure_log_table, settings.region, timedelta(days=settings.erasure_log_retention_days)
        ),
        tombstone_for=timedelta(days=settings.tombstone_days),
    )
