"""What every function's configuration shares: one typed model, read from the environment once per container."""

from __future__ import annotations

from typing import Self

from pydantic import AliasChoices, AliasGenerator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from store.region import DEFAULT_REGION


class FunctionSettings(BaseSettings):
    """A function's configuration: each field is read from the environment variable of its upper-cased name.

    A field whose variable is named otherwise says so with `validation_alias`. Names are case-sensitive, there is
    no prefix and no .env file: the template's Environment is the whole truth. An empty variable counts as unset
    (its default applies, or a required field is reported missing), as the region always did.
    """

    model_config = SettingsConfigDict(
        alias_generator=AliasGenerator(validation_alias=str.upper),
        case_sensitive=True,
        env_prefix="",
        env_file=None,
        env_ignore_empty=True,
        extra="ignore",
    )

    # Read the way the SDKs read it (store.region.region_from): Lambda sets AWS_REGION; a developer's shell or the
    # local stack usually sets AWS_DEFAULT_REGION.
    region: str = Field(default=DEFAULT_REGION, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))

    @classmethod
    def from_env(cls) -> Self:
        return cls()
