"""The rules in force in this container: re-read when the cache says so, swapped only for a valid document.

A document that fails validation (or a bucket that cannot be read) never takes the page down and never
replaces the last good document: it is logged and counted once, and the last good rules stay in force.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit

from observability import logger, metrics
from personalization.catalog import Catalog
from personalization.rules import RuleEngine, RulesError, parse_document

NO_RULES = "none"


class LiveRules:
    def __init__(self, fetch: Callable[[], bytes], catalog: Catalog, retry_after_s: float = 60.0) -> None:
        self._fetch = fetch
        self._catalog = catalog
        # A failed read is not cached by powertools; without this, every request would wait on a broken bucket.
        self._retry_after_s = retry_after_s
        self._next_try = 0.0
        self._engine: RuleEngine | None = None
        self._seen: bytes | None = None  # the last document judged, good or bad: judge each one once
        self._lock = threading.Lock()
        self.error: str | None = None

    @property
    def version(self) -> str:
        return self._engine.version if self._engine else NO_RULES

    def current(self) -> RuleEngine | None:
        if time.monotonic() < self._next_try:
            return self._engine
        try:
            raw = self._fetch()
        except Exception as exc:  # powertools wraps every read failure in GetParameterError
            self._next_try = time.monotonic() + self._retry_after_s
            if "NoSuchKey" in str(exc) and self._engine is None:
                self.error = None  # nothing published yet: the built-in defaults apply, nothing is wrong
                return None
            self._reject("unreadable", f"rules document unreadable: {exc}", raw=None)
            return self._engine
        if raw == self._seen:  # bytes compare by identity first: the cached object costs nothing
            return self._engine
        with self._lock:
            if raw != self._seen:
                self._judge(raw)
        return self._engine

    def _judge(self, raw: bytes) -> None:
        try:
            engine = RuleEngine(parse_document(raw), self._catalog)
        except RulesError as exc:
            self._reject("invalid", str(exc), raw)
            return
        previous = self.version
        self._engine, self._seen, self.error = engine, raw, None
        logger.info("rules document in force", extra={"rules_version": engine.version, "previous": previous})

    def _reject(self, kind: str, message: str, raw: bytes | None) -> None:
        if raw is not None:
            self._seen = raw
        if self.error == message:
            return  # the same failure on every request until it changes: say it once
        self.error = message
        logger.warning(
            "rules document rejected; the last good one stays in force",
            extra={"kind": kind, "error": message[:2000], "in_force": self.version},
        )
        try:
            metrics.add_metric(name="RulesRejected", unit=MetricUnit.Count, value=1)
        except Exception:
            logger.exception("could not record the rules metric")
