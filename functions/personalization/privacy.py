"""A person's rights over their profile: access (what we hold, readable) and erasure (that sticks).

Plain Python: the stores are protocols here; `store/` implements them, serve's routes and the erase function
call `erase_person`, serve's route calls `describe`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from personalization.context import DEVICE_NAMES
from personalization.profile import CODE_TYPES, DAYPARTS, FoldSettings, Profile, affinities_at


class ErasurePath(StrEnum):
    """Who asked: the person through the API, or an operator for them (support ticket, legal request)."""

    SELF_SERVICE = "self_service"
    ADMIN = "admin"


class ErasureRecord(BaseModel):
    """What one erasure did. Also the answer to whoever asked: it names no one, so it can be shown and logged."""

    model_config = ConfigDict(frozen=True)

    erasure_id: str
    at: datetime
    path: ErasurePath
    # Profiles removed (0 or 1: there may have been none yet, and the tombstone is written anyway).
    profiles: int
    quarantined: int
    # Until then the person's events still in the stream are dropped, however often they are redelivered.
    tombstone_until: datetime


class ProfileEraser(Protocol):
    def erase(self, user_id: str, tombstone_until: datetime) -> bool: ...


class QuarantinePurger(Protocol):
    def delete_user(self, user: str) -> int: ...


class ErasureLog(Protocol):
    def record(self, entry: ErasureRecord) -> None: ...


def new_erasure_id() -> str:
    return secrets.token_hex(16)


def erase_person(
    user_id: str,
    path: ErasurePath,
    *,
    profiles: ProfileEraser,
    quarantine: QuarantinePurger,
    log: ErasureLog,
    now: datetime,
    tombstone_for: timedelta,
    new_id: Callable[[], str] = new_erasure_id,
) -> ErasureRecord:
    """Erase everything held about one pseudonymous user, and log that it was done.

    The tombstone comes first: from then on ingest drops the person's events and bad records, so nothing
    re-creates what is deleted next. Every step is idempotent, so a failed erasure is simply run again.
    """
    until = now + tombstone_for
    had_profile = profiles.erase(user_id, until)
    quarantined = quarantine.delete_user(user_id)
    record = ErasureRecord(
        erasure_id=new_id(),
        at=now,
        path=path,
        profiles=1 if had_profile else 0,
        quarantined=quarantined,
        tombstone_until=until,
    )
    log.record(record)
    return record


# ---------------------------------------------------------------------------------------------- access


class ConsentDecisionView(BaseModel):
    """The latest answer to the consent banner: what was agreed, how, and when."""

    analytics: bool
    personalization: bool
    action: str
    decided_at: datetime


class ConsentView(BaseModel):
    analytics: bool
    personalization: bool
    # The latest time the person was seen without personalization consent; nothing older is kept.
    withdrawn_at: datetime | None
    decision: ConsentDecisionView | None = None


class RecentEntry(BaseModel):
    item_id: str
    event_type: str
    at: datetime


class CartEntry(BaseModel):
    item_id: str
    quantity: int


class PurchaseEntry(BaseModel):
    item_id: str
    at: datetime


class SessionView(BaseModel):
    id: str
    started_at: datetime
    last_event_at: datetime
    events: int
    items: list[str]
    last_event_type: str


class AffinityView(BaseModel):
    # Interest per category as of the answer's time (what serve would use now)...
    as_of: datetime
    scores: dict[str, float]
    # ...and as stored, with the time they were computed at (decay is applied when read).
    stored_as_of: datetime | None
    stored_scores: dict[str, float]


class RfmView(BaseModel):
    last_event_at: datetime | None
    events: int
    monetary: float
    visits: int
    orders: int
    cart_episodes: int


class MixView(BaseModel):
    """Recent events per local time of day and per device class (halved as they grow: see the fold)."""

    time_of_day: dict[str, int]
    devices: dict[str, int]
    # The country of the newest event that named one (as the CDN placed the visitor).
    last_country: str | None = None


class ShownEntry(BaseModel):
    """An item serve showed the person: when, since they last touched it (what seen-item fatigue reads)."""

    item_id: str
    last_touched_at: datetime | None
    shown_at: list[datetime]


class DismissedEntry(BaseModel):
    """An item the person said "not interested" to, and when."""

    item_id: str
    at: datetime


class TechnicalView(BaseModel):
    """Bookkeeping held for exactly-once processing and retention; counts only, nothing about behaviour."""

    version: int | None
    stream_positions: int
    recent_event_ids: int
    expires_at: datetime | None


class ProfileView(BaseModel):
    """Everything the profile holds, readable: what serve personalizes from, and nothing else is stored."""

    pseudonymous_id: str
    consent: ConsentView
    first_seen: datetime | None
    counts: dict[str, int]
    last_seen: dict[str, datetime]
    affinities: AffinityView
    rfm: RfmView
    mix: MixView
    recent: list[RecentEntry]
    cart: list[CartEntry]
    purchased: list[PurchaseEntry]
    session: SessionView | None
    shown: list[ShownEntry]
    dismissed: list[DismissedEntry]
    technical: TechnicalView


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _type_name(code: str) -> str:
    kind = CODE_TYPES.get(code)
    return kind.value if kind is not None else code


def _decision(record: tuple[bool, bool, int, str] | None) -> ConsentDecisionView | None:
    if record is None:
        return None
    analytics, personalization, decided_ms, action = record
    return ConsentDecisionView(
        analytics=analytics, personalization=personalization, action=action, decided_at=_at(decided_ms)
    )


def describe(
    profile: Profile,
    version: int | None,
    expires_at: datetime | None,
    now_ms: int,
    settings: FoldSettings,
) -> ProfileView:
    """The stored profile as a person can read it (times in ISO 8601 UTC, event types by name)."""
    session = profile.session
    return ProfileView(
        pseudonymous_id=profile.user_id,
        consent=ConsentView(
            analytics=profile.analytics,
            personalization=profile.personalization,
            withdrawn_at=None if profile.withdrawn_ms is None else _at(profile.withdrawn_ms),
            decision=_decision(profile.consent_record),
        ),
        first_seen=None if profile.first_seen_ms is None else _at(profile.first_seen_ms),
        counts=dict(profile.counts),
        last_seen={name: _at(ms) for name, ms in profile.last_seen_ms.items()},
        affinities=AffinityView(
            as_of=_at(now_ms),
            scores=affinities_at(profile, now_ms, settings),
            stored_as_of=_at(profile.affinity_at_ms) if profile.affinity else None,
            stored_scores=dict(profile.affinity),
        ),
        rfm=RfmView(
            last_event_at=None if profile.last_event_ms is None else _at(profile.last_event_ms),
            events=sum(profile.counts.values()),
            monetary=profile.monetary,
            visits=profile.visits,
            orders=profile.orders,
            cart_episodes=profile.cart_episodes,
        ),
        mix=MixView(
            time_of_day=dict(zip(DAYPARTS, profile.dayparts, strict=True)),
            devices={DEVICE_NAMES.get(code, code): count for code, count in profile.devices.items()},
            last_country=profile.last_country,
        ),
        recent=[
            RecentEntry(item_id=item, event_type=_type_name(code), at=_at(ts)) for item, code, ts in profile.recent
        ],
        cart=[CartEntry(item_id=item, quantity=quantity) for item, quantity in profile.cart.items()],
        purchased=[PurchaseEntry(item_id=item, at=_at(ts)) for item, ts in profile.purchased.items()],
        session=None
        if session is None
        else SessionView(
            id=session.id,
            started_at=_at(session.start_ms),
            last_event_at=_at(session.last_ms),
            events=session.events,
            items=list(session.items),
            last_event_type=_type_name(session.last_type),
        ),
        shown=[
            ShownEntry(
                item_id=item, last_touched_at=_at(entry[0]) if entry[0] else None, shown_at=list(map(_at, entry[1:]))
            )
            for item, entry in profile.seen.items()
        ],
        dismissed=[DismissedEntry(item_id=item, at=_at(ts)) for item, ts in profile.dismissed.items()],
        technical=TechnicalView(
            version=version,
            stream_positions=len(profile.watermarks),
            recent_event_ids=len(profile.event_ids),
            expires_at=expires_at,
        ),
    )
