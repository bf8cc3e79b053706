"""The two cached reads every function makes of the loopback stack: a secret from SSM (store.parameters) and the
rules document from S3 (store.rules_source). Each is read again only once its max age has passed, by the clock
it is given; a missing one raises botocore's error, which says what is missing."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from infra.local.stack import LocalStack
from store import parameters
from store.rules_source import CURRENT, RulesSource
from tests.helpers.serve_app import Clock


def test_a_secret_is_read_once_per_max_age(clean_stack: LocalStack, stack_env: LocalStack) -> None:
    parameters.clear_cache()
    ssm, clock = clean_stack.client("ssm"), Clock()
    name = "/test/cached-secret"
    ssm.put_parameter(Name=name, Value="first", Type="SecureString")
    assert parameters.get_secret(name, clock) == b"first"
    ssm.put_parameter(Name=name, Value="second", Type="SecureString", Overwrite=True)
    clock.now += parameters.SECRET_MAX_AGE_S - 1
    assert parameters.get_secret(name, clock) == b"first"
    clock.now += 1
    assert parameters.get_secret(name, clock) == b"second"
    clock.now -= 10_000  # a clock set back: the cached value's age cannot be told, so it is read again
    ssm.put_parameter(Name=name, Value="third", Type="SecureString", Overwrite=True)
    assert parameters.get_secret(name, clock) == b"third"
    parameters.clear_cache()


def test_a_missing_secret_raises_botocores_error_naming_it(clean_stack: LocalStack, stack_env: LocalStack) -> None:
    parameters.clear_cache()
    with pytest.raises(ClientError) as missing:
        parameters.get_secret("/test/no-such-secret")
    assert missing.value.response["Error"]["Code"] == "ParameterNotFound"
    parameters.clear_cache()


def test_the_rules_document_is_read_once_per_max_age(clean_stack: LocalStack, stack_env: LocalStack) -> None:
    bucket = clean_stack.function_env("ServeFunction")["ARTIFACT_BUCKET"]
    clock = Clock()
    source = RulesSource(bucket, clean_stack.region, max_age_s=60, clock=clock)
    first = json.dumps({"version": "r1", "rules": []}).encode()
    source.publish("r1", first)
    assert source.fetch() == first
    second = json.dumps({"version": "r2", "rules": []}).encode()
    source.publish("r2", second)
    clock.now += 59.9
    assert source.fetch() is source.fetch() == first  # the cached bytes themselves: LiveRules compares them
    clock.now += 0.1
    assert source.fetch() == second
    with pytest.raises(FileExistsError):
        source.publish("r2", second)
    every_time = RulesSource(bucket, clean_stack.region, max_age_s=0, clock=clock)
    clean_stack.client("s3").put_object(Bucket=bucket, Key=CURRENT, Body=first)
    assert every_time.fetch() == first


def test_no_rules_document_raises_an_error_that_says_nosuchkey(clean_stack: LocalStack, stack_env: LocalStack) -> None:
    """LiveRules tells "nothing published yet" (the built-in defaults apply) from a failed read by this word."""
    bucket = clean_stack.function_env("ServeFunction")["ARTIFACT_BUCKET"]
    with pytest.raises(ClientError) as missing:
        RulesSource(bucket, clean_stack.region, max_age_s=0).fetch()
    assert "NoSuchKey" in str(missing.value)
