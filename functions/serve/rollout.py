"""What a warm container serves: one snapshot, switched atomically when models/current.json or the rules change.

`current()` is what a request calls, once. It returns the snapshot in force; at most every MODEL_MAX_AGE_S
(and every RULES_MAX_AGE_S) one request takes the lock and looks again: a small GET of current.json, and only
when it names another version, that version's files. Requests that arrive meanwhile do not wait: they answer
with the snapshot in force. Under Lambda a container serves one request at a time, so the request that crosses
the max age pays the look (a version's download only when one was promoted); the check never fails it.

A version that cannot be used (unreadable, the wrong shape, a digest mismatch, models that do not load while
the running ones do) leaves the running snapshot in force: logged and counted once per version
(ModelVersionRefused). A version refused for what its bytes say is not fetched again; one that could not be
read is tried again at the next look. A rollback is a pointer to an older version and switches the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from observability import count, logger
from personalization.catalog import Catalog
from personalization.rules import RuleEngine
from serve.live_rules import LiveRules
from serve.snapshot import NO_VERSION, ArtifactSource, Snapshot, VersionRefused, empty, load_snapshot
from store.artifacts import ArtifactError


class Rollout:
    def __init__(
        self,
        artifacts: ArtifactSource,
        rules: LiveRules,
        model_max_age_s: float,
        rules_max_age_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock` is wall time, not monotonic, on purpose: a SnapStart container restored days after its snapshot
        must look at current.json on its first request, and a monotonic clock restarts with the restored VM."""
        self._artifacts = artifacts
        self._rules = rules
        self._model_max_age_s = model_max_age_s
        self._rules_max_age_s = rules_max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._refused: set[str] = set()  # versions whose bytes are wrong: never fetched again
        self._said: dict[str, str] = {}  # the last problem logged per version (or pointer): say each once
        now = clock()
        self._snapshot = self._first()
        self._next_model = now + model_max_age_s
        self._next_rules = now + rules_max_age_s

    @property
    def rules(self) -> LiveRules:
        return self._rules

    def current(self) -> Snapshot:
        """The snapshot in force, looked at again first when a max age has passed. Never raises."""
        now = self._clock()
        if (now >= self._next_model or now >= self._next_rules) and self._lock.acquire(blocking=False):
            try:
                self._look(now)
            except Exception:  # a bug in looking must not become a failed request: keep what serves
                logger.exception("looking for a new model version or rules failed; the running ones stay")
            finally:
                self._lock.release()
        return self._snapshot

    def refresh(self) -> Snapshot:
        """Look now, whatever the max ages say (waits for a look in progress)."""
        with self._lock:
            self._look(self._clock(), force=True)
        return self._snapshot

    def _look(self, now: float, force: bool = False) -> None:
        snapshot = self._snapshot
        if force or now >= self._next_model:
            self._next_model = now + self._model_max_age_s
            snapshot = self._newer_version(snapshot)
        if force or now >= self._next_rules:
            self._next_rules = now + self._rules_max_age_s
            rules = self._rules.poll(snapshot.catalog, snapshot.rules)
            if rules is not snapshot.rules:
                snapshot = snapshot.with_rules(rules)
        self._snapshot = snapshot  # one reference: a request holds the old snapshot or the new, never a mix

    def _first(self) -> Snapshot:
        """The version current.json names at start, as it is (flagged if degraded), else the empty fallback; with
        the rules document in force. The document is read and compiled as soon as the version's catalog is
        parsed, while its graphs still download and load on other threads (a cold start's critical path)."""
        polled: list[bool] = []

        def poll(catalog: Catalog) -> RuleEngine | None:
            polled.append(True)
            return self._rules.poll(catalog, None)

        try:
            version = self._artifacts.current_version()
            return load_snapshot(self._artifacts, version, poll)
        except (ArtifactError, VersionRefused) as exc:
            if isinstance(exc, VersionRefused) and exc.lasting:
                self._refused.add(exc.version)
            self._say("start", f"no usable model version; serving an empty catalog: {exc}", refused=False)
        except Exception as exc:  # nothing a bucket holds may stop the container from starting
            self._say("start", f"no usable model version; serving an empty catalog: {exc!r}", refused=False)
        fallback = empty()
        if not polled:
            return fallback.with_rules(self._rules.poll(fallback.catalog, None))
        # The document was read for the version that failed after its catalog: compiled again, not read again.
        try:
            return fallback.with_rules(self._rules.compile(fallback.catalog))
        except Exception:  # the empty catalog serves nothing a rule could name: no rules is as good
            return fallback

    def _newer_version(self, running: Snapshot) -> Snapshot:
        try:
            version = self._artifacts.current_version()
        except ArtifactError as exc:
            self._say("pointer", f"models/current.json unusable; version {running.version} stays: {exc}", False)
            return running
        self._said.pop("pointer", None)
        if version == running.version or version in self._refused:
            return running
        try:
            candidate = load_snapshot(self._artifacts, version, self._rules.compile)
        except VersionRefused as exc:
            if exc.lasting:
                self._refused.add(version)
            self._say(version, f"model version refused; {running.version} stays: {exc}", refused=True)
            return running
        except Exception as exc:
            self._refused.add(version)
            self._say(version, f"model version refused; {running.version} stays: {exc!r}", refused=True)
            return running
        if candidate.error is not None and running.error is None:
            # Its models cannot serve, while the running ones do: a fallback is no upgrade.
            self._refused.add(version)
            self._say(version, f"model version refused ({candidate.error}); {running.version} stays", refused=True)
            return running
        logger.info(
            "model version in force",
            extra={"model_version": version, "previous": running.version, "error": candidate.error},
        )
        count("ModelVersionSwitched")
        return candidate

    def _say(self, key: str, message: str, refused: bool) -> None:
        if self._said.get(key) == message:
            return
        self._said[key] = message
        logger.warning(message[:2000], extra={"in_force": self._snapshot.version if key != "start" else NO_VERSION})
        if refused:
            count("ModelVersionRefused")
