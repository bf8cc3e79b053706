"""The CloudFront key value store the viewer-request function reads: which viewer context dimensions the live
rules document uses ("context-dimensions", e.g. "device,timezone"), so the edge keys shared fragments on them.

Written when a rules document is published (`python -m model_export publish-rules --key-value-store ARN`).
Until it is, or while it lags a new document, serve finds the request's context key short of what the rules
read and keeps the fragment private (serve/edge_context.py): a stale store costs cache hits, never a wrong
answer.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import botocore.session
from botocore.exceptions import ClientError, MissingDependencyException

DIMENSIONS_KEY = "context-dimensions"


class EdgeConfigError(RuntimeError):
    """The key value store could not be written; the message says why and what to do."""


def dimensions_value(dimensions: Collection[str]) -> str | None:
    """The stored value: the dimensions, sorted, comma-separated; None (the key removed) when there are none."""
    return ",".join(sorted(dimensions)) or None


def publish_dimensions(store_arn: str, dimensions: Collection[str], region: str) -> str | None:
    """Make the store hold `dimensions`; returns the value written (None: the key was removed)."""
    # The key value store API signs with SigV4A, which botocore does only with the AWS CRT installed
    # (`pip install botocore[crt]`, a publishing machine's dependency, never a Lambda's).
    client: Any = botocore.session.get_session().create_client("cloudfront-keyvaluestore", region_name=region)
    value = dimensions_value(dimensions)
    try:
        etag = client.describe_key_value_store(KvsARN=store_arn)["ETag"]
        if value is not None:
            client.put_key(KvsARN=store_arn, Key=DIMENSIONS_KEY, Value=value, IfMatch=etag)
        else:
            try:
                client.delete_key(KvsARN=store_arn, Key=DIMENSIONS_KEY, IfMatch=etag)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
    except MissingDependencyException as exc:
        raise EdgeConfigError(f"writing the key value store needs botocore[crt] (SigV4A): {exc}") from exc
    except ClientError as exc:
        raise EdgeConfigError(f"the key value store {store_arn} could not be written: {exc}") from exc
    return value
