"""The purge function's configuration (also the CLI's: devops run it with the function's environment)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from store.settings import FunctionSettings


class PurgeConfig(FunctionSettings):
    profiles_table: str
    erasure_log_table: str
    archive_bucket: str
    erasure_log_retention_days: int = Field(default=1095, ge=1)

    @property
    def erasure_log_retention(self) -> timedelta:
        return timedelta(days=self.erasure_log_retention_days)
