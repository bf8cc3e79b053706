"""One botocore session per process, from which every plain botocore client of this package is made.

A session's loader caches what it reads from botocore's data files; each fresh session re-reads them, and
endpoints.json alone is 1.2 MB of JSON. serve makes its S3 (artifacts, rules) and Kinesis clients at init, so
sharing one session saves a cold start those repeated parses. botocore's client creation is not thread-safe on
a shared session, hence the lock (clients are made at init or rarely; using a client is thread-safe): serve makes
its clients on two threads at init, so every client of the shared session is made under `creating()`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

# Reentrant: client() holds it while session() takes it too.
_LOCK = threading.RLock()


@contextmanager
def creating() -> Iterator[None]:
    """Hold while a library (boto3, pynamodb) makes a client from the shared session."""
    with _LOCK:
        yield


def session() -> botocore.session.Session:
    with _LOCK:  # two threads asking first must not make two sessions
        return _session()


@lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


def boto3_session() -> boto3.Session:
    """A boto3 session over the same botocore session, for a library that wants a boto3 client. One only: each
    boto3 session registers its handlers on the botocore session it wraps, and twice is an error."""
    with _LOCK:
        return _boto3_session()


@lru_cache(maxsize=1)
def _boto3_session() -> boto3.Session:
    return boto3.Session(botocore_session=session())


def boto3_client(service: str) -> Any:
    """A boto3 client of the shared session (for powertools' providers), made under the lock."""
    with _LOCK:
        return boto3_session().client(service)  # type: ignore[call-overload]


def client(service: str, region: str, config: Config | None = None) -> Any:
    """A botocore client of `service` in `region` (callers cast it to their mypy_boto3 type)."""
    with _LOCK:
        return session().create_client(service, region_name=region, config=config)
