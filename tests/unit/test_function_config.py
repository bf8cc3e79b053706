"""Each function's configuration, read from the environment (FunctionSettings.from_env): names, types, bounds."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from collect.config import CollectConfig
from erase.config import EraseConfig
from ingest.config import IngestConfig
from personalization.profile import FoldSettings
from serve.config import ServeConfig
from store.region import DEFAULT_REGION, region_from
from store.settings import FunctionSettings
from store.stream import StreamSettings

# Every variable any function's configuration reads; each test starts with none of them set.
VARIABLES = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "PROFILES_TABLE",
    "QUARANTINE_TABLE",
    "ERASURE_LOG_TABLE",
    "PEPPER_PARAMETER",
    "IDENTITY_KEY_PARAMETER",
    "ARTIFACT_BUCKET",
    "STREAM_NAME",
    "PROFILE_RETENTION_DAYS",
    "QUARANTINE_RETENTION_DAYS",
    "AFFINITY_HALF_LIFE_HOURS",
    "PROFILE_CONNECT_TIMEOUT_S",
    "PROFILE_READ_TIMEOUT_S",
    "RULES_MAX_AGE_S",
    "STREAM_CONNECT_TIMEOUT_S",
    "STREAM_READ_TIMEOUT_S",
    "ERASURE_TOMBSTONE_DAYS",
    "ERASURE_LOG_RETENTION_DAYS",
    "ARCHIVE_DELIVERY_STREAM",
    "ARCHIVE_BUCKET",
)
# What each configuration cannot do without.
REQUIRED: dict[type[FunctionSettings], dict[str, str]] = {
    IngestConfig: {"PROFILES_TABLE": "profiles", "QUARANTINE_TABLE": "quarantine", "PEPPER_PARAMETER": "/pepper"},
    ServeConfig: {
        "PROFILES_TABLE": "profiles",
        "IDENTITY_KEY_PARAMETER": "/identity-key",
        "ARTIFACT_BUCKET": "artifacts",
        "QUARANTINE_TABLE": "quarantine",
        "ERASURE_LOG_TABLE": "erasure-log",
    },
    CollectConfig: {"STREAM_NAME": "events", "IDENTITY_KEY_PARAMETER": "/identity-key"},
    EraseConfig: {
        "PROFILES_TABLE": "profiles",
        "QUARANTINE_TABLE": "quarantine",
        "ERASURE_LOG_TABLE": "erasure-log",
        "PEPPER_PARAMETER": "/pepper",
    },
}
CONFIGS = sorted(REQUIRED, key=lambda config: config.__name__)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def given(env: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        env.setenv(name, value)


# Every field of each configuration when only its required variables are set, by field name: the required
# ones from REQUIRED, the others their defaults.
DEFAULTS: dict[type[FunctionSettings], dict[str, Any]] = {
    IngestConfig: {
        "profile_retention_days": 180,
        "quarantine_retention_days": 14,
        "affinity_half_life_hours": 168.0,
        "archive_delivery_stream": None,
        "archive_bucket": None,
        "trending_table": None,
        "trending_half_life_hours": 1.0,
    },
    ServeConfig: {
        "profile_connect_timeout_s": 0.02,
        "profile_read_timeout_s": 0.03,
        "affinity_half_life_hours": 168.0,
        "rules_max_age_s": 60,
        "model_max_age_s": 60.0,
        "stream_name": None,
        "tombstone_days": 30,
        "erasure_log_retention_days": 1095,
        "trending_table": None,
        "trending_half_life_hours": 1.0,
        "dismiss_days": 30.0,
    },
    CollectConfig: {"profile_retention_days": 180, "stream_connect_timeout_s": 0.25, "stream_read_timeout_s": 0.5},
    EraseConfig: {"tombstone_days": 30, "erasure_log_retention_days": 1095},
}


@pytest.mark.parametrize("config", CONFIGS)
def test_each_config_reads_its_required_variables_and_defaults_the_rest(
    env: pytest.MonkeyPatch, config: type[FunctionSettings]
) -> None:
    given(env, REQUIRED[config])
    required = {name.lower(): value for name, value in REQUIRED[config].items()}
    assert config.from_env().model_dump() == {**required, "region": DEFAULT_REGION, **DEFAULTS[config]}


def test_the_derived_settings_follow_the_defaults(env: pytest.MonkeyPatch) -> None:
    for config in CONFIGS:
        given(env, REQUIRED[config])
    ingest, serve = IngestConfig.from_env(), ServeConfig.from_env()
    collect, erase = CollectConfig.from_env(), EraseConfig.from_env()
    assert (ingest.retention, ingest.quarantine_retention) == (timedelta(days=180), timedelta(days=14))
    assert ingest.max_conflict_retries == 5
    assert serve.fold_settings == FoldSettings(affinity_half_life_ms=168 * 3600 * 1000)
    assert (serve.public_max_age_s, serve.stale_while_revalidate_s) == (60, 300)
    assert collect.anonymous_id_ttl_s == 180 * 86400
    expected_stream = StreamSettings("events", DEFAULT_REGION, connect_timeout_s=0.25, read_timeout_s=0.5)
    assert collect.stream_settings == expected_stream
    assert (erase.tombstone_for, erase.erasure_log_retention) == (timedelta(days=30), timedelta(days=1095))


def test_ingest_reads_every_optional_variable_with_its_type(env: pytest.MonkeyPatch) -> None:
    given(env, REQUIRED[IngestConfig])
    given(env, {"PROFILE_RETENTION_DAYS": "90", "QUARANTINE_RETENTION_DAYS": "7", "AFFINITY_HALF_LIFE_HOURS": "12.5"})
    config = IngestConfig.from_env()
    assert (config.profile_retention_days, config.quarantine_retention_days) == (90, 7)
    assert config.affinity_half_life_hours == 12.5
    assert isinstance(config.profile_retention_days, int)


def test_serve_reads_every_optional_variable_with_its_type(env: pytest.MonkeyPatch) -> None:
    given(env, REQUIRED[ServeConfig])
    given(
        env,
        {
            "PROFILE_CONNECT_TIMEOUT_S": "0.5",
            "PROFILE_READ_TIMEOUT_S": "1",
            "AFFINITY_HALF_LIFE_HOURS": "24",
            "RULES_MAX_AGE_S": "5",
            "STREAM_NAME": "events",
            "ERASURE_TOMBSTONE_DAYS": "3",
            "ERASURE_LOG_RETENTION_DAYS": "400",
            # Constants, not variables: setting them changes nothing.
            "PUBLIC_MAX_AGE_S": "1",
            "STALE_WHILE_REVALIDATE_S": "1",
        },
    )
    config = ServeConfig.from_env()
    assert (config.profile_connect_timeout_s, config.profile_read_timeout_s) == (0.5, 1.0)
    assert config.fold_settings == FoldSettings(affinity_half_life_ms=24 * 3600 * 1000)
    assert (config.rules_max_age_s, config.stream_name) == (5, "events")
    assert (config.tombstone_days, config.erasure_log_retention_days) == (3, 400)
    assert (config.public_max_age_s, config.stale_while_revalidate_s) == (60, 300)


def test_serve_logs_no_impressions_when_the_stream_name_is_empty(env: pytest.MonkeyPatch) -> None:
    given(env, {**REQUIRED[ServeConfig], "STREAM_NAME": ""})
    assert ServeConfig.from_env().stream_name is None


def test_collect_reads_every_optional_variable_with_its_type(env: pytest.MonkeyPatch) -> None:
    given(env, REQUIRED[CollectConfig])
    given(env, {"PROFILE_RETENTION_DAYS": "30", "STREAM_CONNECT_TIMEOUT_S": "1", "STREAM_READ_TIMEOUT_S": "2.5"})
    config = CollectConfig.from_env()
    assert config.retention == timedelta(days=30)
    assert (config.stream_connect_timeout_s, config.stream_read_timeout_s) == (1.0, 2.5)


def test_erase_reads_its_tombstone_from_the_erasure_variable(env: pytest.MonkeyPatch) -> None:
    given(env, {**REQUIRED[EraseConfig], "ERASURE_TOMBSTONE_DAYS": "2", "ERASURE_LOG_RETENTION_DAYS": "7"})
    given(env, {"TOMBSTONE_DAYS": "99", "tombstone_days": "99"})  # the field's own name is no variable
    config = EraseConfig.from_env()
    assert (config.tombstone_for, config.erasure_log_retention) == (timedelta(days=2), timedelta(days=7))


@pytest.mark.parametrize(
    ("config", "name", "value", "complaint"),
    [
        (IngestConfig, "PROFILE_RETENTION_DAYS", "0", "greater than or equal to 1"),
        (IngestConfig, "AFFINITY_HALF_LIFE_HOURS", "a week", "valid number"),
        (ServeConfig, "PROFILE_READ_TIMEOUT_S", "0", "greater than 0"),
        (ServeConfig, "RULES_MAX_AGE_S", "1.5", "valid integer"),
        (ServeConfig, "ERASURE_TOMBSTONE_DAYS", "1", "greater than or equal to 2"),
        (CollectConfig, "STREAM_CONNECT_TIMEOUT_S", "-1", "greater than 0"),
        (EraseConfig, "ERASURE_TOMBSTONE_DAYS", "1", "greater than or equal to 2"),
        (EraseConfig, "ERASURE_LOG_RETENTION_DAYS", "forever", "valid integer"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(
    env: pytest.MonkeyPatch, config: type[FunctionSettings], name: str, value: str, complaint: str
) -> None:
    given(env, {**REQUIRED[config], name: value})
    with pytest.raises(ValidationError) as refused:
        config.from_env()
    assert [error["loc"] for error in refused.value.errors()] == [(name,)]
    assert name in str(refused.value)
    assert complaint in str(refused.value)


@pytest.mark.parametrize("config", CONFIGS)
def test_each_missing_required_variable_is_named(env: pytest.MonkeyPatch, config: type[FunctionSettings]) -> None:
    # Case-sensitive: a lower-case spelling of a variable is not that variable.
    given(env, {name.lower(): value for name, value in REQUIRED[config].items()})
    with pytest.raises(ValidationError) as refused:
        config.from_env()
    assert {error["loc"] for error in refused.value.errors()} == {(name,) for name in REQUIRED[config]}
    assert {error["type"] for error in refused.value.errors()} == {"missing"}


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    ("region", "default_region", "expected"),
    [
        ("eu-west-1", "ap-south-1", "eu-west-1"),  # Lambda's own variable wins
        (None, "ap-south-1", "ap-south-1"),
        ("", "ap-south-1", "ap-south-1"),  # an empty variable falls through, like region_from's `or`
        ("", "", DEFAULT_REGION),
        (None, None, DEFAULT_REGION),
    ],
)
def test_the_region_is_read_the_way_region_from_reads_it(
    env: pytest.MonkeyPatch,
    config: type[FunctionSettings],
    region: str | None,
    default_region: str | None,
    expected: str,
) -> None:
    given(env, REQUIRED[config])
    for name, value in (("AWS_REGION", region), ("AWS_DEFAULT_REGION", default_region)):
        if value is not None:
            env.setenv(name, value)
    assert config.from_env().region == expected == region_from(os.environ)


@pytest.mark.parametrize("config", CONFIGS)
def test_unrelated_variables_are_ignored(env: pytest.MonkeyPatch, config: type[FunctionSettings]) -> None:
    given(env, {**REQUIRED[config], "SOMETHING_ELSE": "x", "POWERTOOLS_SERVICE_NAME": "personalization"})
    loaded = config.from_env()
    assert not loaded.model_extra
    assert set(loaded.model_dump()) == set(config.model_fields)
