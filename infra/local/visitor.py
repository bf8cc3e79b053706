"""A scripted shop visitor: what storefront/app.js does in a browser, over HTTP through the edge.

It posts events to `/v1/events` as the tracker does (no user id: the collector mints the `pz_id` cookie) and
reads fragments as the page's slots do, carrying the identity cookie the way a browser would. The demo uses
it to show a click changing the next fragment without a browser.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from names import (
    EXPERIMENT_VARIANT_HEADER,
    IDENTITY_COOKIE,
    PERSONALIZATION_HEADER,
    RULES_VERSION_HEADER,
    SEGMENT_HEADER,
)

CONSENT_ALL = {"analytics": True, "personalization": True}


@dataclass(frozen=True)
class FragmentSeen:
    status: int
    personalization: str
    segment: str
    rules_version: str
    variant: str
    items: list[dict[str, Any]]

    @property
    def personal(self) -> bool:
        """An answer for this person: the model's (`personalized`), or their experiment arm's baseline
        (`experiment; strategy=...`, which says it is not the model's)."""
        return self.personalization == "personalized" or self.personalization.startswith("experiment;")

    @property
    def ids(self) -> list[str]:
        return [str(item["id"]) for item in self.items]

    def summary(self) -> str:
        counts = Counter(str(item.get("category")) for item in self.items)
        top = ", ".join(f"{category} x{n}" for category, n in counts.most_common(3))
        more = f", +{len(counts) - 3} more" if len(counts) > 3 else ""
        labels = [f"segment {self.segment}"] if self.segment != "none" else []
        labels += [f"variant {self.variant}"] if self.variant != "none" else []
        shown = f" ({', '.join(labels)})" if labels else ""
        return f"{self.personalization}{shown}: {len(self.items)} items, {top}{more}"


@dataclass
class ScriptedVisitor:
    base_url: str
    consent: dict[str, bool] = field(default_factory=lambda: dict(CONSENT_ALL))
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    identity: str | None = None

    def __post_init__(self) -> None:
        # trust_env=False: loopback traffic never goes through a proxy from the environment.
        self._http = httpx.Client(base_url=self.base_url, timeout=10, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def _cookies(self) -> dict[str, str]:
        # The identity cookie is Secure; a browser on 127.0.0.1 still sends it back, httpx (rightly) would not
        # over plain http, so the visitor carries it by hand.
        return {"cookie": f"{IDENTITY_COOKIE}={self.identity}"} if self.identity else {}

    def catalog(self) -> dict[str, Any]:
        response = self._http.get("/shop/catalog.json")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def event(self, kind: str, item: dict[str, Any] | None = None, page: str = "/") -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": kind,
            "ts": datetime.now(UTC).isoformat(),
            "session_id": self.session_id,
            "context": {"device": "desktop", "page": page},
            "consent": self.consent,
        }
        if item is not None:
            event.update(item_id=item["id"], category=item.get("category"), price=item.get("price"), quantity=1)
        return {name: value for name, value in event.items() if value is not None}

    def send(self, events: list[dict[str, Any]]) -> httpx.Response:
        response = self._http.post("/v1/events", json={"events": events}, headers=self._cookies())
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            if name.strip() == IDENTITY_COOKIE:
                self.identity = rest.split(";", 1)[0]
        return response

    def fragment(self, slot: str, k: int = 8, **params: str) -> FragmentSeen:
        response = self._http.get(
            f"/v1/fragments/{slot}", params={"format": "json", "k": k, **params}, headers=self._cookies()
        )
        body = response.json() if response.status_code == 200 else {}
        return FragmentSeen(
            response.status_code,
            response.headers.get(PERSONALIZATION_HEADER, "?"),
            response.headers.get(SEGMENT_HEADER, "none"),
            response.headers.get(RULES_VERSION_HEADER, "none"),
            response.headers.get(EXPERIMENT_VARIANT_HEADER, "none"),
            list(body.get("items", [])),
        )

    def wait_for(
        self,
        slot: str,
        done: Callable[[FragmentSeen], bool],
        timeout_s: float = 5.0,
        k: int = 8,
        **params: str,
    ) -> tuple[FragmentSeen, float]:
        """The slot's fragment once `done` says so (or the last one seen at the timeout), and how long it took."""
        started = time.monotonic()
        while True:
            seen = self.fragment(slot, k, **params)
            elapsed = time.monotonic() - started
            if done(seen) or elapsed > timeout_s:
                return seen, elapsed
            time.sleep(0.1)
