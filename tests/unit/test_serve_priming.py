"""serve.handler primes the app at init (a request or two through it) only where init is off the visitor's
path: a SnapStart snapshot or provisioned concurrency, as Lambda names the start in
AWS_LAMBDA_INITIALIZATION_TYPE; an on-demand start, or one that does not say, is not primed."""

from __future__ import annotations

import pytest

from serve.wiring import primes_at_init


@pytest.mark.parametrize(
    ("kind", "primed"),
    [
        ("snap-start", True),
        ("provisioned-concurrency", True),
        ("on-demand", False),
        ("", False),
        ("SNAP-START", False),  # Lambda's values are lower-case; anything else is not one of them
        (None, False),
    ],
)
def test_priming_follows_the_kind_of_start(kind: str | None, primed: bool) -> None:
    environ = {} if kind is None else {"AWS_LAMBDA_INITIALIZATION_TYPE": kind}
    assert primes_at_init(environ) is primed
