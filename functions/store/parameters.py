"""Secrets from SSM, cached so a warm function does not re-read them.

Not powertools Parameters (which this used to be): its package imports every provider it has, and they import
boto3 (with s3transfer and multiprocessing), 14 ms of CPU at every cold start of serve, ingest and collect for
one GetParameter and a cache of one value. The call is botocore's, from the process's one session (store.aws),
like every other client here; the cache is store.max_age's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, cast

from store import aws
from store.max_age import MaxAge
from store.region import region_from

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

SECRET_MAX_AGE_S = 300

_cache: MaxAge[str, bytes] = MaxAge(SECRET_MAX_AGE_S)


@lru_cache(maxsize=1)
def _ssm() -> SSMClient:
    return cast("SSMClient", aws.client("ssm", region_from(os.environ)))


def get_secret(name: str, clock: Callable[[], float] = time.time) -> bytes:
    """The parameter's decrypted value, read at most every SECRET_MAX_AGE_S; errors are botocore's (the
    caller decides what a missing secret means), LookupError for an empty one."""
    return _cache.get(name, clock(), lambda: _read(name))


def _read(name: str) -> bytes:
    value = _ssm().get_parameter(Name=name, WithDecryption=True)["Parameter"].get("Value", "")
    if not value:
        raise LookupError(f"SSM parameter {name} is empty")
    return value.encode()


def clear_cache() -> None:
    """Forget every cached value (tests, and a process whose environment changed: the client's region too)."""
    _cache.clear()
    _ssm.cache_clear()
