"""For tests that drive the real ingest handler against the loopback stack (the `ingest` fixture in
tests/integration/conftest.py builds an Ingest)."""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from infra.local.poller import KinesisPoller, LocalLambdaContext
from infra.local.producer import put_events
from infra.local.stack import LocalStack
from model_export.data.canonical import to_events
from personalization.events import Event
from store.profiles import ProfileStore, TableSettings
from store.quarantine import QuarantineStore
from tests.helpers.data import rees46_sample


@dataclass
class Ingest:
    stack: LocalStack
    env: dict[str, str]

    @property
    def pepper(self) -> bytes:
        return self.stack.secret_values[self.env["PEPPER_PARAMETER"]].encode()

    @property
    def profiles(self) -> ProfileStore:
        return ProfileStore(TableSettings(self.env["PROFILES_TABLE"], self.stack.region))

    @property
    def quarantine(self) -> QuarantineStore:
        return QuarantineStore(self.env["QUARANTINE_TABLE"], self.stack.region)

    def handler(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        from ingest.handler import lambda_handler

        response: dict[str, Any] = lambda_handler(event, context or LocalLambdaContext("IngestFunction"))
        return response

    def publish(self, events: Iterable[Event]) -> int:
        return put_events(self.stack.client("kinesis"), self.stream, events, self.pepper).sent

    @property
    def stream(self) -> str:
        return self.stack.physical_names["EventStream"]

    def poller(self, batch_size: int = 500) -> KinesisPoller:
        return KinesisPoller(self.stack.client("kinesis"), self.stream, self.handler, batch_size)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every stored profile item, exactly as DynamoDB holds it."""
        return {item["pk"]["S"]: item for item in self._raw_items(self.env["PROFILES_TABLE"])}

    def _raw_items(self, table: str) -> list[dict[str, Any]]:
        dynamodb = self.stack.client("dynamodb")
        items: list[dict[str, Any]] = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            items.extend(page["Items"])
        return items

    def everything_stored(self) -> str:
        """All stored items of every table the template defines (profiles, quarantine, erasure log, ...) as text,
        compressed profile blobs inflated, for audits of what is stored."""
        tables = [self.stack.physical_names[t] for t in self.stack.template.resources_of_type("AWS::DynamoDB::Table")]
        return stored_text([item for table in tables for item in self._raw_items(table)])


def stored_text(items: list[dict[str, Any]]) -> str:
    """DynamoDB items as text, compressed profile blobs inflated, so an audit can search them for raw ids."""
    texts = []
    for item in items:
        for value in item.values():
            if "B" in value:
                blob = value["B"]
                with contextlib.suppress(zlib.error):
                    blob = zlib.decompress(blob)
                texts.append(blob.decode("utf-8", errors="replace"))
            else:
                texts.append(json.dumps(value))
    return "\n".join(texts)


def real_events(count: int | None = None) -> list[Event]:
    """Real REES46 events from the committed sample, shifted so the newest lands now."""
    from datetime import UTC, datetime

    frame = rees46_sample()
    if count is not None:
        frame = frame.head(count)
    shift = datetime.now(UTC) - frame["timestamp"].max().to_pydatetime()
    return list(to_events(frame.reset_index(drop=True), shift))
