"""The collect function's configuration, read from the environment once per container."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from store.settings import FunctionSettings
from store.stream import StreamSettings


class CollectConfig(FunctionSettings):
    stream_name: str
    identity_key_parameter: str
    # Ingest refuses events older than a profile's retention; the collector refuses them at the door instead of
    # letting them reach the quarantine. An anonymous id is signed for as long: a profile cannot outlive it.
    profile_retention_days: int = Field(default=180, ge=1)
    # A browser is waiting on the answer (keepalive or not): fail over to a retry rather than hang.
    stream_connect_timeout_s: float = Field(default=0.25, gt=0)
    stream_read_timeout_s: float = Field(default=0.5, gt=0)

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.profile_retention_days)

    @property
    def anonymous_id_ttl_s(self) -> int:
        return int(self.retention.total_seconds())

    @property
    def stream_settings(self) -> StreamSettings:
        return StreamSettings(
            self.stream_name,
            self.region,
            connect_timeout_s=self.stream_connect_timeout_s,
            read_timeout_s=self.stream_read_timeout_s,
        )
