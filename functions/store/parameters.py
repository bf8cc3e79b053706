"""Secrets from SSM through powertools Parameters, cached so a warm function does not re-read them."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

SECRET_MAX_AGE_S = 300


def get_secret(name: str) -> bytes:
    value = parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_S)
    if not value:
        raise LookupError(f"SSM parameter {name} is empty")
    return str(value).encode()
