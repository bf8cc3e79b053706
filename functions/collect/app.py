"""The collector API: `POST /v1/events` parses the body, identifies the visitor, admits and writes the events.

Statuses, decided here and only here: 202 when any event was written (the results say which were not), 400
when every event was refused (or the body is malformed), 413 over the size or count limits, 503 when valid
events could not be written at all (every one is reported failed, so the client can send them again).
"""

from __future__ import annotations

# First, before anything imports FastAPI: its OpenAPI models then build on first use (why: fastapi_deferred.py).
import fastapi_deferred  # noqa: F401

# isort: split

import time
from collections import Counter
from typing import Annotated

from fastapi import Cookie, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse

from collect.intake import (
    MAX_BODY_BYTES,
    MAX_EVENTS,
    BadBody,
    BodyTooLarge,
    TooManyEvents,
    read_events,
    withdraws_targeting,
)
from collect.models import CollectResponse, ErrorResponse, RejectedRecord
from collect.usecase import CollectDeps, Collected, collect_request
from collect.wiring import collect_deps
from http_headers import install as install_standard_headers
from names import IDENTITY_COOKIE, IDENTITY_HEADER, SEGMENT_COOKIE, expire_cookie, set_cookie
from observability import count, logger
from personalization.context import request_context

# Serve's signed segment cookie, dropped as soon as an event withdraws (or lacks) personalization consent: the
# segment fragments it keys must not follow a person who said no until their profile has caught up.
EXPIRE_SEGMENT_COOKIE = expire_cookie(SEGMENT_COOKIE)
RETRY_AFTER_S = 1
# The answer carries per-visitor results and sometimes a new identity cookie: no cache may keep it.
NO_STORE = {"Cache-Control": "no-store"}

app = FastAPI(
    title="Event collector",
    version="1",
    description=(
        "Takes a shop's interaction events, checks them against the event schema and writes them to the stream "
        "under the visitor's pseudonymous id, which comes only from the signed identity token."
    ),
)
# The answer (its results, a new identity cookie) depends on who asks: the identity cookie or token header.
install_standard_headers(app, vary=f"Cookie, {IDENTITY_HEADER}")

_EVENT_BODY = {
    "description": f'One event object, or {{"events": [...]}} with 1 to {MAX_EVENTS} events; at most '
    f"{MAX_BODY_BYTES} bytes. user_id is ignored; event_id and ts are optional.",
    "required": True,
    "content": {"application/json": {"schema": {"type": "object"}}},
}


async def request_body(request: Request) -> bytes:
    """The raw body, refused as soon as it is known to exceed the limit (before all of it is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"the body is {declared} bytes; the limit is {MAX_BODY_BYTES}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge(f"the body exceeds the limit of {MAX_BODY_BYTES} bytes")
    return bytes(body)


@app.exception_handler(BadBody)
async def _bad_body(_: Request, exc: BadBody) -> JSONResponse:
    too_large = isinstance(exc, BodyTooLarge | TooManyEvents)
    error = ErrorResponse(error="payload_too_large" if too_large else "invalid_request", message=str(exc))
    logger.info("request refused as a whole", extra={"error": error.error, "kind": type(exc).__name__})
    return JSONResponse(status_code=413 if too_large else 400, content=error.model_dump(), headers=NO_STORE)


def _status(response: CollectResponse) -> int:
    if response.accepted:
        return 202
    return 503 if response.failed else 400


def _identity_cookie(token: str, max_age_s: int) -> str:
    return set_cookie(IDENTITY_COOKIE, token, max_age_s)


def _record(collected: Collected) -> None:
    """One metric per outcome someone would alarm on; a request must never fail over a metric."""
    response = collected.response
    count("EventsCollected", response.accepted)
    count("EventsRejected", response.rejected)
    count("EventsThrottledRetried", collected.retried)
    count("EventsFailed", response.failed)
    # Counts and reason codes only: never a user id, a token or an address.
    reasons = Counter(r.reason for r in response.results if isinstance(r, RejectedRecord))
    logger.info(
        "events collected",
        extra={
            "accepted": response.accepted,
            "rejected": response.rejected,
            "failed": response.failed,
            "retried": collected.retried,
            "rejected_reasons": dict(reasons),
        },
    )


@app.post(
    "/v1/events",
    status_code=202,
    response_model=CollectResponse,
    responses={
        400: {"model": CollectResponse | ErrorResponse, "description": "Every event refused, or a malformed body"},
        413: {"model": ErrorResponse, "description": f"Over {MAX_BODY_BYTES} bytes or {MAX_EVENTS} events"},
        503: {"model": CollectResponse, "description": "Valid events could not be written: send them again"},
    },
    openapi_extra={"requestBody": _EVENT_BODY},
)
def post_events(
    request: Request,
    body: Annotated[bytes, Depends(request_body)],
    deps: Annotated[CollectDeps, Depends(collect_deps)],
    identity_cookie: Annotated[str | None, Cookie(alias=IDENTITY_COOKIE)] = None,
    segment_cookie: Annotated[str | None, Cookie(alias=SEGMENT_COOKIE)] = None,
    identity_header: Annotated[str | None, Header(alias=IDENTITY_HEADER)] = None,
) -> JSONResponse:
    items = read_events(body)
    now = time.time()
    # From the CloudFront viewer headers, never from the events: what the tracker says of its device, country
    # or clock is replaced wherever the edge said otherwise.
    context = request_context(request.headers, now)
    collected, new_token = collect_request(items, identity_header or identity_cookie, now, deps, context)
    _record(collected)
    status = _status(collected.response)
    headers = dict(NO_STORE)
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    result = JSONResponse(status_code=status, content=collected.response.model_dump(mode="json"), headers=headers)
    if new_token is not None:
        result.headers.append("set-cookie", _identity_cookie(new_token, deps.config.anonymous_id_ttl_s))
    if segment_cookie and withdraws_targeting(items):
        result.headers.append("set-cookie", EXPIRE_SEGMENT_COOKIE)
    return result
