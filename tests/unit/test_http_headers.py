"""The headers every HTTP answer carries, whatever produced it (route, validation error, unhandled exception)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from http_headers import install


def app_with_routes() -> FastAPI:
    app = FastAPI()
    install(app, vary="Cookie, x-pz-token")

    @app.get("/ok")
    def ok() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/cached-error")
    def cached_error() -> JSONResponse:
        return JSONResponse({"error": "gone"}, status_code=410, headers={"Cache-Control": "public, max-age=60"})

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/number/{n}")
    def number(n: int) -> int:
        return n

    return app


def test_every_answer_varies_and_errors_are_never_stored() -> None:
    client = TestClient(app_with_routes(), raise_server_exceptions=False)
    ok, invalid, missing, crashed = (client.get(p) for p in ("/ok", "/number/x", "/nowhere", "/boom"))
    assert ok.status_code == 200
    assert "cache-control" not in ok.headers
    assert (invalid.status_code, missing.status_code, crashed.status_code) == (422, 404, 500)
    for response in (ok, invalid, missing, crashed):
        assert response.headers["vary"] == "Cookie, x-pz-token"
    for response in (invalid, missing, crashed):
        assert response.headers["cache-control"] == "no-store"
    # The unhandled exception's answer says nothing of the exception
    assert crashed.json()["error"] == "internal_error"
    assert "a bug" not in crashed.text


def test_a_route_that_chose_its_own_cache_control_keeps_it() -> None:
    response = TestClient(app_with_routes()).get("/cached-error")
    assert response.headers["cache-control"] == "public, max-age=60"
