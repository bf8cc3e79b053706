"""The serve function's configuration, read from the environment once per container."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from personalization.profile import FoldSettings
from store.settings import FunctionSettings


class ServeConfig(FunctionSettings):
    profiles_table: str
    identity_key_parameter: str
    artifact_bucket: str
    # The profile read is on the page's critical path: fail fast and fall back rather than wait.
    profile_connect_timeout_s: float = Field(default=0.02, gt=0)
    profile_read_timeout_s: float = Field(default=0.03, gt=0)
    affinity_half_life_hours: float = Field(default=168.0, gt=0)
    # How stale the rules document may be: a merchandiser's change is live within this many seconds.
    rules_max_age_s: int = Field(default=60, ge=1)
    # How stale models/current.json may be: a promoted (or rolled back) version is live within this many seconds.
    model_max_age_s: float = Field(default=60, gt=0)
    # Where impressions go (the interaction stream); None (unset or empty): impressions are not logged.
    stream_name: str | None = None
    # The privacy routes (serve/privacy.py): a person's own access and erasure.
    quarantine_table: str
    erasure_log_table: str
    tombstone_days: int = Field(default=30, ge=2, validation_alias="ERASURE_TOMBSTONE_DAYS")
    erasure_log_retention_days: int = Field(default=1095, ge=1)
    # Trending now (serve.trending): the table ingest writes (unset: the slot answers with popularity, flagged),
    # and the half-life its scores decay with.
    trending_table: str | None = None
    trending_half_life_hours: float = Field(default=1.0, gt=0)
    # How long an item a person dismissed ("not interested") stays out of their fragments.
    dismiss_days: float = Field(default=30.0, gt=0)
    # Cache-Control of public fragments; not read from the environment.
    public_max_age_s: ClassVar[int] = 60
    stale_while_revalidate_s: ClassVar[int] = 300
    # The trending slot changes by the second: a short shared life, and the rows are read at most this often.
    trending_max_age_s: ClassVar[int] = 2

    @property
    def dismiss_ms(self) -> int:
        return int(self.dismiss_days * 24 * 3600 * 1000)

    @property
    def fold_settings(self) -> FoldSettings:
        return FoldSettings(affinity_half_life_ms=int(self.affinity_half_life_hours * 3600 * 1000))
