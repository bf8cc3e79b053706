"""Response headers every answer of an HTTP function must carry, whatever produced it (a route, a validation
error, an unhandled exception). `install` adds a pure ASGI middleware (one set check per response) and an
answer for unhandled exceptions, because Starlette writes that 500 outside every added middleware.

- `Vary` names the request headers the answer depends on (the identity cookie and token), so that a shared
  cache other than CloudFront (whose cache policy keys explicitly) never hands one visitor's answer to another.
- Errors (4xx, 5xx) are `Cache-Control: no-store` unless the route said otherwise: an error is about one
  request, and a cached 503 would outlast the outage it reports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

NO_STORE = b"no-store"


class StandardHeaders:
    """ASGI middleware adding `Vary: <vary>` to every response and `Cache-Control: no-store` to errors."""

    def __init__(self, app: ASGIApp, vary: str) -> None:
        self._app = app
        self._vary = vary.encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_standard_headers(
                    list(message.get("headers", [])), int(message["status"]), self._vary
                )
            await send(message)

        await self._app(scope, receive, send_with_headers)


def with_standard_headers(headers: list[tuple[bytes, bytes]], status: int, vary: bytes) -> list[tuple[bytes, bytes]]:
    names = {name.lower() for name, _ in headers}
    if b"vary" not in names:
        headers.append((b"vary", vary))
    if status >= 400 and b"cache-control" not in names:
        headers.append((b"cache-control", NO_STORE))
    return headers


def install(app: FastAPI, vary: str) -> None:
    """Every answer of `app` carries `Vary: <vary>`; every error, unless its route set one, no-store."""
    app.add_middleware(StandardHeaders, vary=vary)

    @app.exception_handler(Exception)
    async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the exception and re-raises it after this answer is sent; the body names no detail.
        return JSONResponse(
            status_code=500,
            content={"error": "internal_error", "message": "the request could not be answered; please retry"},
            headers={"Cache-Control": "no-store", "Vary": vary},
        )
