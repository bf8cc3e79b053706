"""The edge cache key against the rules: template.yaml, the viewer function and serve's constants together
prove that a shared fragment a context-scoped rule changed never reaches a visitor of another context."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.local.template import Template
from names import CONTEXT_KEY_HEADER, VIEWER_HOST_HEADER
from personalization.context import (
    DIMENSION_OF_FIELD,
    DIMENSIONS,
    VIEWER_HEADERS,
    ContextScope,
    context_key,
    request_context,
)
from personalization.rules import parse_document
from serve import app as serve_app

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Template.load(ROOT / "template.yaml")
VIEWER_JS = ROOT / "infra" / "cloudfront" / "viewer_request.js"
NODE = shutil.which("node")
# Stands in for CloudFront's `cloudfront` module: the key value store answers with the dimensions given.
HARNESS = """
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
let DIMENSIONS_IN_STORE = null;
const cf = { kvs: () => ({ get: async (key) => {
  if (key !== "context-dimensions" || DIMENSIONS_IN_STORE === null) throw new Error("no such key");
  return DIMENSIONS_IN_STORE;
} }) };
%s
(async () => {
  const out = [];
  for (const c of cases) {
    DIMENSIONS_IN_STORE = c.stored;
    const headers = {};
    for (const [name, value] of Object.entries(c.headers)) headers[name] = { value: value };
    const request = await handler({ request: { headers: headers, cookies: c.cookies } });
    out.push({ ctx: request.headers["x-pz-ctx"].value, known: request.headers["x-pz-known"].value,
               host: request.headers["x-pz-host"].value });
  }
  process.stdout.write(JSON.stringify(out));
})();
"""


def properties(logical_id: str) -> dict[str, Any]:
    return dict(TEMPLATE.resource(logical_id).properties)


def run_viewer_function(cases: list[dict[str, Any]]) -> list[dict[str, str]]:
    assert NODE is not None
    source = VIEWER_JS.read_text().replace("import cf from 'cloudfront';", "")
    result = subprocess.run(
        [NODE, "-e", HARNESS % source], input=json.dumps(cases), capture_output=True, text=True, check=True, timeout=60
    )
    answers: list[dict[str, str]] = json.loads(result.stdout)
    return answers


def test_every_context_a_rule_can_scope_on_is_a_dimension_of_the_key() -> None:
    # The rules' context fields (and an experiment's) are exactly the ones the key has a dimension for
    assert set(ContextScope.model_fields) == set(DIMENSION_OF_FIELD)
    assert set(DIMENSION_OF_FIELD.values()) == set(DIMENSIONS)
    # The viewer function knows the same dimensions, in the same order
    source = VIEWER_JS.read_text()
    assert f"const DIMENSIONS = {json.dumps(list(DIMENSIONS))};" in source


def test_the_cache_policy_keys_on_the_context_and_the_origin_policy_forwards_what_it_is_made_of() -> None:
    key = properties("FragmentCachePolicy")["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
    assert CONTEXT_KEY_HEADER in key["HeadersConfig"]["Headers"]
    fragments = properties("FragmentOriginRequestPolicy")["OriginRequestPolicyConfig"]["HeadersConfig"]["Headers"]
    # Everything serve derives the context from, and the viewer function can read the CloudFront ones
    assert set(VIEWER_HEADERS) | {VIEWER_HOST_HEADER} <= set(fragments)
    collect = properties("CollectOriginRequestPolicy")["OriginRequestPolicyConfig"]["HeadersConfig"]["Headers"]
    assert set(VIEWER_HEADERS) <= set(collect)
    # CloudFront's default quota: 10 headers per origin request policy
    assert len(fragments) <= 10
    assert len(collect) <= 10


def test_the_viewer_function_reads_the_dimensions_from_the_key_value_store_the_template_associates() -> None:
    config = properties("ViewerRequestFunction")["FunctionConfig"]
    assert config["KeyValueStoreAssociations"] == [
        {"KeyValueStoreARN": {"Fn::GetAtt": ["ContextKeyValueStore", "Arn"]}}
    ]
    assert '"context-dimensions"' in VIEWER_JS.read_text()


def test_serve_varies_on_the_key_and_on_the_headers_behind_it() -> None:
    from serve.edge_context import VARY_OF_DIMENSION, vary

    assert set(VARY_OF_DIMENSION) == set(DIMENSIONS)
    assert vary(serve_app.BASE_VARY, ()) == serve_app.BASE_VARY
    every = vary(serve_app.BASE_VARY, DIMENSIONS).lower()
    for name in (CONTEXT_KEY_HEADER, *VIEWER_HEADERS):
        assert name in every


header_values = {
    "cloudfront-is-mobile-viewer": st.sampled_from(["true", "false"]),
    "cloudfront-is-tablet-viewer": st.sampled_from(["true", "false"]),
    "cloudfront-is-smarttv-viewer": st.sampled_from(["true", "false"]),
    "cloudfront-viewer-country": st.sampled_from(["DE", "es", "US", "XX1", ""]),
    "cloudfront-viewer-time-zone": st.sampled_from(
        ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC", "Etc/GMT+5", "../x", ""]
    ),
    "referer": st.one_of(
        st.sampled_from(
            [
                "https://www.google.com/search?q=a",
                "https://shop.example/p?utm_source=x&utm_medium=email",
                "https://shop.example/?UTM_campaign=spring",
                "https://shop.example/basket",
                "https://l.facebook.com/",
                "https://t.co/x",
                "https://mail.yahoo.com/",
                "https://blog.example.org/",
                "android-app://com.google.android.gm/",
                "nonsense",
            ]
        ),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    ),
    "host": st.sampled_from(["shop.example", "shop.example:443", "other.example"]),
}
headers_strategy = st.fixed_dictionaries({}, optional=header_values)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.tuples(headers_strategy, st.sets(st.sampled_from(DIMENSIONS)), st.booleans()), min_size=1, max_size=40)
)
def test_the_viewer_function_makes_the_key_serve_expects(cases: list[tuple[dict[str, str], set[str], bool]]) -> None:
    """The JavaScript the template deploys and serve's Python agree on every key, so serve's check of the key
    (a mismatch is never shared) only ever fires for a stale key value store."""
    sent = [
        {
            "headers": headers,
            "cookies": {"pz_id": {"value": "t"}} if known else {},
            "stored": ",".join(sorted(dimensions)) if dimensions else None,
        }
        for headers, dimensions, known in cases
    ]
    answers = run_viewer_function(sent)
    for (headers, dimensions, known), answer in zip(cases, answers, strict=True):
        assert answer["ctx"] == context_key(headers, dimensions)
        assert answer["known"] == ("1" if known else "0")
        assert answer["host"] == headers.get("host", "")


NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()
SCOPES = st.fixed_dictionaries(
    {},
    optional={
        "devices": st.lists(st.sampled_from(["mobile", "tablet", "desktop", "other"]), min_size=1, unique=True),
        "countries": st.lists(st.sampled_from(["DE", "ES", "US"]), min_size=1, unique=True),
        "dayparts": st.lists(st.sampled_from(["morning", "evening"]), min_size=1, unique=True),
        "channels": st.lists(st.sampled_from(["search", "social", "email", "campaign", "direct"]), min_size=1),
    },
)


@settings(max_examples=200, deadline=None)
@given(SCOPES, headers_strategy, headers_strategy, st.floats(0, 86_400))
def test_two_requests_with_the_same_key_get_the_same_answer_from_every_context_rule(
    when: dict[str, list[str]], first: dict[str, str], second: dict[str, str], seconds: float
) -> None:
    document = parse_document(
        {
            "version": "v",
            "dayparts": {"morning": {"start": 6, "end": 12}, "evening": {"start": 18, "end": 23}},
            "rules": [{"id": "r", "kind": "pin", "items": ["i"], "position": 1, "when": when}],
        }
    )
    dimensions = document.context_dimensions()
    now = NOON + seconds

    def admitted(headers: dict[str, str]) -> bool:
        viewer = request_context(headers, now)
        return document.rules[0].when.admits_context(viewer, document.daypart_at(viewer.local_hour))

    if context_key(first, dimensions) == context_key(second, dimensions):
        # At one instant: a daypart key (the zone) stays true only until the zone's next boundary, and serve
        # ends a shared answer's life there (serve.edge_context.shared_lifetime).
        assert admitted(first) == admitted(second)
