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
    live = LiveRules(bucket.fetch)
    assert live.poll(CATALOG, None) is None
    assert live.document is None
    assert live.error is None


def test_a_valid_document_takes_over_and_an_invalid_one_never_does() -> None:
    bucket = Bucket()
    live = LiveRules(bucket.fetch)
    bucket.body = document("v1")
    engine = live.poll(CATALOG, None)
    assert engine is not None
    assert engine.version == "v1"
    bucket.body = document("v2", kind="boost", factor=-1)
    assert live.poll(CATALOG, engine) is engine
    assert live.error is not None
    assert "factor" in live.error
    for hostile in (b"{oops", b"[" * 100_000, b'{"version": ' + b"1" * 5000 + b"}", b"null", b"[]"):
        bucket.body = hostile
        assert live.poll(CATALOG, engine) is engine
        assert live.document is not None
        assert live.document.version == "v1"
    bucket.body = document("v3")
    newer = live.poll(CATALOG, engine)
    assert newer is not None
    assert newer.version == "v3"
    assert live.error is None


def test_the_same_document_is_judged_once() -> None:
    bucket = Bucket()
    live = LiveRules(bucket.fetch)
    bucket.body = document("v1")
    engine = live.poll(CATALOG, None)
    assert live.poll(CATALOG, engine) is engine  # unchanged bytes: no recompile


def test_an_unreadable_bucket_keeps_the_rules_and_says_so() -> None:
    bucket = Bucket()
    live = LiveRules(bucket.fetch)
    bucket.body = document("v1")
    engine = live.poll(CATALOG, None)
    bucket.error = ConnectionError("bucket unreachable")
    assert live.poll(CATALOG, engine) is engine
    assert live.error is not None
    assert "unreachable" in live.error


def test_the_last_good_document_compiles_against_another_catalog() -> None:
    bucket = Bucket()
    live = LiveRules(bucket.fetch)
    assert live.compile(CATALOG) is None
    bucket.body = document("v1")
    live.poll(CATALOG, None)
    other = Catalog([CatalogItem("x", "hats", 1.0, 1.0)])
    engine = live.compile(other)
    assert engine is not None
    assert engine.version == "v1"
