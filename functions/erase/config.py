"""The erase function's configuration (also the CLI's: devops run it with the function's environment)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from store.settings import FunctionSettings


class EraseConfig(FunctionSettings):
    profiles_table: str
    quarantine_table: str
    erasure_log_table: str
    pepper_parameter: str
    # Longer than the event source mapping's maximum record age (1 day), so no redelivery outlives it.
    tombstone_days: int = Field(default=30, ge=2, validation_alias="ERASURE_TOMBSTONE_DAYS")
    erasure_log_retention_days: int = Field(default=1095, ge=1)

    @property
    def tombstone_for(self) -> timedelta:
        return timedelta(days=self.tombstone_days)

    @property
    def erasure_log_retention(self) -> timedelta:
        return timedelta(days=self.erasure_log_retention_days)
