"""A window of the archive as the trainer's input: canonical rows of the events that may be trained on."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import pandas as pd

from model_export.data.archive import ArchivedEvent, ArchiveStats, ObjectSource, Window, open_archive, read_window
from model_export.data.canonical import normalize
from model_export.data.trainable import LeftOut, canonical_rows, with_consent

log = logging.getLogger(__name__)

# How a window is read: archive.read_window here, or spark_archive's reader on Spark (the same events).
Reader = Callable[[ObjectSource, Window], tuple[list[ArchivedEvent], ArchiveStats]]


@dataclass(frozen=True)
class ArchiveWindow:
    source: str
    window: Window
    # Canonical and normalized (model_export.data.canonical), sorted by time.
    frame: pd.DataFrame
    stats: ArchiveStats
    consent: LeftOut
    # Events of people with an erasure tombstone, left out (the archive purge may not have reached them yet).
    erased: LeftOut

    def summary(self) -> dict[str, Any]:
        """What the manifest and the job's report record about the data a model saw."""
        return {
            "source": self.source,
            "window": self.window.to_dict(),
            "rows": len(self.frame),
            "archive": self.stats.to_dict(),
            "left_out_for_consent": self.consent.to_dict(),
            "left_out_erased": self.erased.to_dict(),
        }


def load_window(
    location: str, window: Window, region: str, erased: Collection[str] = (), reader: Reader = read_window
) -> ArchiveWindow:
    """Read `location` (s3://BUCKET/PREFIX or a folder) for `window`: distinct events, consent applied, and
    without the people named in `erased` (pseudonyms, as the archive holds them)."""
    source = open_archive(location, region)
    events, stats = reader(source, window)
    if erased:
        remaining = [event for event in events if event.user_id not in erased]
        gone = LeftOut(len({e.user_id for e in events if e.user_id in erased}), len(events) - len(remaining))
        events = remaining
    else:
        gone = LeftOut(0, 0)
    kept, excluded = with_consent(events)
    frame = normalize(canonical_rows(kept), str(source))
    log.info(
        "archive %s %s..%s: %d events (%d duplicates), %d rows after consent (%d people left out)",
        source,
        window.start.isoformat(),
        window.end.isoformat(),
        stats.events,
        stats.duplicates,
        len(frame),
        excluded.people,
    )
    return ArchiveWindow(str(source), window, frame, stats, excluded, gone)
