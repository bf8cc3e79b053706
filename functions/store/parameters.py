"""Secrets from SSM through powertools Parameters, cached so a warm function does not re-read them."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from aws_lambda_powertools.utilities.parameters.ssm import SSMProvider

from store import aws

SECRET_MAX_AGE_S = 300


def get_secret(name: str) -> bytes:
    if "ssm" not in DEFAULT_PROVIDERS:  # parameters.clear_caches() empties it
        # The provider's client from the process's one botocore session (store.aws): a client of its own would
        # parse botocore's data files again, a cold start's 40 ms for one parameter.
        DEFAULT_PROVIDERS["ssm"] = SSMProvider(boto3_client=aws.boto3_client("ssm"))
    value = parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_S)
    if not value:
        raise LookupError(f"SSM parameter {name} is empty")
    return str(value).encode()
