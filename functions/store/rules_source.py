"""The live rules document in the artifact bucket, read through a cache of `max_age_s`.

Layout: s3://BUCKET/rules/<version>.json (every published document, kept) and s3://BUCKET/rules/current.json
(the one in force). Merchandisers publish with `python -m model_export publish-rules`; serve picks the change up
within the cache's max age, without a deploy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError

from store import aws
from store.max_age import MaxAge

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "rules"
CURRENT = f"{PREFIX}/current.json"


class S3Objects:
    """The bucket's objects as the rules need them: read, write, ask whether one exists."""

    def __init__(self, bucket: str, region: str, s3: S3Client | None = None) -> None:
        self._bucket = bucket
        # A plain botocore client, as for the model artifacts: boto3 would only add import time.
        self._s3 = s3 or cast("S3Client", aws.client("s3", region))

    def get(self, key: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return body

    def put(self, key: str, body: bytes) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError:
            return False
        return True


class RulesSource:
    def __init__(
        self,
        bucket: str,
        region: str,
        max_age_s: float,
        s3: S3Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`s3`: a client to share (serve passes the artifact store's), else one of its own."""
        self._objects = S3Objects(bucket, region, s3)
        self._clock = clock
        self._cache: MaxAge[str, bytes] = MaxAge(max_age_s)

    def fetch(self) -> bytes:
        """The current document's bytes: the cached object until it is `max_age_s` old, then a fresh read.

        Raises botocore's errors when the bucket cannot be read or holds no document (NoSuchKey).
        """
        return self._cache.get(CURRENT, self._clock(), lambda: self._objects.get(CURRENT))

    def publish(self, version: str, body: bytes) -> str:
        """Keep the document under its version, then make it current (readers never see a partial one)."""
        key = f"{PREFIX}/{version}.json"
        if self._objects.exists(key):
            raise FileExistsError(f"rules version {version} is already published; give the document a new version")
        self._objects.put(key, body)
        self._objects.put(CURRENT, body)
        return key
