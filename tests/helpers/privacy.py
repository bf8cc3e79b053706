"""For the privacy tests: what the functions log, detectors for personal data, and one stack with the ingest, serve
and erase functions' environments applied, serve in-process through its ASGI app (the `captured_logs` and
`privacy` fixtures in tests/integration/conftest.py build these)."""

from __future__ import annotations

import io
import ipaddress
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra.local.poller import LocalLambdaContext
from personalization.identity import pseudonymize, sign_token
from store.erasure_log import ErasureLogStore
from tests.helpers.ingest import Ingest

# Independent of personalization.scrub on purpose: a test that used the product's own patterns would only
# prove that the product agrees with itself.
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
IP_CANDIDATE = re.compile(r"[0-9A-Fa-f.:]*[.:][0-9A-Fa-f.:]*")


def ip_addresses(text: str) -> list[str]:
    """Every IPv4/IPv6 address in `text`, except loopback (the local stack's own address in error messages)."""
    found = []
    for match in IP_CANDIDATE.finditer(text):
        candidate = match.group(0).strip(".:")
        if candidate.count(".") != 3 and candidate.count(":") < 2:
            continue
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if not address.is_loopback:
            found.append(candidate)
    return found


def personal_data(text: str, raw_ids: Iterable[str]) -> dict[str, list[str]]:
    """Raw user ids (as whole tokens), e-mail addresses and IP addresses found in `text`; empty lists if none."""
    ids = sorted(raw for raw in set(raw_ids) if re.search(rf"(?<![0-9A-Za-z]){re.escape(raw)}(?![0-9A-Za-z])", text))
    return {"raw_ids": ids, "emails": sorted(set(EMAIL.findall(text))), "ips": sorted(set(ip_addresses(text)))}


NOTHING: dict[str, list[str]] = {"raw_ids": [], "emails": [], "ips": []}


@dataclass
class CapturedLogs:
    stream: io.StringIO
    capsys: pytest.CaptureFixture[str]
    printed: str = ""

    def text(self) -> str:
        # Everything the functions logged (powertools JSON lines, any library warnings), and what they printed
        # (powertools metrics are printed as EMF JSON).
        out = self.capsys.readouterr()
        self.printed += out.out + out.err
        return self.stream.getvalue() + self.printed

    def clear(self) -> None:
        self.capsys.readouterr()
        self.stream.seek(0)
        self.stream.truncate(0)
        self.printed = ""

    def lines(self, message: str) -> list[dict[str, Any]]:
        return [
            record
            for line in self.stream.getvalue().splitlines()
            if line.startswith("{") and (record := json.loads(line)).get("message") == message
        ]


@dataclass
class Privacy:
    ingest: Ingest
    client: TestClient
    identity_key: bytes
    env: dict[str, str]

    @property
    def pepper(self) -> bytes:
        return self.ingest.pepper

    def pseudonym(self, raw_user: str) -> str:
        return pseudonymize(self.pepper, raw_user)

    def token(self, raw_user: str, ttl: int = 600) -> str:
        return self.token_for_pseudonym(self.pseudonym(raw_user), ttl)

    def token_for_pseudonym(self, pseudonym: str, ttl: int = 600) -> str:
        return sign_token(self.identity_key, pseudonym, int(time.time()) + ttl)

    def erase_admin(self, event: dict[str, Any]) -> dict[str, Any]:
        from erase.handler import lambda_handler

        answer: dict[str, Any] = lambda_handler(event, LocalLambdaContext("EraseFunction"))
        return answer

    @property
    def erasure_log(self) -> ErasureLogStore:
        from datetime import timedelta

        return ErasureLogStore(self.env["ERASURE_LOG_TABLE"], self.ingest.stack.region, timedelta(days=1))
