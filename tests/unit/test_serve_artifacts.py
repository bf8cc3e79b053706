"""Damaged artifacts never take serve down: whatever the bucket holds, serve starts, health answers, every
fragment is a 200 (flagged when it falls back), and the last good rules stay in force.

Each hostile input here made today's serve answer 500 on every route (or fail at Lambda init), or turned every
fragment into `fallback; reason=internal_error` with `X-Rules-Version: none`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalization.features import FEATURE_SCHEMA_VERSION
from store.artifacts import PREFIX
from tests.helpers.serve_app import App, Bucket, start

DEEP = b"[" * 100_000 + b"]" * 100_000
DIGITS = b'{"version": "v", "rules": [], "n": ' + b"7" * 5000 + b"}"

# Arbitrary JSON, small and large, nested and flat: what a hand edit, a bad tool or an attacker could leave.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
# The same, sometimes with the keys serve reads, so the generator reaches past the first check.
OBJECT = st.fixed_dictionaries(
    {},
    optional={
        "version": JSON | st.sampled_from(["v2", "v1", "../v1", "v 2", ""]),
        "files": JSON | st.dictionaries(st.sampled_from(["catalog.json", "recs.onnx", "../x"]), JSON, max_size=3),
        "items": JSON | st.lists(JSON | st.fixed_dictionaries({"id": JSON, "popularity": JSON}), max_size=4),
        "feature_schema_version": JSON,
        "recs_model": JSON,
        "segment_model": JSON,
        "segments": JSON,
        "rules": JSON | st.lists(st.fixed_dictionaries({"id": JSON, "kind": st.sampled_from(["pin", "exclude"])})),
        "experiments": JSON,
    },
)
HOSTILE = (JSON | OBJECT).map(lambda value: json.dumps(value).encode()) | st.sampled_from(
    [DEEP, DIGITS, b"", b"{", b"\xff\xfe", b"NaN", b'{"version": NaN}']
)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def fragment(served: App) -> Any:
    return served.get("/v1/fragments/for-you?format=json&k=4")


def assert_serves(served: App, bucket: Bucket) -> None:
    """Serve starts against `bucket`, health answers 200, and a fragment is a flagged or plain 200."""
    served.state = start(bucket)
    health = served.get("/v1/health")
    assert health.status_code == 200
    response = fragment(served)
    assert response.status_code == 200, response.text
    assert response.headers["x-personalization"] != "fallback; reason=internal_error"


def with_catalog_digest(version: str, manifest: dict[str, Any], catalog: bytes) -> bytes:
    return json.dumps(
        {
            "version": version,
            "feature_schema_version": FEATURE_SCHEMA_VERSION,
            **manifest,
            "files": {"catalog.json": _sha(catalog)},
        }
    ).encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("pointer", [b"[]", b"null", b'"v1"', b"{}", b'{"version": "a\\nb"}', b'{"version": 7}', DEEP])
def test_a_pointer_of_the_wrong_shape_is_the_flagged_empty_fallback(served: App, pointer: bytes) -> None:
    bucket = Bucket()
    bucket.publish("v1")
    bucket.point(pointer)
    assert_serves(served, bucket)
    assert fragment(served).headers["x-personalization"] == "fallback; reason=model_unavailable"
    assert served.get("/v1/health").json()["status"] == "degraded"


@pytest.mark.parametrize(
    "manifest",
    [
        b"[]",
        b'{"version": "v1", "feature_schema_version": "1", "files": "catalog.json"}',
        b'{"version": "v1", "feature_schema_version": "1", "files": {"../../rules/current.json": "'
        + b"0" * 64
        + b'"}}',
        b'{"version": "v1", "feature_schema_version": "1", "files": {"catalog.json": null}}',
        b'{"version": "v1", "files": {}, "manifest_schema_version": 99}',
        DEEP,
        b'{"version": "v1", "files": {}, "n": ' + b"9" * 5000 + b"}",
    ],
)
def test_a_manifest_of_the_wrong_shape_is_the_flagged_empty_fallback(served: App, manifest: bytes) -> None:
    bucket = Bucket()
    bucket.publish("v1", manifest=manifest)
    assert_serves(served, bucket)
    assert fragment(served).headers["x-personalization"] == "fallback; reason=model_unavailable"


@pytest.mark.parametrize(
    "catalog", [b'{"items": "abc"}', b'{"items": [null, null]}', b"[]", b'{"items": [{"id": "a", "popularity": NaN}]}']
)
def test_a_catalog_of_the_wrong_shape_with_a_correct_sha256_is_the_flagged_fallback(
    served: App, catalog: bytes
) -> None:
    bucket = Bucket()
    bucket.publish("v1", catalog=catalog)
    assert_serves(served, bucket)
    assert fragment(served).headers["x-personalization"] == "fallback; reason=model_unavailable"


def test_a_manifest_with_keys_it_does_not_name_is_served(served: App) -> None:
    """The trainer's additions (evaluation, comparison, drift) never break the reader."""
    bucket = Bucket()
    extra = {"evaluation": {"ndcg@10": 0.2}, "compared_with": "v0", "drift": {"psi": [0.1]}, "future": None}
    bucket.publish("v1", manifest=extra)
    served.state = start(bucket)
    response = fragment(served)
    assert response.headers["x-model-version"] == "v1"
    assert response.headers["x-personalization"] == "fallback; reason=anonymous"
    assert [item["id"] for item in response.json()["items"]] == ["i0", "i1", "i2", "i3"]


@pytest.mark.parametrize("document", [DEEP, DIGITS, b'{"version": "x", "rules": ' + b"[" * 5000 + b"]" * 5000 + b"}"])
def test_a_hostile_rules_document_at_start_leaves_the_built_in_defaults(served: App, document: bytes) -> None:
    bucket = Bucket()
    bucket.publish("v1")
    bucket.put_rules(document)
    assert_serves(served, bucket)
    response = fragment(served)
    assert (response.headers["x-personalization"], response.headers["x-rules-version"]) == (
        "fallback; reason=anonymous",
        "none",
    )
    assert served.state is not None
    assert served.state.rollout.rules.error is not None


@pytest.mark.parametrize("document", [DEEP, DIGITS, b"[]", b"null", b'{"version": "bad", "rules": "x"}'])
def test_a_running_serve_keeps_the_last_good_rules_when_bad_ones_are_published(served: App, document: bytes) -> None:
    bucket = Bucket()
    bucket.publish("v1")
    bucket.put_rules({"version": "good", "rules": [{"id": "pin", "kind": "pin", "items": ["i9"], "position": 1}]})
    served.state = start(bucket)
    assert fragment(served).headers["x-rules-version"] == "good"
    bucket.put_rules(document)
    served.state.rollout.refresh()
    response = fragment(served)
    assert response.status_code == 200
    assert response.headers["x-rules-version"] == "good"
    assert response.headers["x-personalization"] == "fallback; reason=anonymous"
    assert response.json()["items"][0]["id"] == "i9"


@PROPERTY
@given(pointer=HOSTILE)
def test_any_pointer_starts_serve_and_no_fragment_is_a_5xx(served: App, pointer: bytes) -> None:
    bucket = Bucket()
    bucket.publish("v1")
    bucket.point(pointer)
    assert_serves(served, bucket)


@PROPERTY
@given(manifest=HOSTILE)
def test_any_manifest_starts_serve_and_no_fragment_is_a_5xx(served: App, manifest: bytes) -> None:
    bucket = Bucket()
    bucket.publish("v1", manifest=manifest)
    assert_serves(served, bucket)


@PROPERTY
@given(catalog=HOSTILE)
def test_any_catalog_with_its_sha256_recorded_starts_serve_and_no_fragment_is_a_5xx(
    served: App, catalog: bytes
) -> None:
    bucket = Bucket()
    bucket.publish("v1", catalog=catalog)
    assert_serves(served, bucket)


@PROPERTY
@given(data=HOSTILE, manifest=OBJECT)
def test_any_manifest_over_a_real_catalog_starts_serve(served: App, data: bytes, manifest: dict[str, Any]) -> None:
    """Manifests that pass the first checks (a catalog with its digest) and hold anything else besides."""
    bucket = Bucket()
    bucket.publish("v1")
    catalog = bucket.objects[f"{PREFIX}/v1/catalog.json"]
    bucket.objects[f"{PREFIX}/v1/manifest.json"] = with_catalog_digest("v1", manifest, catalog)
    bucket.objects[f"{PREFIX}/v1/recs.onnx"] = data
    assert_serves(served, bucket)


@PROPERTY
@given(document=HOSTILE)
def test_any_rules_document_leaves_the_last_good_rules_in_force(served: App, document: bytes) -> None:
    bucket = Bucket()
    bucket.publish("v1")
    bucket.put_rules({"version": "good", "rules": [{"id": "pin", "kind": "pin", "items": ["i9"], "position": 1}]})
    served.state = start(bucket)
    bucket.put_rules(document)
    served.state.rollout.refresh()
    response = fragment(served)
    assert response.status_code == 200
    # A generated document may be valid (then it rules); otherwise "good" still does.
    if served.state.rollout.rules.error is not None:
        assert response.headers["x-rules-version"] == "good"
        assert response.json()["items"][0]["id"] == "i9"
    # And a start with that document in the bucket serves too.
    assert_serves(served, bucket)


def test_a_catalog_whose_items_all_have_zero_popularity_ranks_them_without_dividing_by_zero() -> None:
    from personalization.catalog import Catalog, CatalogItem
    from personalization.ranking import popular

    catalog = Catalog([CatalogItem("b", None, None, 0.0, None), CatalogItem("a", None, None, 0.0, None)])
    assert [(s.item.id, s.score) for s in popular(catalog, 2)] == [("a", 0.0), ("b", 0.0)]
