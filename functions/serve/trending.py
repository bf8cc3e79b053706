"""The trending rows as serve reads them: every ingest shard's top list, read at most every few seconds per
container and summed (personalization.trending.combined)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from personalization.trending import Trend, combined


class TrendingUnavailable(Exception):
    """The rows could not be read (or no table is configured)."""


class TrendingView:
    def __init__(self, read_all: Callable[[], list[Trend]] | None, half_life_ms: int, max_age_s: float) -> None:
        self._read_all = read_all
        self._half_life_ms = half_life_ms
        self._max_age_s = max_age_s
        self._rows: list[Trend] | None = None
        self._read_at = -float("inf")
        self._lock = threading.Lock()

    def ranked(self, now_ms: int) -> list[tuple[str, float]]:
        """Items by current score, highest first; raises TrendingUnavailable when the rows cannot be read."""
        if self._read_all is None:
            raise TrendingUnavailable("no trending table configured")
        with self._lock:
            if time.monotonic() - self._read_at >= self._max_age_s:
                try:
                    self._rows = self._read_all()
                except Exception as exc:
                    # Asked again on the next request: an outage ends as soon as a read succeeds.
                    raise TrendingUnavailable(type(exc).__name__) from exc
                self._read_at = time.monotonic()
            rows = self._rows or []
        return combined(rows, now_ms, self._half_life_ms)
