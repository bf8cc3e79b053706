"""A window of the archive as the trainer's input: canonical rows of the events that may be trained on."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from model_export.canonical import normalize
from model_export.data.archive import ArchiveStats, Window, open_archive, read_window
from model_export.data.trainable import ConsentExcluded, canonical_rows, with_consent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveWindow:
    source: str
    window: Window
    # Canonical and normalized (model_export.canonical), sorted by time.
    frame: pd.DataFrame
    stats: ArchiveStats
    consent: ConsentExcluded

    def summary(self) -> dict[str, Any]:
        """What the manifest and the job's report record about the data a model saw."""
        return {
            "source": self.source,
            "window": self.window.to_dict(),
            "rows": len(self.frame),
            "archive": self.stats.to_dict(),
            "left_out_for_consent": self.consent.to_dict(),
        }


def load_window(location: str, window: Window, region: str) -> ArchiveWindow:
    """Read `location` (s3://BUCKET/PREFIX or a folder) for `window`: distinct events, consent applied."""
    source = open_archive(location, region)
    events, stats = read_window(source, window)
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
    return ArchiveWindow(str(source), window, frame, stats, excluded)
