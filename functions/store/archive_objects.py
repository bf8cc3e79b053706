"""The event archive's objects in S3, listed and read whole: what the trainer (and the retraining job) reads.

The archive is written by Firehose (one object per delivery, newline-delimited JSON, maybe gzip); this module
only lists keys under a prefix and returns an object's bytes. What the bytes mean is model_export.data's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import botocore.session
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class ArchiveReadError(Exception):
    """The archive cannot be listed (missing bucket, no permission)."""


@dataclass(frozen=True, slots=True)
class ArchiveObject:
    key: str
    size: int


class S3Objects:
    """Objects under `s3://bucket/prefix`, in key order (S3 lists keys in UTF-8 binary order)."""

    def __init__(self, bucket: str, prefix: str, region: str) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._s3 = cast("S3Client", botocore.session.get_session().create_client("s3", region_name=region))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def objects(self) -> Iterator[ArchiveObject]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for entry in page.get("Contents", []):
                    yield ArchiveObject(entry["Key"], int(entry.get("Size", 0)))
        except ClientError as exc:
            raise ArchiveReadError(f"cannot list {self}: {exc}") from exc

    def read(self, key: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body
