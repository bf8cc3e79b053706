"""Which archived events a model may learn from, as canonical rows (the trainer's one input format).

Consent, as the profile fold reads it (personalization/profile.py): every event carries its sender's consent at
the time. A person whose latest stated consent (their latest event; at equal times a consent event wins) lacks
personalization or analytics is left out entirely: they withdrew, or never agreed, and serve does not
personalize for them either. For everyone else, events stamped at or before their latest withdrawal are left
out too, as the fold wipes that history. Impressions (what serve showed) and consent events are not behaviour
and never become rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from model_export.data.archive import ArchivedEvent
from personalization.events import EventType

NOT_BEHAVIOUR = frozenset({EventType.IMPRESSION, EventType.CONSENT})
COLUMNS = (
    "user_id",
    "item_id",
    "event_type",
    "timestamp",
    "category",
    "price",
    "quantity",
    "session_id",
    "device",
    "utc_offset_min",
)


@dataclass(frozen=True, slots=True)
class LeftOut:
    """Counts only: who was left out is exactly what must not be written down.

    For consent, `people` were left out entirely and `events` also counts others' events stamped before a
    withdrawal; the same shape counts erased people (model_export.data.window)."""

    people: int
    events: int

    def to_dict(self) -> dict[str, int]:
        return {"people": self.people, "events": self.events}


def with_consent(events: Sequence[ArchivedEvent]) -> tuple[list[ArchivedEvent], LeftOut]:
    """`events` (in time order) without those of people who withdrew, nor those before a withdrawal."""
    latest: dict[str, ArchivedEvent] = {}
    withdrawn: dict[str, datetime] = {}
    for event in events:
        current = latest.get(event.user_id)
        if current is None or event.ts > current.ts or (event.ts == current.ts and event.type is EventType.CONSENT):
            latest[event.user_id] = event
        if not event.personalization:
            seen = withdrawn.get(event.user_id)
            withdrawn[event.user_id] = event.ts if seen is None or event.ts > seen else seen
    gone = {user for user, event in latest.items() if not event.personalization}
    kept = [
        event
        for event in events
        if event.user_id not in gone and (event.user_id not in withdrawn or event.ts > withdrawn[event.user_id])
    ]
    return kept, LeftOut(len(gone), len(events) - len(kept))


def canonical_rows(events: Sequence[ArchivedEvent]) -> pd.DataFrame:
    """Behaviour events as canonical columns (model_export.data.canonical), ready for `normalize`."""
    rows = [event for event in events if event.type not in NOT_BEHAVIOUR]
    return pd.DataFrame(
        {
            "user_id": [event.user_id for event in rows],
            "item_id": pd.Series([event.item_id for event in rows], dtype=object),
            "event_type": [event.type.value for event in rows],
            "timestamp": pd.to_datetime([event.ts for event in rows], utc=True),
            "category": pd.Series([event.category for event in rows], dtype=object),
            "price": pd.Series([event.price for event in rows], dtype=float),
            "quantity": [event.quantity for event in rows],
            "session_id": pd.Series([event.session_id for event in rows], dtype=object),
            "device": pd.Series([event.device for event in rows], dtype=object),
            "utc_offset_min": pd.Series([event.utc_offset_min for event in rows], dtype="Int64"),
        },
        columns=list(COLUMNS),
    )
