"""A loopback stand-in for the CloudFront distribution: one origin for the shop, its catalog and both APIs.

Routing, as the distribution's behaviours would do it:
- `/v1/fragments/*`, `/v1/health`, `/v1/profile` -> the serve app; `/v1/events` -> the collector;
- `/shop/catalog.json` -> the storefront's product list, cut from the live model version (shop_catalog.py);
- everything else -> the static storefront (`storefront/`).

Every proxied request gets the viewer headers CloudFront would add (`CloudFront-Is-*-Viewer` from the
User-Agent, `CloudFront-Viewer-Country` from the configured country or the Accept-Language region,
`CloudFront-Viewer-Time-Zone` as configured), replacing any a client sent, then goes through the viewer-request
rule of infra/cloudfront/viewer_request.js: `x-pz-known` is `1` when the `pz_id` cookie is present, else `0`;
`x-pz-host` is the viewer's Host; `x-pz-ctx` is the context key for the dimensions the live rules document
reads (read from the artifact bucket, as the key value store holds them in AWS). Method, path, query, body,
cookies and end-to-end headers are forwarded; status, body and headers come back, every Set-Cookie included.

Not emulated: caching (every request reaches its origin, so the live loop is visible at once; the cache key
is checked against template.yaml by tests/infrastructure), TLS, compression, Origin Access Control.

    uvicorn --factory infra.local.edge:app_from_env   # EDGE_SERVE_URL, EDGE_COLLECT_URL, ARTIFACT_BUCKET
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.local.shop_catalog import shop_catalog
from names import (
    CONTEXT_KEY_HEADER,
    IDENTITY_COOKIE,
    KNOWN_VISITOR_HEADER,
    MOBILE_VIEWER_HEADER,
    SMART_TV_VIEWER_HEADER,
    TABLET_VIEWER_HEADER,
    VIEWER_COUNTRY_HEADER,
    VIEWER_HOST_HEADER,
    VIEWER_TIME_ZONE_HEADER,
)
from personalization.catalog import Catalog
from personalization.context import context_key
from personalization.rules import parse_document
from store.artifacts import ArtifactError, ArtifactStore
from store.rules_source import RulesSource

ROOT = Path(__file__).resolve().parents[2]
STOREFRONT_DIR = ROOT / "storefront"
# RFC 9110 7.6.1 hop-by-hop headers, plus what the proxy recomputes: length (httpx re-frames the body) and
# encoding (the origin is asked for identity, so nothing here would decompress or recompress).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
        "content-encoding",
    }
)
# What the distribution's response headers policy adds to every answer (template.yaml), plus a CSP that
# holds the shop to its own origin: no CDN scripts, no third-party calls.
SECURITY_HEADERS: Mapping[str, str] = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "strict-origin-when-cross-origin",
    "content-security-policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'",
}
CATALOG_RECHECK_S = 5.0
RULES_RECHECK_S = 5.0
# What the viewer-request function sets: a viewer's own values never pass.
_EDGE_SET = frozenset({KNOWN_VISITOR_HEADER, CONTEXT_KEY_HEADER, VIEWER_HOST_HEADER})


def device_from_user_agent(user_agent: str) -> str:
    """The device class CloudFront's User-Agent detection gives, to the precision the demo needs."""
    agent = user_agent.lower()
    if any(word in agent for word in ("smart-tv", "smarttv", "googletv", "appletv", "hbbtv", "crkey")):
        return "tv"
    if "ipad" in agent or "tablet" in agent or ("android" in agent and "mobile" not in agent):
        return "tablet"
    if "mobi" in agent or "iphone" in agent or "ipod" in agent or "android" in agent:
        return "mobile"
    return "desktop"


def country_from_accept_language(value: str | None) -> str | None:
    """The region of the first language tag that names one: `de-DE,de;q=0.9` -> DE (no GeoIP on loopback)."""
    for tag in (value or "").split(","):
        parts = tag.split(";")[0].strip().replace("_", "-").split("-")
        if len(parts) >= 2 and len(parts[-1]) == 2 and parts[-1].isascii() and parts[-1].isalpha():
            return parts[-1].upper()
    return None


def cloudfront_headers(headers: Mapping[str, str], country: str | None, time_zone: str) -> dict[str, str]:
    """The viewer headers CloudFront adds when the origin request policy asks for them (template.yaml): the
    mobile and tablet flags (a smart TV's own flag too, though the policies leave it out), country, zone."""
    device = device_from_user_agent(headers.get("user-agent", ""))
    added = {
        MOBILE_VIEWER_HEADER: "true" if device in ("mobile", "tablet") else "false",
        TABLET_VIEWER_HEADER: "true" if device == "tablet" else "false",
        VIEWER_TIME_ZONE_HEADER: time_zone,
    }
    if device == "tv":
        added[SMART_TV_VIEWER_HEADER] = "true"
    found = country or country_from_accept_language(headers.get("accept-language"))
    if found:
        added[VIEWER_COUNTRY_HEADER] = found
    return added


def viewer_request(
    headers: Mapping[str, str], cookies: Mapping[str, str], dimensions: frozenset[str] = frozenset()
) -> dict[str, str]:
    """infra/cloudfront/viewer_request.js in Python: mark whether the identity cookie is present (never read),
    pass the viewer's Host on, and key the request on the context dimensions the live rules read."""
    marked = {name: value for name, value in headers.items() if name.lower() not in _EDGE_SET}
    lowered = {name.lower(): value for name, value in marked.items()}
    marked[KNOWN_VISITOR_HEADER] = "1" if cookies.get(IDENTITY_COOKIE) else "0"
    marked[VIEWER_HOST_HEADER] = lowered.get("host", "")
    marked[CONTEXT_KEY_HEADER] = context_key(lowered, dimensions)
    return marked


def origin_request_headers(
    request: Request,
    country: str | None = None,
    time_zone: str = "UTC",
    dimensions: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """The viewer's end-to-end headers (cookies included) as the origin should see them."""
    forwarded = {
        name: value
        for name, value in request.headers.items()
        if name.lower() not in _HOP_BY_HOP and not name.lower().startswith("cloudfront-")
    }
    forwarded["host"] = request.headers.get("host", "")
    forwarded.update(cloudfront_headers(request.headers, country, time_zone))
    forwarded = viewer_request(forwarded, request.cookies, dimensions)
    del forwarded["host"]  # httpx sets the origin's own, as CloudFront does
    client = request.client.host if request.client else "127.0.0.1"
    prior = request.headers.get("x-forwarded-for")
    forwarded["x-forwarded-for"] = f"{prior}, {client}" if prior else client
    forwarded["x-forwarded-proto"] = request.url.scheme
    forwarded["accept-encoding"] = "identity"
    return forwarded


def viewer_response(upstream: httpx.Response) -> Response:
    """The origin's answer for the viewer: status, body, and every end-to-end header, repeated ones kept."""
    response = Response(content=upstream.content, status_code=upstream.status_code)
    response.raw_headers = [
        (name, value) for name, value in response.raw_headers if name.decode().lower() == "content-length"
    ]
    for name, value in upstream.headers.multi_items():
        if name.lower() not in _HOP_BY_HOP:
            response.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return response


@dataclass(frozen=True)
class EdgeSettings:
    serve_url: str
    collect_url: str | None
    storefront_dir: Path = STOREFRONT_DIR
    artifact_bucket: str | None = None
    region: str = "us-east-1"
    timeout_s: float = 10.0
    # What CloudFront would say of every viewer: a fixed country (else the Accept-Language region) and zone.
    country: str | None = None
    time_zone: str = "UTC"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> EdgeSettings:
        return cls(
            serve_url=env["EDGE_SERVE_URL"],
            collect_url=env.get("EDGE_COLLECT_URL") or None,
            storefront_dir=Path(env.get("EDGE_STOREFRONT_DIR") or STOREFRONT_DIR),
            artifact_bucket=env.get("ARTIFACT_BUCKET") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            country=env.get("EDGE_COUNTRY") or None,
            time_zone=env.get("EDGE_TIME_ZONE") or "UTC",
        )


class ShopCatalogSource:
    """`/shop/catalog.json` for the live model version; re-cut when `current` moves (checked every few seconds)."""

    def __init__(self, bucket: str, region: str, recheck_s: float = CATALOG_RECHECK_S) -> None:
        self._store = ArtifactStore(bucket, region)
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._version: str | None = None
        self._body: dict[str, Any] | None = None
        self._checked = 0.0

    def __call__(self) -> dict[str, Any] | None:
        with self._lock:
            if self._body is not None and time.monotonic() - self._checked < self._recheck_s:
                return self._body
            self._checked = time.monotonic()
            try:
                version = self._store.current_version()
            except ArtifactError:
                return None  # nothing published yet: the shop says so instead of failing
            if version != self._version:
                model = self._store.load(version)
                self._body = shop_catalog(Catalog.from_bytes(model.catalog_data), model.version)
                self._version = version
            return self._body


class LiveDimensions:
    """The context dimensions the live rules document reads: what the key value store tells the viewer
    function in AWS, read here from the published document itself (re-read every few seconds)."""

    def __init__(self, bucket: str, region: str, recheck_s: float = RULES_RECHECK_S) -> None:
        self._source = RulesSource(bucket, region, max_age_s=0)
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._dimensions: frozenset[str] = frozenset()
        self._checked: float | None = None

    def __call__(self) -> frozenset[str]:
        with self._lock:
            if self._checked is not None and time.monotonic() - self._checked < self._recheck_s:
                return self._dimensions
            self._checked = time.monotonic()
            try:
                self._dimensions = parse_document(self._source.fetch()).context_dimensions()
            except Exception:  # nothing published, unreadable or invalid: serve keeps context answers private
                self._dimensions = frozenset()
            return self._dimensions


class Storefront(StaticFiles):
    """The static shop; revalidated on every load, so an edited page shows on the next reload."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["cache-control"] = "no-cache"
        return response


class SecurityHeaders:
    """The response headers policy: added to every answer unless the origin chose its own value."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self._app(scope, receive, send_with_headers)


def create_app(
    settings: EdgeSettings,
    catalog: Callable[[], dict[str, Any] | None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    dimensions: Callable[[], frozenset[str]] | None = None,
) -> Starlette:
    """The edge; `catalog` answers /shop/catalog.json, `dimensions` says what the live rules read, `transport`
    replaces the network (tests)."""
    client: httpx.AsyncClient | None = None

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal client
        # trust_env=False: a proxy from the environment must never see loopback traffic.
        async with httpx.AsyncClient(timeout=settings.timeout_s, trust_env=False, transport=transport) as opened:
            client = opened
            yield
        client = None

    async def forward(request: Request, origin: str | None) -> Response:
        if origin is None or client is None:
            return JSONResponse({"error": "no_origin", "message": "no origin for this path"}, status_code=502)
        try:
            upstream = await client.request(
                request.method,
                origin + request.url.path,
                params=request.url.query or None,
                content=await request.body(),
                headers=origin_request_headers(
                    request, settings.country, settings.time_zone, dimensions() if dimensions else frozenset()
                ),
            )
        except httpx.HTTPError as exc:
            return JSONResponse({"error": "bad_gateway", "message": type(exc).__name__}, status_code=502)
        return viewer_response(upstream)

    async def to_serve(request: Request) -> Response:
        return await forward(request, settings.serve_url)

    async def to_collector(request: Request) -> Response:
        return await forward(request, settings.collect_url)

    def shop_catalog_json(_: Request) -> Response:
        body = catalog() if catalog else None
        if body is None:
            return JSONResponse({"error": "no_catalog", "message": "no model version is published"}, status_code=503)
        return JSONResponse(body, headers={"cache-control": "no-cache"})

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
    return Starlette(
        routes=[
            Route("/v1/fragments/{slot:path}", to_serve, methods=methods),
            Route("/v1/health", to_serve, methods=methods),
            Route("/v1/profile", to_serve, methods=methods),
            Route("/v1/events", to_collector, methods=methods),
            Route("/shop/catalog.json", shop_catalog_json, methods=["GET", "HEAD"]),
            Mount("/", Storefront(directory=settings.storefront_dir, html=True)),
        ],
        middleware=[Middleware(SecurityHeaders)],
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    """The uvicorn factory: settings from the environment the local scenario gives the edge process."""
    settings = EdgeSettings.from_env()
    if settings.artifact_bucket is None:
        return create_app(settings)
    return create_app(
        settings,
        ShopCatalogSource(settings.artifact_bucket, settings.region),
        dimensions=LiveDimensions(settings.artifact_bucket, settings.region),
    )
