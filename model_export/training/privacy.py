"""Leave erased people out of training: their events never reach a model's inputs.

The canonical event file may come from a dataset or from an archive of the stream, with raw or pseudonymous
user ids. Erased people are known by their tombstones in the profiles table (pseudonyms only), so raw ids are
pseudonymized with the same pepper ingest uses before they are compared. A tombstone lasts
ErasureTombstoneDays: whoever keeps an event archive must purge an erased person's rows from it within that
time (see docs/privacy.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd

from personalization.identity import pseudonymize

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Excluded:
    people: int
    events: int


def drop_erased(frame: pd.DataFrame, erased: Collection[str], pepper: bytes) -> tuple[pd.DataFrame, Excluded]:
    """The rows of people not erased (matched by raw id through the pepper, or by pseudonym as it stands)."""
    if not erased or frame.empty:
        return frame, Excluded(0, 0)
    gone = {user for user in frame["user_id"].unique() if user in erased or pseudonymize(pepper, user) in erased}
    dropped = frame["user_id"].isin(gone)
    return frame[~dropped].reset_index(drop=True), Excluded(len(gone), int(dropped.sum()))


def exclude_erased_from_store(frame: pd.DataFrame, profiles_table: str, pepper_parameter: str) -> pd.DataFrame:
    """`frame` without the events of everyone with a live erasure tombstone in the profiles table."""
    from store.parameters import get_secret
    from store.profiles import ProfileStore, TableSettings
    from store.region import region_from

    store = ProfileStore(TableSettings(profiles_table, region_from(os.environ)))
    erased = set(store.erased_ids())
    kept, excluded = drop_erased(frame, erased, get_secret(pepper_parameter))
    # Counts only: which people were erased is exactly what must not be written down.
    log.warning("left out %d events of %d erased people (%d tombstones)", excluded.events, excluded.people, len(erased))
    return kept
