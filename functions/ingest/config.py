"""The ingest function's configuration, read from the environment once per container."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field

from store.settings import FunctionSettings


class IngestConfig(FunctionSettings):
    profiles_table: str
    quarantine_table: str
    pepper_parameter: str
    profile_retention_days: int = Field(default=180, ge=1)
    quarantine_retention_days: int = Field(default=14, ge=1)
    affinity_half_life_hours: float = Field(default=168.0, gt=0)
    # The archive (ingest.archiving): the Firehose delivery stream, and its bucket for when Firehose is down.
    # Both unset: nothing is archived.
    archive_delivery_stream: str | None = None
    archive_bucket: str | None = None
    # Trending now (ingest.trending): its table (unset: not kept) and the half-life of an event's weight in it.
    trending_table: str | None = None
    trending_half_life_hours: float = Field(default=1.0, gt=0)
    # Conflicting writes of one profile retried before the batch gives up on it; not read from the environment.
    max_conflict_retries: ClassVar[int] = 5

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.profile_retention_days)

    @property
    def quarantine_retention(self) -> timedelta:
        return timedelta(days=self.quarantine_retention_days)
