"""The serve function's configuration, read from the environment once per container."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

from personalization.profile import FoldSettings
from store.region import region_from


class ServeConfig(BaseModel):
    profiles_table: str
    identity_key_parameter: str
    artifact_bucket: str
    region: str
    # The profile read is on the page's critical path: fail fast and fall back rather than wait.
    profile_connect_timeout_s: float = Field(default=0.02, gt=0)
    profile_read_timeout_s: float = Field(default=0.03, gt=0)
    affinity_half_life_hours: float = Field(default=168.0, gt=0)
    # How stale the rules document may be: a merchandiser's change is live within this many seconds.
    rules_max_age_s: int = Field(default=60, ge=1)
    # Where impressions go (the interaction stream); None: impressions are not logged.
    stream_name: str | None = None
    public_max_age_s: int = Field(default=60, ge=0)
    stale_while_revalidate_s: int = Field(default=300, ge=0)

    @classmethod
    def from_env(cls) -> ServeConfig:
        env = os.environ
        return cls(
            profiles_table=env["PROFILES_TABLE"],
            identity_key_parameter=env["IDENTITY_KEY_PARAMETER"],
            artifact_bucket=env["ARTIFACT_BUCKET"],
            region=region_from(env),
            profile_connect_timeout_s=float(env.get("PROFILE_CONNECT_TIMEOUT_S", "0.02")),
            profile_read_timeout_s=float(env.get("PROFILE_READ_TIMEOUT_S", "0.03")),
            affinity_half_life_hours=float(env.get("AFFINITY_HALF_LIFE_HOURS", "168")),
            rules_max_age_s=int(env.get("RULES_MAX_AGE_S", "60")),
            stream_name=env.get("STREAM_NAME") or None,
        )

    @property
    def fold_settings(self) -> FoldSettings:
        return FoldSettings(affinity_half_life_ms=int(self.affinity_half_life_hours * 3600 * 1000))
