"""The collector's response shapes: one result per submitted event, in the order they were sent."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from store.stream import FailureReason


class AcceptedRecord(BaseModel):
    index: int
    status: Literal["accepted"] = "accepted"
    event_id: str


class RejectedRecord(BaseModel):
    """Refused for good: sending the same event again gets the same answer."""

    index: int
    status: Literal["rejected"] = "rejected"
    field: str
    reason: str = Field(
        description="no_consent, not_allowed (a type only serve writes), or one of the schema's reason codes"
    )
    message: str


class FailedRecord(BaseModel):
    """Valid but not written (the stream throttled or was unreachable): send it again, with this event_id."""

    index: int
    status: Literal["failed"] = "failed"
    reason: FailureReason
    # The id to resend it with, so that it counts once even if the failed attempt did reach the stream.
    event_id: str | None = None


RecordResult = Annotated[AcceptedRecord | RejectedRecord | FailedRecord, Field(discriminator="status")]


class CollectResponse(BaseModel):
    accepted: int
    rejected: int
    failed: int
    results: list[RecordResult]

    @classmethod
    def of(cls, results: list[AcceptedRecord | RejectedRecord | FailedRecord]) -> CollectResponse:
        return cls(
            accepted=sum(isinstance(r, AcceptedRecord) for r in results),
            rejected=sum(isinstance(r, RejectedRecord) for r in results),
            failed=sum(isinstance(r, FailedRecord) for r in results),
            results=results,
        )


class ErrorResponse(BaseModel):
    """A request refused as a whole (400 malformed body, 413 too large): nothing of it was kept."""

    error: Literal["invalid_request", "payload_too_large"]
    message: str
