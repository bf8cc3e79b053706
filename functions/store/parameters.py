"""Secrets from SSM, cached so a warm function does not re-read them.

Not powertools Parameters (which this used to be): its package imports every provider it has, and they import
boto3 (with s3transfer and multiprocessing), 14 ms of CPU at every cold start of serve, ingest and collect for
one GetParameter and a cache of one value. The call is botocore's, from the process's one session (store.aws),
like every other client here; the cache is the expiry kept beside each value.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, cast

from store import aws
from store.region import region_from

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

SECRET_MAX_AGE_S = 300

# name -> (read at, value); wall time, not monotonic: a SnapStart container restored days after its snapshot
# must read again, and a monotonic clock restarts with the restored VM.
_cache: dict[str, tuple[float, bytes]] = {}
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _ssm() -> SSMClient:
    return cast("SSMClient", aws.client("ssm", region_from(os.environ)))


def get_secret(name: str, clock: Callable[[], float] = time.time) -> bytes:
    """The parameter's decrypted value, read at most every SECRET_MAX_AGE_S; errors are botocore's (the
    caller decides what a missing secret means), LookupError for an empty one."""
    now = clock()
    with _lock:
        cached = _cache.get(name)
    if cached is not None and 0 <= now - cached[0] < SECRET_MAX_AGE_S:
        return cached[1]
    value = _ssm().get_parameter(Name=name, WithDecryption=True)["Parameter"].get("Value", "")
    if not value:
        raise LookupError(f"SSM parameter {name} is empty")
    read = value.encode()
    with _lock:
        _cache[name] = (now, read)
    return read


def clear_cache() -> None:
    """Forget every cached value (tests, and a process whose environment changed: the client's region too)."""
    with _lock:
        _cache.clear()
    _ssm.cache_clear()
