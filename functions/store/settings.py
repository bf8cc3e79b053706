"""What every function's configuration shares: one typed model, read from the environment once per container."""

from __future__ import annotations

import os
from typing import Self

from pydantic import AliasChoices, AliasGenerator, BaseModel, ConfigDict, Field

from store.region import DEFAULT_REGION


class FunctionSettings(BaseModel):
    """A function's configuration: each field is read from the environment variable of its upper-cased name.

    A field whose variable is named otherwise says so with `validation_alias`. Names are case-sensitive, there is
    no prefix and no .env file: the template's Environment is the whole truth. An empty variable counts as unset
    (its default applies, or a required field is reported missing), as the region always did.
    """

    # A plain pydantic model, not pydantic-settings' BaseSettings: all that did here was read os.environ into the
    # model (case-sensitive names, no prefix, no .env, empty as unset: from_env below), and its import cost every
    # cold start 11 ms, 2% of serve's 600 ms budget. The variables' values are all scalars, which pydantic parses
    # from strings itself. As BaseSettings did, defaults are validated too.
    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=str.upper),
        extra="ignore",
        validate_default=True,
    )

    # Read the way the SDKs read it (store.region.region_from): Lambda sets AWS_REGION; a developer's shell or the
    # local stack usually sets AWS_DEFAULT_REGION.
    region: str = Field(default=DEFAULT_REGION, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))

    @classmethod
    def from_env(cls) -> Self:
        return cls.model_validate({name: value for name, value in os.environ.items() if value != ""})
