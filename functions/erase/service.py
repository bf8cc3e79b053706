"""Wiring for the erase function and CLI: the request shape, config, stores and pepper, built once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from erase.config import EraseConfig
from personalization.events import MAX_ID_LEN, PSEUDONYM_PATTERN
from personalization.identity import pseudonymize
from personalization.privacy import ErasurePath, ErasureRecord, erase_person
from store.erasure_log import ErasureLogStore
from store.parameters import get_secret
from store.profiles import ProfileStore, TableSettings
from store.quarantine import QuarantineStore


class InvalidEraseRequest(ValueError):
    """The request names nobody, or two people. The message never repeats the input (it is a raw id)."""


class EraseRequest(BaseModel):
    """Who to erase: the raw id the shop knows them by, or the pseudonym when that is all there is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN)] | None = None
    pseudonym: Annotated[str, Field(pattern=PSEUDONYM_PATTERN)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EraseRequest:
        if (self.user_id is None) == (self.pseudonym is None):
            raise ValueError("give exactly one of user_id and pseudonym")
        return self


def parse_request(event: Any) -> EraseRequest:
    try:
        return EraseRequest.model_validate(event)
    except ValidationError as exc:
        # Field names and reasons only: pydantic's own message quotes the input, which may be the raw id.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'request'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidEraseRequest(problems) from None


@dataclass
class EraseService:
    config: EraseConfig
    profiles: ProfileStore
    quarantine: QuarantineStore
    log: ErasureLogStore

    def pseudonym(self, request: EraseRequest) -> str:
        if request.pseudonym is not None:
            return request.pseudonym
        assert request.user_id is not None
        # The same HMAC ingest applies, so the id maps to the key its profile is stored under.
        return pseudonymize(get_secret(self.config.pepper_parameter), request.user_id)

    def erase(self, request: EraseRequest, path: ErasurePath, now: datetime | None = None) -> ErasureRecord:
        return erase_person(
            self.pseudonym(request),
            path,
            profiles=self.profiles,
            quarantine=self.quarantine,
            log=self.log,
            now=now or datetime.now(UTC),
            tombstone_for=self.config.tombstone_for,
        )


@lru_cache(maxsize=1)
def erase_service() -> EraseService:
    config = EraseConfig.from_env()
    return EraseService(
        config=config,
        profiles=ProfileStore(TableSettings(config.profiles_table, config.region)),
        quarantine=QuarantineStore(config.quarantine_table, config.region),
        log=ErasureLogStore(config.erasure_log_table, config.region, config.erasure_log_retention),
    )
