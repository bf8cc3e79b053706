"""The consent record a profile keeps: the latest answer to the consent banner, what was agreed and when.

One tuple, never a history, so the profile stays small: (analytics, personalization, decided at in ms, action).
"""

from __future__ import annotations

from personalization.events import Event

ConsentRecord = tuple[bool, bool, int, str]


def latest_record(record: ConsentRecord | None, event: Event) -> ConsentRecord | None:
    """`record` updated by a consent event's banner answer, if it carries one given no earlier than `record`'s
    (ordered by when it was decided, so a late redelivery never replaces a newer answer)."""
    decision = event.decision
    if decision is None:
        return record
    decided_ms = int(decision.decided_at.timestamp() * 1000)
    if record is not None and decided_ms < record[2]:
        return record
    return event.consent.analytics, event.consent.personalization, decided_ms, decision.action
