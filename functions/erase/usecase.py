"""The erase use case: who an erasure request names, and erasing them (the handler and the CLI both call it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from personalization.events import MAX_ID_LEN, PSEUDONYM_PATTERN
from personalization.identity import pseudonymize
from personalization.privacy import ErasurePath, ErasureRecord
from store.erasure import Eraser


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


@dataclass(frozen=True)
class EraseDeps:
    eraser: Eraser
    # Read through the powertools cache on each call, so a rotated pepper is picked up within its TTL.
    pepper: Callable[[], bytes]


def pseudonym_of(request: EraseRequest, pepper: Callable[[], bytes]) -> str:
    if request.pseudonym is not None:
        return request.pseudonym
    assert request.user_id is not None
    # The same HMAC ingest applies, so the id maps to the key its profile is stored under.
    return pseudonymize(pepper(), request.user_id)


def erase(request: EraseRequest, path: ErasurePath, deps: EraseDeps, now: datetime) -> ErasureRecord:
    """Erase the person the request names; the receipt names no one."""
    return deps.eraser.erase(pseudonym_of(request, deps.pepper), path, now)
