"""The person's own view of their data: `GET /v1/profile` (access) and `DELETE /v1/profile` (erasure).

Identity comes only from the signed token, as for fragments; nobody can name another person's profile. Every
answer is `Cache-Control: private, no-store`: what we hold about someone must not sit in any cache, shared or not.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Cookie, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from names import IDENTITY_COOKIE, IDENTITY_HEADER, SEGMENT_COOKIE, expire_cookie
from observability import count, logger
from personalization.identity import verify_token
from personalization.privacy import ErasurePath, ErasureRecord, ProfileView, describe
from serve.wiring import serve_eraser, serve_state
from store.profiles import StoredProfile

NO_STORE = "private, no-store"
# Erasing a person also forgets who they were and their segment: the browser drops both signed cookies.
EXPIRE_SEGMENT_COOKIE = expire_cookie(SEGMENT_COOKIE)
EXPIRE_IDENTITY_COOKIE = expire_cookie(IDENTITY_COOKIE)


class PrivacyProblem(BaseModel):
    """The body of every error answer of these routes."""

    error: str
    message: str


def _problem(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": error, "message": message}, headers={"Cache-Control": NO_STORE}
    )


def _unauthorized() -> JSONResponse:
    return _problem(
        401,
        "unauthorized",
        f"a valid identity token ({IDENTITY_COOKIE} cookie or {IDENTITY_HEADER} header) is required",
    )


def _unavailable(what: str) -> JSONResponse:
    return _problem(503, "unavailable", f"{what} is unavailable right now; please retry")


def _identify(cookie: str | None, header: str | None) -> str | JSONResponse:
    key = serve_state().identity_key()
    if key is None:
        return _unavailable("identity verification")
    pseudonym = verify_token(key, header or cookie, int(time.time()))
    return _unauthorized() if pseudonym is None else pseudonym


# No length limits here, unlike the fragment route: verify_token refuses anything over 200 characters, so
# an oversized token is a 401 like any other invalid one, never a 422.
IdentityCookie = Annotated[str | None, Cookie(alias=IDENTITY_COOKIE, description="The signed identity token")]
IdentityHeader = Annotated[
    str | None, Header(alias=IDENTITY_HEADER, description="The signed identity token (wins over the cookie)")
]
ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": PrivacyProblem, "description": "No valid identity token"},
    503: {"model": PrivacyProblem, "description": "The identity key or the store is unavailable"},
}

router = APIRouter(tags=["privacy"])


@router.get(
    "/v1/profile",
    response_model=ProfileView,
    responses={**ERRORS, 404: {"model": PrivacyProblem, "description": "Nothing is held for this identity"}},
    summary="What we hold about the visitor, in readable form",
)
def get_profile(identity_cookie: IdentityCookie = None, identity_header: IdentityHeader = None) -> JSONResponse:
    who = _identify(identity_cookie, identity_header)
    if isinstance(who, JSONResponse):
        return who
    try:
        # Strongly consistent: a person who has just erased their data must not be shown it again.
        found = serve_eraser().profiles.read(who, consistent=True)
    except Exception:
        logger.exception("profile read failed for an access request")
        return _unavailable("the profile store")
    if not isinstance(found, StoredProfile):
        return _problem(404, "not_found", "no profile is held for this identity")
    view = describe(
        found.profile, found.version, found.expires_at, int(time.time() * 1000), serve_state().config.fold_settings
    )
    return JSONResponse(view.model_dump(mode="json"), headers={"Cache-Control": NO_STORE})


@router.delete(
    "/v1/profile",
    response_model=ErasureRecord,
    responses=ERRORS,
    summary="Erase everything held about the visitor (the receipt names no one)",
)
def delete_profile(identity_cookie: IdentityCookie = None, identity_header: IdentityHeader = None) -> JSONResponse:
    who = _identify(identity_cookie, identity_header)
    if isinstance(who, JSONResponse):
        return who
    try:
        record = serve_eraser().erase(who, ErasurePath.SELF_SERVICE, datetime.now(UTC))
    except Exception:
        # Every step is idempotent: the retry the person is asked for completes what this one began.
        logger.exception("erasure failed")
        return _unavailable("erasure")
    answer = record.model_dump(mode="json")
    logger.info("erased", extra=answer)
    count("Erasures")
    response = JSONResponse(answer, headers={"Cache-Control": NO_STORE})
    response.headers.append("set-cookie", EXPIRE_IDENTITY_COOKIE)
    response.headers.append("set-cookie", EXPIRE_SEGMENT_COOKIE)
    return response
