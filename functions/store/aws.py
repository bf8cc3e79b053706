"""One botocore session per process, from which every plain botocore client of this package is made.

A session's loader caches what it reads from botocore's data files; each fresh session re-reads them, and
endpoints.json alone is 1.2 MB of JSON. serve makes its S3 (artifacts, rules) and Kinesis clients at init, so
sharing one session saves a cold start those repeated parses. botocore's client creation is not thread-safe on
a shared session, hence the lock (clients are made at init or rarely; using a client is thread-safe).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def session() -> botocore.session.Session:
    return botocore.session.get_session()


@lru_cache(maxsize=1)
def boto3_session() -> boto3.Session:
    """A boto3 session over the same botocore session, for a library that wants a boto3 client. One only: each
    boto3 session registers its handlers on the botocore session it wraps, and twice is an error."""
    return boto3.Session(botocore_session=session())


def client(service: str, region: str, config: Config | None = None) -> Any:
    """A botocore client of `service` in `region` (callers cast it to their mypy_boto3 type)."""
    with _LOCK:
        return session().create_client(service, region_name=region, config=config)
