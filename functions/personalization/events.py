"""The one interaction-event schema, and the parser that turns raw stream bytes into an event or a reason.

Ingest, the demo producer, the trainer's dataset adapter and the tests all use this module, so a field means
the same thing everywhere.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from personalization.identity import pseudonymize

SCHEMA_VERSION = 1
PEPPER_CONTEXT = "pepper"
MAX_RECORD_BYTES = 32 * 1024
MAX_FUTURE = timedelta(minutes=5)
# Caps that keep one record from bloating a profile: no real id, category or page path is longer.
MAX_ID_LEN = 128
MAX_TEXT_LEN = 256
MAX_PRICE = 1_000_000.0
MAX_QUANTITY = 10_000


class EventType(StrEnum):
    VIEW_PRODUCT = "view_product"
    ADD_TO_CART = "add_to_cart"
    REMOVE_FROM_CART = "remove_from_cart"
    PURCHASE = "purchase"
    SEARCH = "search"
    PAGE_VIEW = "page_view"
    # What serve showed (slot, items, variant): the exposure log experiments are evaluated from. Not folded.
    IMPRESSION = "impression"
    # "Not interested": the person dismissed a recommended item. Serve leaves it out of their fragments for a
    # while, and the fold counts it against the item's category.
    DISMISS = "dismiss"
    # The person's consent choice changed; carries the new state. Accepted even without analytics consent,
    # because a withdrawal must reach the profile to take effect.
    CONSENT = "consent"


# As module globals, for checks made on every event: reading EventType.X goes through the enum's metaclass.
_IMPRESSION = EventType.IMPRESSION
_CONSENT = EventType.CONSENT
# What a browser may send (through the collector): everything but serve's own exposure log. The one list of it.
BROWSER_EVENT_TYPES = frozenset(EventType) - {EventType.IMPRESSION}
ITEM_EVENT_TYPES = frozenset(
    {EventType.VIEW_PRODUCT, EventType.ADD_TO_CART, EventType.REMOVE_FROM_CART, EventType.PURCHASE, EventType.DISMISS}
)

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN)]
Text = Annotated[str, Field(max_length=MAX_TEXT_LEN)]
# HMAC-SHA256 hex: the form every stored user id has.
PSEUDONYM_PATTERN = r"^[0-9a-f]{64}$"
MAX_IMPRESSION_ITEMS = 50


_PSEUDONYM = re.compile(PSEUDONYM_PATTERN)

# The fields whose offending value a rejection message may show (to whoever reads the quarantine, or to the
# sender). Never an identifier of a person, never a field the schema does not define (it may hold anything),
# never a whole object: the value of anything else is left out.
ECHOED_FIELDS = frozenset(
    {
        "type",
        "ts",
        "price",
        "quantity",
        "category",
        "item_id",
        "event_id",
        "session_id",
        "schema_version",
        "pseudonymous",
        "consent.analytics",
        "consent.personalization",
        "context.device",
        "context.country",
        "context.page",
        "context.channel",
        "impression.slot",
        "impression.experiment",
        "impression.variant",
        "impression.model_version",
        "impression.rules_version",
    }
)


class Reason(StrEnum):
    """Why a record was rejected: a machine-readable code, one metric each."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"


class Context(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Text | None = None
    referrer: Text | None = None
    country: Annotated[str, Field(max_length=8)] | None = None
    page: Text | None = None
    # Minutes the visitor's clock is ahead of UTC (JavaScript: -new Date().getTimezoneOffset()): the profile
    # keeps a local time-of-day mix, and the UTC ts alone cannot say what time it was for the visitor.
    utc_offset_min: Annotated[int, Field(ge=-12 * 60, le=14 * 60)] | None = None
    # How the visitor came (personalization.context.Channel), stamped by the collector from the Referer.
    channel: Literal["search", "social", "email", "campaign", "referral", "direct"] | None = None


class Consent(BaseModel):
    # Strict: consent is the JSON literal true, never a value pydantic would coerce ("yes", 1, "on"). The
    # consent check for malformed records reads it the same way, so both paths agree on who consented.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    analytics: bool
    personalization: bool


class ConsentDecision(BaseModel):
    """How and when the person answered the consent banner, sent with the consent event it caused: the profile
    keeps the latest as the record of what was agreed and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Which control: both boxes at once ("accept_all", "decline_all") or the boxes as ticked ("save_choices").
    action: Literal["accept_all", "decline_all", "save_choices"]
    decided_at: AwareDatetime


class Impression(BaseModel):
    """What one served fragment showed, and under which experiment variant and versions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slot: Annotated[str, Field(min_length=1, max_length=32)]
    items: Annotated[list[Id], Field(max_length=MAX_IMPRESSION_ITEMS)]
    experiment: Id | None = None
    variant: Id | None = None
    model_version: Text
    rules_version: Text
    # serve's HMAC over the impression (personalization.provenance); reports count only those that verify.
    signature: Annotated[str, Field(max_length=64)] | None = None


class Event(BaseModel):
    """One interaction, as the tracker sends it. `user_id` is the raw id until ingest pseudonymizes it."""

    # allow_inf_nan refuses NaN/Infinity tokens and numbers that overflow to inf (1e999), in JSON and Python
    # input alike, so no validator of our own has to (each would cost a Python call per event).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    event_id: Id
    # True when user_id is already the pseudonym (sent by our own collector or serve, which know only the
    # signed pseudonymous id); ingest then keeps it instead of hashing it again. Declared before user_id so
    # its validator can read it.
    pseudonymous: Annotated[bool, Field(strict=True)] = False
    user_id: Id
    type: EventType
    ts: AwareDatetime
    item_id: Id | None = None
    category: Text | None = None
    price: Annotated[float, Field(ge=0, le=MAX_PRICE)] | None = None
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)] = 1
    session_id: Id | None = None
    context: Context = Context()
    consent: Consent
    impression: Impression | None = None
    # Only on a consent event: the banner answer that caused it.
    decision: ConsentDecision | None = None
    schema_version: Literal[1] = 1

    @field_validator("user_id")
    @classmethod
    def _pseudonymize(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("pseudonymous"):
            if not _PSEUDONYM.match(value):
                raise ValueError("a pseudonymous user_id is 64 lowercase hex characters")
            return value
        # At ingest the raw id is replaced while the record is parsed, so no validated event holds it.
        pepper = info.context.get(PEPPER_CONTEXT) if isinstance(info.context, dict) else None
        return pseudonymize(pepper, value) if pepper else value

    @field_validator("ts")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        # In UTC, every later comparison and timestamp is a fast path: with the parser's own tzinfo, each
        # would call back into it, costing more than this conversion.
        try:
            return value.astimezone(UTC)
        except OverflowError:
            # e.g. 0001-01-01T00:00+05:00: valid in its own offset, before year 1 in UTC. Not a ValueError,
            # so pydantic would let it escape and the record would fail the whole batch, every retry.
            raise ValueError("ts is out of the representable range in UTC") from None

    @model_validator(mode="after")
    def _item_events_name_an_item(self) -> Event:
        if self.type in ITEM_EVENT_TYPES and self.item_id is None:
            raise ValueError(f"item_id is required for {self.type.value}")
        if (self.type is _IMPRESSION) != (self.impression is not None):
            raise ValueError("impression is required for, and only for, an impression event")
        if self.decision is not None and self.type is not _CONSENT:
            raise ValueError("decision is allowed only on a consent event")
        return self

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Reason
    message: str
    # The offending field ("price", "consent.analytics", "event" for the record as a whole), when one is named.
    field: str | None = None


@dataclass(frozen=True, slots=True)
class NoConsent:
    """Analytics consent was not given: nothing of this record may be stored, not even in quarantine."""


ParseResult = Event | Rejected | NoConsent


def _loads_noting_constants(text: str | bytes) -> tuple[Any, str | None]:
    """json.loads, and the first NaN/Infinity token in the text (the spec has none; Python's parser takes them).

    The token is noted rather than refused on the spot so that the consent of a record holding one can still
    be read: without consent, such a record is dropped like any other, not quarantined.
    """
    seen: list[str] = []

    def note(token: str) -> float:
        seen.append(token)
        return math.nan

    return json.loads(text, parse_constant=note), (seen[0] if seen else None)


def _refuses_consent(data: bytes) -> bool:
    """Whether a record too large to validate still says, readably, that analytics consent was not given."""
    try:
        obj, _ = _loads_noting_constants(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and not has_analytics_consent(obj)


def validation_rejection(error: ValidationError) -> Rejected:
    """Why an object failed the Event model: the first problem's field, reason code and a safe message."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "event"
    kind = first["type"]
    if kind == "missing":  # an absent type is missing, not unknown
        reason = Reason.MISSING_FIELD
    elif field == "type":
        reason = Reason.UNKNOWN_TYPE
    elif field == "schema_version":
        reason = Reason.UNSUPPORTED_VERSION
    else:
        reason = Reason.INVALID_FIELD
    message = f"{field}: {first['msg']}"
    # Show the offending value to whoever reads the quarantine, except an identifier: that would store it.
    if kind not in ("missing", "extra_forbidden") and field in ECHOED_FIELDS:
        message += f" (got {first.get('input')!r:.80})"
    return Rejected(reason, message[:300], field)


def has_analytics_consent(obj: dict[str, Any]) -> bool:
    """Consent read from a raw object, as the strict model reads it: analytics is the JSON literal true."""
    consent = obj.get("consent")
    return isinstance(consent, dict) and consent.get("analytics") is True


class RecordParser:
    """Raw record bytes -> a valid event, a rejection with its reason, or a no-consent drop.

    Made once per batch: the clock window and the validation context are the same for every record of it.
    With a `pepper`, an event's user_id comes back pseudonymized (HMAC-SHA256(pepper, raw id)).

    Consent is read before full validation on purpose: a record whose sender did not give analytics consent
    is dropped even when it is also malformed, because quarantining it would store it.
    """

    __slots__ = ("_context", "_earliest", "_latest", "_validate_json")

    def __init__(self, now: datetime, retention: timedelta, pepper: bytes | None = None) -> None:
        self._context = {PEPPER_CONTEXT: pepper}
        # The model's own validator, called directly: Event.model_validate_json adds a Python frame that
        # costs a tenth of the validation itself, on every record.
        self._validate_json = Event.__pydantic_validator__.validate_json
        self._latest = now + MAX_FUTURE
        self._earliest = now - retention

    def parse(self, data: bytes) -> ParseResult:
        if not data:
            return Rejected(Reason.EMPTY, "record has no data")
        if len(data) > MAX_RECORD_BYTES:
            if _refuses_consent(data):
                return NoConsent()
            return Rejected(Reason.TOO_LARGE, f"record is {len(data)} bytes; the limit is {MAX_RECORD_BYTES}")
        # Fast path for the common case, a valid event: pydantic parses and validates the JSON in one pass
        # (its parser takes NaN/Infinity tokens, which allow_inf_nan=False then refuses, as the slow path does).
        try:
            event: Event = self._validate_json(data, context=self._context)
        except ValidationError:
            return self._diagnose(data)
        if not event.consent.analytics and event.type is not _CONSENT:
            return NoConsent()
        return self._check_time(event)

    def _check_time(self, event: Event) -> ParseResult:
        ts = event.ts
        if ts > self._latest:
            return Rejected(Reason.FUTURE_TIMESTAMP, f"ts {ts.isoformat()} is more than 5 minutes ahead", "ts")
        if ts < self._earliest:
            return Rejected(Reason.STALE_TIMESTAMP, f"ts {ts.isoformat()} is older than the retention", "ts")
        return event

    def _diagnose(self, data: bytes) -> ParseResult:
        """The slow path for a record that is not a valid event: find out why, in a fixed order of checks."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected(Reason.NOT_UTF8, f"invalid UTF-8 at byte {exc.start}")
        try:
            obj, constant = _loads_noting_constants(text)
        except (ValueError, RecursionError) as exc:
            return Rejected(Reason.NOT_JSON, f"not valid JSON: {str(exc)[:200]}")
        if isinstance(obj, dict) and not has_analytics_consent(obj):
            return NoConsent()
        if constant is not None:
            return Rejected(Reason.NOT_JSON, f"not valid JSON: {constant} is not a JSON number")
        if not isinstance(obj, dict):
            return Rejected(Reason.NOT_OBJECT, f"expected a JSON object, got {type(obj).__name__}")
        try:
            event = Event.model_validate(obj, context=self._context)
        except ValidationError as exc:
            return validation_rejection(exc)
        return self._check_time(event)


def parse_record(data: bytes, now: datetime, retention: timedelta, pepper: bytes | None = None) -> ParseResult:
    """One record through a RecordParser of its own (a batch makes one parser for all its records)."""
    return RecordParser(now, retention, pepper).parse(data)
