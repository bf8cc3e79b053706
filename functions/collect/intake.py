"""What the collector decides before anything is written: the request body, the visitor's id, each event.

Plain Python, no AWS and no HTTP framework: the app maps these errors to statuses, the service writes what
is admitted here.

An event is admitted exactly when ingest would fold it: it is built through the one Event model, then its
serialized bytes go through `parse_record`, ingest's own gate (record size, clock skew, retention, consent).
So the collector never forwards what ingest would quarantine, and the rules cannot drift apart.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from personalization.context import UNKNOWN, RequestContext
from personalization.events import (
    BROWSER_EVENT_TYPES,
    Event,
    EventType,
    NoConsent,
    Reason,
    Rejected,
    has_analytics_consent,
    parse_record,
    validation_rejection,
)
from personalization.identity import sign_token, verify_token

MAX_EVENTS = 500
MAX_BODY_BYTES = 1024 * 1024
NO_CONSENT = "no_consent"
NOT_ALLOWED = "not_allowed"
# Types the schema knows that a browser may not send (serve's impressions): refused by name, before anything.
_SERVER_ONLY = frozenset(kind.value for kind in EventType) - frozenset(kind.value for kind in BROWSER_EVENT_TYPES)
BATCH_KEY = "events"


class BadBody(Exception):
    """The request body as a whole cannot be read as events; nothing of it is kept."""


class MalformedBody(BadBody):
    """Not JSON, or not one event object nor {"events": [...]}."""


class BodyTooLarge(BadBody):
    """More bytes than MAX_BODY_BYTES."""


class TooManyEvents(BadBody):
    """More events than MAX_EVENTS in one batch."""


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def read_events(body: bytes) -> list[Any]:
    """The body's events, unvalidated: one event object, or {"events": [...]} with 1 to MAX_EVENTS items."""
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    if not body.strip():
        raise MalformedBody('the body is empty; send one event object or {"events": [...]}')
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedBody(f"the body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise MalformedBody(f'expected one event object or {{"events": [...]}}, got a JSON {_json_type(document)}')
    if BATCH_KEY not in document:
        return [document]
    if set(document) != {BATCH_KEY}:
        extra = ", ".join(sorted(set(document) - {BATCH_KEY}))[:100]
        raise MalformedBody(f'a batch is {{"events": [...]}} and nothing else; unexpected: {extra}')
    events = document[BATCH_KEY]
    if not isinstance(events, list):
        raise MalformedBody(f"events must be an array, got a JSON {_json_type(events)}")
    if not events:
        raise MalformedBody("events is empty")
    if len(events) > MAX_EVENTS:
        raise TooManyEvents(f"{len(events)} events in one batch; the limit is {MAX_EVENTS}")
    return events


@dataclass(frozen=True, slots=True)
class Visitor:
    pseudonym: str
    # Set when the visitor brought no valid token: a freshly signed one for the anonymous id minted for them.
    new_token: str | None = None


def identify(key: bytes, token: str | None, now: int, ttl_s: int) -> Visitor:
    """The pseudonym a valid token proves; otherwise a new random anonymous id and a token that proves it.

    A forged, expired or malformed token is worth nothing: its holder becomes a new anonymous visitor, never
    the person the token names. A user id in the body is never consulted.
    """
    pseudonym = verify_token(key, token, now)
    if pseudonym is not None:
        return Visitor(pseudonym)
    # The same form as an HMAC pseudonym (64 hex), but random: it links to no raw id anywhere.
    pseudonym = secrets.token_hex(32)
    return Visitor(pseudonym, sign_token(key, pseudonym, now + ttl_s))


def withdraws_targeting(items: list[Any]) -> bool:
    """Whether some event says the visitor does not (or no longer) consent to personalization.

    Read from the raw items, admitted or not, the way the strict model reads consent: only the JSON literal
    true is consent. Such a visitor's segment cookie must go at once; the profile follows through ingest.
    """
    return any(
        isinstance(item, dict)
        and not (isinstance(consent := item.get("consent"), dict) and consent.get("personalization") is True)
        for item in items
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    field: str
    reason: str
    message: str


def _refusal(rejected: Rejected) -> Refusal:
    return Refusal(rejected.field or "event", rejected.reason.value, rejected.message)


def admit(
    item: Any, pseudonym: str, now: datetime, retention: timedelta, context: RequestContext = UNKNOWN
) -> Event | Refusal:
    """One client event as the stream will carry it (under the visitor's pseudonym), or why it is refused.

    The client may omit user_id, event_id and ts: the collector sets the pseudonym (whatever user_id was
    sent), a random event_id and the time of receipt. A client that sends its own event_id makes its retries
    idempotent: ingest skips an event id a profile has seen. The event's context is stamped with what the
    edge derived (device, country, UTC offset, channel), in place of what the tracker claimed for those.
    """
    if not isinstance(item, dict):
        return Refusal("event", Reason.NOT_OBJECT.value, f"expected an event object, got a JSON {_json_type(item)}")
    kind = item.get("type")
    if isinstance(kind, str) and kind in _SERVER_ONLY:
        # A browser that could post impressions could write its own experiment results.
        return Refusal("type", NOT_ALLOWED, f"{kind} events come from the fragment service, never from a browser")
    # Checked before the schema, as ingest does: without consent nothing of the event matters or is kept.
    # A consent event is the exception: a withdrawal must reach the profile to take effect.
    if item.get("type") != EventType.CONSENT.value and not has_analytics_consent(item):
        return Refusal("consent.analytics", NO_CONSENT, "analytics consent was not given; the event was not kept")
    fields = {**item, "user_id": pseudonym, "pseudonymous": True, "context": context.stamp(item.get("context"))}
    if fields.get("event_id") is None:
        fields["event_id"] = uuid.uuid4().hex
    if fields.get("ts") is None:
        fields["ts"] = now
    try:
        event = Event.model_validate(fields)
    except ValidationError as exc:
        return _refusal(validation_rejection(exc))
    gated = parse_record(event.to_json_bytes(), now, retention)
    if isinstance(gated, Rejected):
        return _refusal(gated)
    if isinstance(gated, NoConsent):  # pragma: no cover - consent was checked above, by the same rule
        return Refusal("consent.analytics", NO_CONSENT, "analytics consent was not given; the event was not kept")
    return gated
