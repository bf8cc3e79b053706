"""The fragment API: FastAPI routes that parse a request, call the pipeline and format the answer."""

from __future__ import annotations

# First, before anything imports FastAPI: its OpenAPI models then build on first use (why: fastapi_deferred.py).
import fastapi_deferred  # noqa: F401

# isort: split

import inspect
import time
from dataclasses import replace
from typing import Annotated, Any, Literal, get_args, get_type_hints

from fastapi import Cookie, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.params import Param
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError, create_model

from http_headers import install as install_standard_headers
from names import (
    CONTEXT_HEADER,
    EXPERIMENT_VARIANT_HEADER,
    IDENTITY_COOKIE,
    IDENTITY_HEADER,
    MODEL_VERSION_HEADER,
    PERSONALIZATION_HEADER,
    RULES_VERSION_HEADER,
    SEGMENT_COOKIE,
    SEGMENT_HEADER,
    set_cookie,
)
from observability import count, logger
from personalization.context import RequestContext, request_context
from personalization.fragments import (
    DEGRADED_REASONS,
    UNTARGETABLE_REASONS,
    Fragment,
    Mode,
    Reason,
    etag,
    render_html,
    render_json,
)
from personalization.identity import sign_segment, verify_segment, verify_token
from serve.edge_context import keyed_right, shared_lifetime, vary
from serve.pipeline import fallback
from serve.privacy import EXPIRE_SEGMENT_COOKIE
from serve.privacy import router as privacy_router
from serve.requests import Format, FragmentRequest, Identity, PageContext
from serve.snapshot import Snapshot
from serve.usecase import TRENDING_SLOT, personalize
from serve.wiring import ServeState, serve_state

SEGMENT_COOKIE_MAX_AGE_S = 24 * 3600
CACHE_KEY_QUERY = ("format", "k", "item", "journey")
# What every answer varies on: the identity (cookie or token header) and the signed segment cookie.
BASE_VARY = f"Cookie, {IDENTITY_HEADER}"
# Answers for one known person: never shared by a cache, and each one's exposure is logged for experiments.
PERSONAL_MODES = frozenset({Mode.PERSONALIZED, Mode.EXPERIMENT})

app = FastAPI(
    title="Personalization fragments",
    version="1",
    description="Personalized HTML/JSON fragments for the CDN path. Identity comes only from a signed token.",
)
app.include_router(privacy_router)
# Every answer depends on who asks: the identity (cookie or token header) and the signed segment cookie.
install_standard_headers(app, vary=BASE_VARY)

Slot = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="Which fragment slot, e.g. 'for-you'")]
Text = Annotated[str | None, Query(max_length=256)]


class Problem(BaseModel):
    field: str
    message: str


class InvalidRequest(BaseModel):
    """The body of every 422: which parameter was wrong, and why."""

    error: Literal["invalid_request"]
    problems: list[Problem]


@app.exception_handler(RequestValidationError)
async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [{"field": ".".join(str(p) for p in error["loc"]), "message": error["msg"]} for error in exc.errors()]
    return JSONResponse(status_code=422, content={"error": "invalid_request", "problems": problems})


async def _state() -> ServeState:
    # async: a plain function would cost every request a hop through the threadpool. Tests override it.
    return serve_state()


State = Annotated[ServeState, Depends(_state)]


@app.get("/v1/health")
def health(state: State) -> dict[str, str | int | None]:
    snapshot = state.rollout.current()
    return {
        "status": "degraded" if snapshot.error else "ok",
        "model_version": snapshot.version,
        "catalog_items": len(snapshot.catalog),
        "model_error": snapshot.error,
        "rules_version": snapshot.rules_version,
    }


def _headers(
    fragment: Fragment, public_max_age: int, swr: int, sets_cookie: bool, keyed: bool = True
) -> dict[str, str]:
    # A response that sets a cookie is never shared: a cache would hand that cookie to the next visitor. Nor
    # is one shaped by the visitor's experiment variant: the next visitor may be in another. Nor one the edge
    # did not key by the context the rules read (`keyed`): it would reach visitors of another context.
    personal = fragment.mode in PERSONAL_MODES or sets_cookie or fragment.variant is not None or not keyed
    return {
        PERSONALIZATION_HEADER: fragment.label(),
        MODEL_VERSION_HEADER: fragment.model_version,
        SEGMENT_HEADER: fragment.segment or "none",
        RULES_VERSION_HEADER: fragment.rules_version,
        EXPERIMENT_VARIANT_HEADER: f"{fragment.experiment}:{fragment.variant}" if fragment.variant else "none",
        # A personal fragment must never sit in a shared cache; the browser may keep it and revalidate.
        "Cache-Control": "private, no-cache"
        if personal
        else f"public, max-age=0, s-maxage={public_max_age}, stale-while-revalidate={swr}",
    }


def _count(fragment: Fragment, snapshot: Snapshot) -> None:
    count("FragmentsServed")
    if fragment.reason in DEGRADED_REASONS:
        count("FragmentsDegraded")
    count("FragmentsBySegment", dimension=("segment", _segment_label(fragment, snapshot)))


def _segment_label(fragment: Fragment, snapshot: Snapshot) -> str:
    """A segment's name as the live version's manifest gives it: at most K values (plus "none" and "other"),
    whatever the request holds (a segment cookie signed for a label the model no longer has is "other")."""
    if fragment.segment_id is None:
        return "none"
    segment = snapshot.models.segments.segments.get(fragment.segment_id) if snapshot.models else None
    return segment.name if segment else "other"


def _segment_cookie(
    key: bytes | None, fragment: Fragment, sent: str | None, known: int | None, model_version: str
) -> str | None:
    """Set the signed segment cookie when serve has just learned a visitor's segment and the cookie lacks it;
    expire it when the visitor's profile says they may not be targeted (no consent, erased, no profile)."""
    if sent and fragment.reason in UNTARGETABLE_REASONS:
        return EXPIRE_SEGMENT_COOKIE
    if key is None or fragment.segment_id is None or fragment.segment_id == known:
        return None
    value = sign_segment(key, fragment.segment_id, model_version)
    return set_cookie(SEGMENT_COOKIE, value, SEGMENT_COOKIE_MAX_AGE_S)


def _describe(viewer: RequestContext, daypart: str | None) -> str:
    return f"{viewer.describe()}; daypart={daypart or '-'}"


FRAGMENT_PATH = "/v1/fragments/{slot}"


def _fragment_parameters(
    slot: Slot,
    format: Annotated[Format, Query()] = "html",
    k: Annotated[int, Query(ge=1, le=50)] = 8,
    page: Text = None,
    item: Annotated[str | None, Query(max_length=128)] = None,
    journey: Annotated[str | None, Query(pattern=r"^[a-z0-9_-]{1,32}$")] = None,
    identity_header: Annotated[str | None, Header(alias=IDENTITY_HEADER, max_length=256)] = None,
    if_none_match: Annotated[str | None, Header(alias="if-none-match", max_length=256)] = None,
    identity_cookie: Annotated[str | None, Cookie(alias=IDENTITY_COOKIE, max_length=256)] = None,
    segment_cookie: Annotated[str | None, Cookie(alias=SEGMENT_COOKIE, max_length=64)] = None,
) -> None:
    """The fragment route's parameters (path, query, headers, cookies: FastAPI's order, so its 422s list problems
    in the same order). Never called: FastAPI documents them from this signature (_openapi) and FragmentParams,
    a model made from it, validates them in one call (_params). Declared on the route itself, FastAPI would
    resolve and validate them one by one on every request, which cost more than the whole pipeline (issue 23)."""


_declared = get_type_hints(_fragment_parameters, include_extras=True)
_declared.pop("return")
_defaults = {name: p.default for name, p in inspect.signature(_fragment_parameters).parameters.items()}
FragmentParams = create_model(  # type: ignore[call-overload]  # field definitions built from the signature
    "FragmentParams", **{name: (hint, _defaults[name]) for name, hint in _declared.items()}
)
# Where each parameter travels, by the name the request carries it under (a problem's location in a 422).
_LOCATION = {
    (param.alias or name): param.in_.value
    for name, hint in _declared.items()
    for param in get_args(hint)[1:]
    if isinstance(param, Param)
}
_IN_QUERY = tuple(name for name, where in _LOCATION.items() if where == "query")
_IN_HEADERS = tuple(name for name, where in _LOCATION.items() if where == "header")
_IN_COOKIES = tuple(name for name, where in _LOCATION.items() if where == "cookie")


def _params(http: Request) -> Any:
    """The request's fragment parameters, validated as FastAPI would (the same constraints, messages and
    locations: a RequestValidationError, answered by _invalid_request), in one call."""
    query, headers, cookies = http.query_params, http.headers, http.cookies
    given = {"slot": http.path_params["slot"]}
    given.update((name, query[name]) for name in _IN_QUERY if name in query)
    given.update((name, headers[name]) for name in _IN_HEADERS if name in headers)
    given.update((name, cookies[name]) for name in _IN_COOKIES if name in cookies)
    try:
        return FragmentParams.model_validate(given)
    except ValidationError as invalid:
        raise RequestValidationError(
            [{**error, "loc": (_LOCATION[str(error["loc"][0])], *error["loc"])} for error in invalid.errors()]
        ) from None


@app.get(
    FRAGMENT_PATH,
    response_model=Fragment,
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}},
        304: {"description": "Not modified: the If-None-Match ETag is current"},
        422: {"model": InvalidRequest},
    },
)
async def get_fragment(http: Request, state: State) -> Response:
    # async, and the use case called directly: under Mangum a Lambda container handles one event at a time, so
    # the threadpool hop of a plain function (a worker thread, two context switches) bought nothing and cost
    # every request, most of all in its tail. Under uvicorn (the local demo and tests, never deployed) the
    # blocking profile read now holds the event loop: concurrent requests take turns, at loopback latencies.
    params = _params(http)
    slot, if_none_match, segment_cookie = params.slot, params.if_none_match, params.segment_cookie
    identity_header, identity_cookie = params.identity_header, params.identity_cookie
    serving = state.serving()  # once: every step of this request sees the same version
    snapshot = serving.snapshot
    now = time.time()
    # From the CloudFront viewer headers only: no query parameter can claim a device, country or clock.
    viewer = request_context(http.headers, now)
    request = FragmentRequest(
        slot=slot,
        k=params.k,
        now_ms=int(now * 1000),
        context=PageContext(page=params.page, item=params.item, journey=params.journey, viewer=viewer),
        format=params.format,
    )
    key: bytes | None = None
    try:
        # The trending slot is anonymous by design: no identity is read, so every visitor shares one answer.
        key = state.identity_key() if slot != TRENDING_SLOT else None
        if key:
            request = replace(
                request,
                identity=Identity(
                    pseudonym=verify_token(key, identity_header or identity_cookie, int(now)),
                    segment=verify_segment(key, segment_cookie, snapshot.version),
                ),
            )
    except Exception:
        logger.exception("identity check failed; serving the popular fallback")
        fragment = fallback(request, serving.sources, Reason.INTERNAL_ERROR)
    else:
        fragment = personalize(request, serving.sources)
    return _answer(http, state, request, now, fragment, snapshot, key, segment_cookie, if_none_match)


def _openapi() -> dict[str, Any]:
    """FastAPI's document, with the fragment route's parameters as FastAPI documents _fragment_parameters' (built
    on the first ask, as FastAPI builds its own: no container pays for it unless /openapi.json is asked)."""
    if app.openapi_schema is None:
        document = FastAPI.openapi(app)
        documented = FastAPI()
        documented.get(FRAGMENT_PATH)(_fragment_parameters)
        parameters = documented.openapi()["paths"][FRAGMENT_PATH]["get"]["parameters"]
        document["paths"][FRAGMENT_PATH]["get"]["parameters"] = parameters
    return app.openapi_schema  # type: ignore[return-value]  # set by FastAPI.openapi


app.openapi = _openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend its document


def _answer(
    http: Request,
    state: ServeState,
    request: FragmentRequest,
    now: float,
    fragment: Fragment,
    snapshot: Snapshot,
    key: bytes | None,
    segment_cookie: str | None,
    if_none_match: str | None,
) -> Response:
    """The fragment as the HTTP answer: body, cache headers, the segment cookie, the impression logged."""
    _count(fragment, snapshot)
    pseudonym = request.identity.pseudonym
    if pseudonym is not None and key and fragment.mode in PERSONAL_MODES and state.impressions is not None:
        state.impressions.record(pseudonym, fragment, key)
    body = render_json(fragment) if request.format == "json" else render_html(fragment)
    cookie = _segment_cookie(key, fragment, segment_cookie, request.identity.segment, snapshot.version)
    viewer = request.context.viewer
    rules = snapshot.rules
    dimensions = rules.dimensions if rules is not None else frozenset[str]()
    max_age, swr = shared_lifetime(
        state.config.public_max_age_s,
        state.config.stale_while_revalidate_s,
        rules.document if rules is not None else None,
        dimensions,
        viewer,
        now,
    )
    if request.slot == TRENDING_SLOT:
        # It changes by the second: shared for moments, never served stale for long.
        max_age = swr = min(max_age, state.config.trending_max_age_s)
    headers = _headers(fragment, max_age, swr, cookie is not None, keyed_right(http.headers, dimensions))
    headers["Vary"] = vary(BASE_VARY, dimensions)
    headers[CONTEXT_HEADER] = _describe(viewer, rules.document.daypart_at(viewer.local_hour) if rules else None)
    if cookie is not None:
        headers["Set-Cookie"] = cookie
    headers["ETag"] = etag(body)
    if if_none_match and headers["ETag"] in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    media_type = "application/json" if request.format == "json" else "text/html; charset=utf-8"
    return Response(content=body, media_type=media_type, headers=headers)
