"""Serve's hold on the rules document: a valid change takes over, anything else leaves the last good one."""

from __future__ import annotations

import json

from personalization.catalog import Catalog, CatalogItem
from serve.live_rules import LiveRules

CATALOG = Catalog([CatalogItem(f"i{n}", "shoes", 10.0, 100.0 - n) for n in range(10)])


def document(version: str, **rule: object) -> bytes:
    return json.dumps({"version": version, "rules": [{"id": "r", "kind": "exclude_cart", **rule}]}).encode()


class Bucket:
    """Stands in for the cached S3 read: returns what was last put, or raises what it was told to."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.error: Exception | None = None
        self.reads = 0

    def fetch(self) -> bytes:
        self.reads += 1
        if self.error is not None:
            raise self.error
        if self.body is None:
            raise LookupError("NoSuchKey: rules/current.json")
        return self.body


def test_nothing_published_means_the_built_in_defaults_and_no_error() -> None:
    bucket = Bucket()
    live = LiveRules(bucket.fetch, CATALOG, retry_after_s=0)
    assert live.current() is None
    assert live.version == "none"
    assert live.error is None


def test_a_valid_document_takes_over_and_an_invalid_one_never_does() -> None:
    bucket = Bucket()
    live = LiveRules(bucket.fetch, CATALOG, retry_after_s=0)
    bucket.body = document("v1")
    engine = live.current()
    assert engine is not None
    assert live.version == "v1"
    bucket.body = document("v2", kind="boost", factor=-1)
    assert live.current() is engine
    assert live.version == "v1"
    assert live.error is not None
    assert "factor" in live.error
    bucket.body = b"{oops"
    assert live.current() is engine
    bucket.body = document("v3")
    assert live.version == "v1"
    assert live.current() is not engine
    assert live.version == "v3"
    assert live.error is None


def test_an_unreadable_bucket_keeps_the_rules_and_is_not_asked_again_on_every_request() -> None:
    bucket = Bucket()
    live = LiveRules(bucket.fetch, CATALOG, retry_after_s=60)
    bucket.body = document("v1")
    assert live.current() is not None
    bucket.error = ConnectionError("bucket unreachable")
    reads = bucket.reads
    for _ in range(5):
        assert live.version == "v1"
        live.current()
    assert bucket.reads == reads + 1  # one failed read, then the retry pause
    assert live.error is not None
    assert "unreachable" in live.error
