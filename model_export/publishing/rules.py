"""The command `publish-rules`: validate a merchandiser's rules document (its schema, then against the live
catalog, compiled exactly as serve compiles it) and make it the one in force."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def run_publish_rules(args: argparse.Namespace) -> int:
    """Validate a rules document (schema, then against the live catalog) and make it the one in force."""
    from personalization.catalog import Catalog
    from personalization.rules import RuleEngine, RulesError, parse_document
    from store.artifacts import ArtifactError, ArtifactStore
    from store.edge_config import EdgeConfigError, dimensions_value, publish_dimensions
    from store.region import region_from
    from store.rules_source import RulesSource

    body = Path(args.file).read_bytes()
    try:
        document = parse_document(body)
    except RulesError as exc:
        print(f"rejected {args.file}:\n{exc}", file=sys.stderr)
        return 2
    region = region_from(os.environ)
    try:
        catalog = Catalog.from_bytes(ArtifactStore(args.bucket, region).load().catalog_data)
    except ArtifactError:
        catalog = Catalog([])
        print("no model version published yet: item ids are not checked against a catalog", file=sys.stderr)
    RuleEngine(document, catalog)  # compiles exactly as serve will
    if len(catalog):
        unknown = sorted(item for item in _named_items(document) if item not in catalog.by_id)
        if unknown:
            print(f"warning: {len(unknown)} item id(s) not in the live catalog, e.g. {unknown[:5]}", file=sys.stderr)
    key = RulesSource(args.bucket, region, max_age_s=1).publish(document.version, body)
    print(f"published rules {document.version} ({len(document.rules)} rules) to s3://{args.bucket}/{key}")
    dimensions = document.context_dimensions()
    print(f"context dimensions of the edge cache key: {dimensions_value(dimensions) or 'none'}")
    if args.key_value_store:
        # After the document: serve keeps context answers private until the edge keys on what it reads.
        try:
            publish_dimensions(args.key_value_store, dimensions, region)
        except EdgeConfigError as exc:
            print(f"the rules are live, but the edge key is not updated: {exc}", file=sys.stderr)
            return 3
        print(f"the viewer function keys fragments on them ({args.key_value_store})")
    return 0


def _named_items(document: Any) -> set[str]:
    named: set[str] = set()
    for rule in document.rules:
        named.update(getattr(rule, "items", None) or [])
        match = getattr(rule, "match", None)
        named.update(getattr(match, "items", None) or [])
    return named
