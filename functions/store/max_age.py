"""Values read again only once they are `max_age_s` old: the secrets (store.parameters) and the rules document
(store.rules_source). A cache of a handful of values with an expiry each; by hand, because powertools
Parameters' cache, which these reads used, comes only with its package's import of boto3 (why: store.parameters).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class MaxAge(Generic[K, V]):
    def __init__(self, max_age_s: float) -> None:
        self._max_age_s = max_age_s
        # key -> (read at, value)
        self._values: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, now: float, read: Callable[[], V]) -> V:
        """The value kept for `key` while it is younger than the max age at `now`, else `read()`'s, kept from
        `now` (what `read` raises is raised, and nothing is kept). `now` is wall time, not monotonic: a SnapStart
        container restored days after its snapshot must read again, and a monotonic clock restarts with the
        restored VM. A clock set back makes a value's age unknown: it is read again."""
        with self._lock:
            kept = self._values.get(key)
        if kept is not None and 0 <= now - kept[0] < self._max_age_s:
            return kept[1]
        value = read()
        with self._lock:
            self._values[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
