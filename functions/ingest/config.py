"""The ingest function's configuration, read from the environment once per container."""

from __future__ import annotations

import os
from datetime import timedelta

from pydantic import BaseModel, Field

from store.region import region_from


class IngestConfig(BaseModel):
    profiles_table: str
    quarantine_table: str
    pepper_parameter: str
    region: str
    profile_retention_days: int = Field(default=180, ge=1)
    quarantine_retention_days: int = Field(default=14, ge=1)
    affinity_half_life_hours: float = Field(default=168.0, gt=0)
    max_conflict_retries: int = Field(default=5, ge=1)

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.profile_retention_days)

    @property
    def quarantine_retention(self) -> timedelta:
        return timedelta(days=self.quarantine_retention_days)

    @classmethod
    def from_env(cls) -> IngestConfig:
        env = os.environ
        return cls(
            profiles_table=env["PROFILES_TABLE"],
            quarantine_table=env["QUARANTINE_TABLE"],
            pepper_parameter=env["PEPPER_PARAMETER"],
            region=region_from(env),
            profile_retention_days=int(env.get("PROFILE_RETENTION_DAYS", "180")),
            quarantine_retention_days=int(env.get("QUARANTINE_RETENTION_DAYS", "14")),
            affinity_half_life_hours=float(env.get("AFFINITY_HALF_LIFE_HOURS", "168")),
        )
