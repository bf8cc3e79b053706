"""The rules document in force in this container: replaced only by a valid document.

A document that fails (invalid JSON, nesting or digits past the parser's limits, the wrong shape, a rule that
does not compile, a bucket that cannot be read) never takes the page down and never replaces the last good
document: it is logged and counted once, and the last good rules stay in force. serve.rollout decides when
to look (at most every RULES_MAX_AGE_S) and compiles the last good document against each new catalog.
"""

from __future__ import annotations

from collections.abc import Callable

from observability import count, logger
from personalization.catalog import Catalog
from personalization.rules import RuleEngine, RulesDocument, RulesError, parse_document


class LiveRules:
    def __init__(self, fetch: Callable[[], bytes]) -> None:
        self._fetch = fetch
        self.document: RulesDocument | None = None  # the last good document
        self._seen: bytes | None = None  # the last document judged, good or bad: judge each one once
        self.error: str | None = None

    def poll(self, catalog: Catalog, in_force: RuleEngine | None) -> RuleEngine | None:
        """The engine that should be in force now: `in_force` itself unless a new valid document was published,
        which comes back compiled against `catalog`. Never raises."""
        try:
            raw = self._fetch()
        except Exception as exc:  # botocore's errors, whatever the bucket says (NoSuchKey: nothing published)
            if "NoSuchKey" in str(exc) and self.document is None:
                self.error = None  # nothing published yet: the built-in defaults apply, nothing is wrong
            else:
                self._reject("unreadable", f"rules document unreadable: {exc}")
            return in_force
        if raw == self._seen:  # bytes compare by identity first: the cached object costs nothing
            return in_force
        self._seen = raw
        try:
            document = parse_document(raw)
            engine = RuleEngine(document, catalog)
        except RulesError as exc:
            self._reject("invalid", str(exc))
            return in_force
        except Exception as exc:  # whatever else a hostile document provokes: it is refused, never served
            self._reject("invalid", f"rules document unusable: {type(exc).__name__}: {str(exc)[:500]}")
            return in_force
        previous = in_force.version if in_force else None
        self.document, self.error = document, None
        logger.info("rules document in force", extra={"rules_version": engine.version, "previous": previous})
        return engine

    def compile(self, catalog: Catalog) -> RuleEngine | None:
        """The last good document compiled against another catalog (a new model version's); raises if it
        does not compile, so that version is refused rather than served without its rules."""
        return RuleEngine(self.document, catalog) if self.document is not None else None

    def _reject(self, kind: str, message: str) -> None:
        if self.error == message:
            return  # the same failure on every look until it changes: say it once
        self.error = message
        logger.warning(
            "rules document rejected; the last good one stays in force",
            extra={"kind": kind, "error": message[:2000], "in_force": self.document.version if self.document else None},
        )
        count("RulesRejected")
