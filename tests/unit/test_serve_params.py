"""The fragment route parses its parameters itself (serve.app._params, one validation per request); FastAPI, given
the same declared signature, is the oracle: the same values, or the same 422 problems in the same order."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from names import IDENTITY_COOKIE, IDENTITY_HEADER, SEGMENT_COOKIE
from serve import app as serve_app

PATH = serve_app.FRAGMENT_PATH


def _clients() -> tuple[TestClient, TestClient]:
    oracle = FastAPI()
    oracle.add_exception_handler(RequestValidationError, serve_app._invalid_request)  # type: ignore[arg-type]

    @functools.wraps(serve_app._fragment_parameters)
    def echo(**values: Any) -> dict[str, Any]:
        return values

    # FastAPI reads the wrapped function's signature: the parameters as the route declared them before issue 23.
    oracle.add_api_route(PATH, echo, response_model=None)

    parsed = FastAPI()
    parsed.add_exception_handler(RequestValidationError, serve_app._invalid_request)  # type: ignore[arg-type]

    async def own(http: Request) -> dict[str, Any]:
        return dict(serve_app._params(http).model_dump())

    parsed.add_api_route(PATH, own, response_model=None)
    return TestClient(oracle), TestClient(parsed)


ORACLE, PARSED = _clients()

# Values near every constraint: valid ones, empty ones, too long ones, wrong patterns, numbers out of range.
SLOTS = st.sampled_from(["for-you", "trending", "a", "x" * 32, "x" * 33, "Bad", "-lead", "a_b-9"])
QUERY_TEXT = st.one_of(
    st.sampled_from(["", "html", "json", "xml", "0", "1", "8", "50", "51", "-3", "2.5", "abc", "ab-c_9", "AB"]),
    st.text(min_size=0, max_size=40),
    st.integers(min_value=120, max_value=300).map(lambda n: "y" * n),
)
# What a header or cookie can carry (printable ASCII, no separators).
TOKEN_TEXT = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=';,"\\'), max_size=20),
    st.integers(min_value=60, max_value=300).map(lambda n: "t" * n),
)


def _request(
    client: TestClient, slot: str, query: dict[str, str], headers: dict[str, str], cookies: dict[str, str]
) -> Any:
    client.cookies.clear()
    for name, value in cookies.items():
        client.cookies.set(name, value)
    return client.get(PATH.replace("{slot}", slot), params=query, headers=headers)


@settings(max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    slot=SLOTS,
    query=st.dictionaries(st.sampled_from(["format", "k", "page", "item", "journey", "other"]), QUERY_TEXT),
    headers=st.dictionaries(st.sampled_from([IDENTITY_HEADER, "if-none-match", "x-other"]), TOKEN_TEXT),
    cookies=st.dictionaries(st.sampled_from([IDENTITY_COOKIE, SEGMENT_COOKIE, "other"]), TOKEN_TEXT),
)
def test_the_route_parses_its_parameters_as_fastapi_would(
    slot: str, query: dict[str, str], headers: dict[str, str], cookies: dict[str, str]
) -> None:
    expected = _request(ORACLE, slot, query, headers, cookies)
    got = _request(PARSED, slot, query, headers, cookies)
    assert (got.status_code, got.json()) == (expected.status_code, expected.json())


def test_problems_name_where_each_parameter_travels_in_fastapis_order() -> None:
    response = _request(
        PARSED,
        "Bad",
        {"k": "0", "format": "xml"},
        {IDENTITY_HEADER: "t" * 257, "if-none-match": "e" * 257},
        {IDENTITY_COOKIE: "p" * 257, SEGMENT_COOKIE: "s" * 65},
    )
    assert response.status_code == 422
    fields = [problem["field"] for problem in response.json()["problems"]]
    assert fields == [
        "path.slot",
        "query.format",
        "query.k",
        f"header.{IDENTITY_HEADER}",
        "header.if-none-match",
        f"cookie.{IDENTITY_COOKIE}",
        f"cookie.{SEGMENT_COOKIE}",
    ]


def test_the_openapi_document_describes_the_parameters_the_route_parses() -> None:
    operation = serve_app.app.openapi()["paths"][PATH]["get"]
    documented = [(parameter["in"], parameter["name"]) for parameter in operation["parameters"]]
    assert documented == [(where, name) for name, where in serve_app._LOCATION.items()]
    assert ("header", IDENTITY_HEADER) in documented
    assert ("cookie", IDENTITY_COOKIE) in documented
