"""The live rules document in the artifact bucket, read through powertools Parameters' TTL cache.

Layout: s3://BUCKET/rules/<version>.json (every published document, kept) and s3://BUCKET/rules/current.json
(the one in force). Merchandisers publish with `python -m model_export publish-rules`; serve picks the change up
within the cache's max age, without a deploy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.utilities.parameters.base import BaseProvider
from botocore.exceptions import ClientError

from store import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "rules"
CURRENT = f"{PREFIX}/current.json"


class S3ObjectProvider(BaseProvider):
    """Powertools ships SSM, Secrets Manager, AppConfig and DynamoDB providers but none for S3; a rules
    document outgrows an SSM parameter (8 KB at most), so this reads an object and inherits the TTL cache."""

    def __init__(self, bucket: str, region: str, s3: S3Client | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # powertools leaves it unannotated
        self._bucket = bucket
        # A plain botocore client, as for the model artifacts: boto3 would only add import time.
        self._s3 = s3 or cast("S3Client", aws.client("s3", region))

    def _get(self, name: str, **sdk_options: Any) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self._bucket, Key=name, **sdk_options)["Body"].read()
        return body

    def _get_multiple(self, path: str, **sdk_options: Any) -> dict[str, str]:
        raise NotImplementedError("rules are one object")

    def put(self, key: str, body: bytes) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError:
            return False
        return True


class RulesSource:
    def __init__(self, bucket: str, region: str, max_age_s: int, s3: S3Client | None = None) -> None:
        """`s3`: a client to share (serve passes the artifact store's), else one of its own."""
        self._provider = S3ObjectProvider(bucket, region, s3)
        self._max_age_s = max_age_s

    def fetch(self) -> bytes:
        """The current document's bytes: the cached object until it is `max_age_s` old, then a fresh read.

        Raises powertools' GetParameterError when the bucket cannot be read or holds no document.
        """
        return cast(bytes, self._provider.get(CURRENT, max_age=self._max_age_s))

    def publish(self, version: str, body: bytes) -> str:
        """Keep the document under its version, then make it current (readers never see a partial one)."""
        key = f"{PREFIX}/{version}.json"
        if self._provider.exists(key):
            raise FileExistsError(f"rules version {version} is already published; give the document a new version")
        self._provider.put(key, body)
        self._provider.put(CURRENT, body)
        return key
