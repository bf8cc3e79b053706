"""The erase function's configuration (also the CLI's: devops run it with the function's environment)."""

from __future__ import annotations

import os
from datetime import timedelta

from pydantic import BaseModel, Field

from store.region import region_from


class EraseConfig(BaseModel):
    profiles_table: str
    quarantine_table: str
    erasure_log_table: str
    pepper_parameter: str
    region: str
    # Longer than the event source mapping's maximum record age (1 day), so no redelivery outlives it.
    tombstone_days: int = Field(default=30, ge=2)
    erasure_log_retention_days: int = Field(default=1095, ge=1)

    @property
    def tombstone_for(self) -> timedelta:
        return timedelta(days=self.tombstone_days)

    @property
    def erasure_log_retention(self) -> timedelta:
        return timedelta(days=self.erasure_log_retention_days)

    @classmethod
    def from_env(cls) -> EraseConfig:
        env = os.environ
        return cls(
            profiles_table=env["PROFILES_TABLE"],
            quarantine_table=env["QUARANTINE_TABLE"],
            erasure_log_table=env["ERASURE_LOG_TABLE"],
            pepper_parameter=env["PEPPER_PARAMETER"],
            region=region_from(env),
            tombstone_days=int(env.get("ERASURE_TOMBSTONE_DAYS", "30")),
            erasure_log_retention_days=int(env.get("ERASURE_LOG_RETENTION_DAYS", "1095")),
        )
