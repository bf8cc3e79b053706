"""Per-user profile state and the fold that applies events to it.

This is the one place where profile features are computed: ingest folds stream batches through it, and
the trainer replays historical events through it, so offline and online features cannot drift apart.

`fold(profile, events)` is pure and idempotent: an event whose (shard, sequence number) is at or below
the profile's watermark for that shard, or whose event id is among the recent ones, is skipped, so any
redelivery pattern of a batch leaves the profile as if each distinct event were applied once.

Consent is folded too. Every event carries the person's consent at the time it was sent; one without
personalization consent (or a consent event withdrawing analytics) wipes the per-person history at once and
adds nothing to it, leaving only the consent state and the exactly-once bookkeeping. History grows again
from the next event that carries both consents, unless it is stamped at or before the latest withdrawal: a
late event from before a withdrawal must not bring back what the withdrawal removed.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from hashlib import sha256
from operator import itemgetter
from typing import Any, NamedTuple, cast

from personalization.consent_record import ConsentRecord, latest_record
from personalization.context import DEVICE_CODES, device_class
from personalization.events import Event, EventType
from personalization.fatigue import record_dismissal, record_shown, record_touch
from personalization.field_types import copier

HISTORY_LIMIT = 50
PURCHASED_LIMIT = 100
CART_LIMIT = 100
EVENT_ID_LIMIT = 64
AFFINITY_LIMIT = 32
SESSION_ITEMS_LIMIT = 50
SESSION_TIMEOUT_MS = 30 * 60 * 1000
# Purchases (or adds to cart) closer together than this are one order (one cart episode): a basket of several
# lines is one order, and one day's lines of a dataset stamped by date alone are one order too.
EPISODE_GAP_MS = SESSION_TIMEOUT_MS
# The device and time-of-day mixes are counts per class; when one reaches this, all are halved, so they stay
# small numbers that say what the person does lately, not since the first visit.
MIX_CAP = 256
# Local time of day in four parts of six hours: night (0-6 h), morning, afternoon, evening (18-24 h).
DAYPARTS = ("night", "morning", "afternoon", "evening")
_MS_PER_MINUTE = 60_000
_MS_PER_DAYPART = 6 * 3600 * 1000
# Scores below this are noise and would only cost bytes in every write.
AFFINITY_FLOOR = 1e-4

# How much one event says about a person's interest in its category (view < cart < purchase).
AFFINITY_WEIGHTS: dict[EventType, float] = {
    EventType.VIEW_PRODUCT: 1.0,
    EventType.ADD_TO_CART: 3.0,
    EventType.REMOVE_FROM_CART: 0.0,
    EventType.PURCHASE: 5.0,
    EventType.SEARCH: 0.5,
    EventType.PAGE_VIEW: 0.25,
    # "Not interested": negative feedback, summed into the category's score (read as no interest at or below 0).
    EventType.DISMISS: -3.0,
}

# One-letter codes keep the stored history small: DynamoDB bills every started KB of every write.
TYPE_CODES: dict[EventType, str] = {
    EventType.VIEW_PRODUCT: "v",
    EventType.ADD_TO_CART: "a",
    EventType.REMOVE_FROM_CART: "r",
    EventType.PURCHASE: "p",
    EventType.SEARCH: "s",
    EventType.PAGE_VIEW: "g",
    EventType.DISMISS: "x",
}
CODE_TYPES = {code: kind for kind, code in TYPE_CODES.items()}
CART_TYPES = frozenset({EventType.ADD_TO_CART, EventType.REMOVE_FROM_CART, EventType.PURCHASE})
# Enum members the fold compares every event with, as module globals: reading EventType.X goes through the
# enum's metaclass, ten times slower than a global.
_ADD_TO_CART = EventType.ADD_TO_CART
_REMOVE_FROM_CART = EventType.REMOVE_FROM_CART
_PURCHASE = EventType.PURCHASE
_CONSENT = EventType.CONSENT
_IMPRESSION = EventType.IMPRESSION
_DISMISS = EventType.DISMISS


class _Folded(NamedTuple):
    """What the fold needs to know of an event type, in one lookup per event."""

    # The plain-string name: EventType.value goes through a Python-level descriptor on every read.
    name: str
    code: str
    weight: float
    cart: bool


_FOLDED: dict[EventType, _Folded] = {
    kind: _Folded(kind.value, code, AFFINITY_WEIGHTS[kind], kind in CART_TYPES) for kind, code in TYPE_CODES.items()
}


@dataclass(frozen=True, slots=True)
class FoldSettings:
    affinity_half_life_ms: int = 7 * 24 * 3600 * 1000


_DEFAULT_SETTINGS = FoldSettings()


class PositionedEvent(NamedTuple):
    """An event with its place in the stream (shard id and sequence number), and a pseudonymous user id.

    A NamedTuple, not a frozen dataclass: as immutable, and a third of the cost to make, once per record.
    """

    event: Event
    shard: str
    seq: int

    @property
    def ts_ms(self) -> int:
        return to_ms(self.event)


@dataclass(slots=True)
class Session:
    id: str
    start_ms: int
    last_ms: int
    events: int
    items: list[str]
    last_type: str


def _stored(key: str, *, history: bool = True) -> dict[str, Any]:
    """A profile field's metadata: `key` is its name in the stored form (short: DynamoDB bills every byte of
    every write); `history` says it is what the person did, forgotten when consent is withdrawn (not consent
    state or the exactly-once bookkeeping). The codec, the fold's copy, `_forget` and `has_history` read it."""
    return {"key": key, "history": history}


@dataclass(slots=True)
class Profile:
    user_id: str  # the item's key, not stored in the state
    first_seen_ms: int | None = field(default=None, metadata=_stored("f"))
    counts: dict[str, int] = field(default_factory=dict, metadata=_stored("n"))
    last_seen_ms: dict[str, int] = field(default_factory=dict, metadata=_stored("l"))
    # Category scores as of affinity_at_ms, which trails the newest event by less than one half-life.
    affinity: dict[str, float] = field(default_factory=dict, metadata=_stored("a"))
    affinity_at_ms: int = field(default=0, metadata=_stored("at"))
    monetary: float = field(default=0.0, metadata=_stored("m"))
    # (item, type code, ts ms), oldest first, at most HISTORY_LIMIT.
    recent: list[tuple[str, str, int]] = field(default_factory=list, metadata=_stored("r"))
    cart: dict[str, int] = field(default_factory=dict, metadata=_stored("c"))
    purchased: dict[str, int] = field(default_factory=dict, metadata=_stored("p"))
    session: Session | None = field(default=None, metadata=_stored("s"))
    # Sessions started, orders (purchases less than EPISODE_GAP_MS apart are one) and cart episodes (likewise
    # for adds to cart): visit and purchase frequency, and cart abandonment as episodes not followed by orders.
    visits: int = field(default=0, metadata=_stored("vi"))
    orders: int = field(default=0, metadata=_stored("o"))
    cart_episodes: int = field(default=0, metadata=_stored("ce"))
    # Events per local time of day (DAYPARTS order) and per device class (DEVICE_CLASSES), halved at MIX_CAP.
    dayparts: list[int] = field(default_factory=lambda: [0, 0, 0, 0], metadata=_stored("h"))
    devices: dict[str, int] = field(default_factory=dict, metadata=_stored("d"))
    # The country (ISO 3166-1 alpha-2) of the newest event that named one (the edge's, via the collector).
    last_country: str | None = field(default=None, metadata=_stored("lc"))
    # Whether serve may personalize for this person: analytics and personalization consent, as last given.
    personalization: bool = field(default=True, metadata=_stored("ok", history=False))
    # Analytics consent as last given (events without it never reach the fold; a consent event can say so).
    analytics: bool = field(default=True, metadata=_stored("an", history=False))
    # The latest time the person was seen without personalization consent; events stamped at or before it
    # never build history.
    withdrawn_ms: int | None = field(default=None, metadata=_stored("wd", history=False))
    # The latest banner answer (personalization.consent_record).
    consent_record: ConsentRecord | None = field(default=None, metadata=_stored("cr", history=False))
    # Items shown and not taken, and items dismissed (personalization.fatigue says how they are kept).
    seen: dict[str, tuple[int, ...]] = field(default_factory=dict, metadata=_stored("sn"))
    dismissed: dict[str, int] = field(default_factory=dict, metadata=_stored("x"))
    watermarks: dict[str, int] = field(default_factory=dict, metadata=_stored("w", history=False))
    event_ids: list[str] = field(default_factory=list, metadata=_stored("e", history=False))

    @property
    def last_event_ms(self) -> int | None:
        return max(self.last_seen_ms.values()) if self.last_seen_ms else None

    @property
    def has_history(self) -> bool:
        """Whether anything about the person's behaviour is held (consent and bookkeeping are not history)."""
        return any(getattr(self, name) != default for name, default in _HISTORY_DEFAULTS)


# The stored fields and the history among them, read off the field declarations above.
STORED_FIELDS = tuple(f for f in fields(Profile) if "key" in f.metadata)
_BLANK = Profile(user_id="")  # the default of every field; only compared with, never changed
_HISTORY_DEFAULTS = tuple((f.name, getattr(_BLANK, f.name)) for f in STORED_FIELDS if f.metadata["history"])
# A copy sharing nothing mutable: positional, from one attrgetter call (dataclasses.replace took a fifth of a
# typical fold, one or two events onto a stored profile).
_copy: Callable[[Profile], Profile] = cast(Callable[[Profile], Profile], copier(Profile))


def to_ms(event: Event) -> int:
    return int(event.ts.timestamp() * 1000)


def event_id_digest(event_id: str) -> str:
    # 40 bits of a hash are enough to tell apart the last 64 ids of one person, in 10 characters.
    return sha256(event_id.encode()).hexdigest()[:10]


def decay_factor(elapsed_ms: float, half_life_ms: int) -> float:
    return float(0.5 ** (max(elapsed_ms, 0.0) / half_life_ms))


def affinities_at(profile: Profile, now_ms: int, settings: FoldSettings) -> dict[str, float]:
    """Category affinities decayed to `now_ms` (stored scores are as of `affinity_at_ms`): the positive ones.

    A dismissal's negative weight is summed like any other, so scores stay a sum of decayed weights whatever
    the order events arrive in; a category whose sum is not above zero holds no interest."""
    factor = decay_factor(now_ms - profile.affinity_at_ms, settings.affinity_half_life_ms)
    return {category: score * factor for category, score in profile.affinity.items() if score > 0}


def _add_affinity(profile: Profile, category: str, weight: float, ts_ms: int, half_life_ms: int) -> None:
    # Scores are kept as of an anchor time (affinity_at_ms): an event adds its weight decayed (or grown) to
    # the anchor, weight * 2^((ts - anchor) / half-life), and scores are decayed to a reading time only when
    # read (affinities_at). So an event touches one score instead of decaying every one, and a late event
    # needs no case of its own. The state is a function of the events in sequence order alone, never of
    # where batches split them: the stored JSON keeps every float exactly, so no rounding is needed either.
    scores = profile.affinity
    if not scores:
        profile.affinity_at_ms = ts_ms
    elif ts_ms - profile.affinity_at_ms >= half_life_ms:
        _move_anchor(profile, (ts_ms - profile.affinity_at_ms) // half_life_ms, half_life_ms)
        scores = profile.affinity
    added = weight * 2.0 ** ((ts_ms - profile.affinity_at_ms) / half_life_ms)
    if -AFFINITY_FLOOR < added < AFFINITY_FLOOR:
        return  # a late event from long before the anchor: noise that would only cost bytes
    scores[category] = scores.get(category, 0.0) + added
    if len(scores) > AFFINITY_LIMIT:
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        profile.affinity = dict(ranked[:AFFINITY_LIMIT])


def _move_anchor(profile: Profile, half_lives: int, half_life_ms: int) -> None:
    """Move the anchor forward by whole half-lives, so that stored scores stay near their current values.

    Halving is exact in binary floating point (ldexp), and scores too small to matter any more are dropped.
    It happens at most once per half-life of a person's activity.
    """
    profile.affinity_at_ms += half_lives * half_life_ms
    profile.affinity = {
        c: scaled for c, s in profile.affinity.items() if abs(scaled := math.ldexp(s, -half_lives)) >= AFFINITY_FLOOR
    }


def _update_session(profile: Profile, session_id: str | None, item: str | None, code: str, ts_ms: int) -> None:
    session = profile.session
    if (
        session is None
        or ts_ms - session.last_ms > SESSION_TIMEOUT_MS
        or (session_id is not None and session_id != session.id and ts_ms >= session.last_ms)
    ):
        profile.session = Session(session_id or f"t{ts_ms}", ts_ms, ts_ms, 1, [item] if item else [], code)
        profile.visits += 1
        return
    if ts_ms < session.start_ms:
        return  # a late event from before this session started belongs to an older session
    session.events += 1
    if ts_ms >= session.last_ms:
        session.last_ms = ts_ms
        session.last_type = code
    items = session.items
    if item and item not in items and len(items) < SESSION_ITEMS_LIMIT:
        items.append(item)


def _update_cart(profile: Profile, event: Event, ts_ms: int) -> None:
    item = event.item_id
    if item is None:
        return
    kind = event.type
    if kind is _ADD_TO_CART:
        if item in profile.cart or len(profile.cart) < CART_LIMIT:
            profile.cart[item] = profile.cart.get(item, 0) + event.quantity
    elif kind is _REMOVE_FROM_CART:
        left = profile.cart.get(item, 0) - event.quantity
        if left > 0:
            profile.cart[item] = left
        else:
            profile.cart.pop(item, None)
    elif kind is _PURCHASE:
        profile.cart.pop(item, None)
        profile.purchased[item] = max(ts_ms, profile.purchased.get(item, 0))
        if len(profile.purchased) > PURCHASED_LIMIT:
            oldest = min(profile.purchased.items(), key=lambda kv: (kv[1], kv[0]))[0]
            del profile.purchased[oldest]


def _entry_ts(entry: tuple[str, str, int]) -> int:
    return entry[2]


_position = itemgetter(2, 1)  # sequence order: the key (p.seq, p.shard), without a Python call


def _forget(profile: Profile) -> None:
    """Drop every piece of per-person history; keep consent state and the exactly-once bookkeeping."""
    blank = Profile(profile.user_id)
    for name, _ in _HISTORY_DEFAULTS:
        setattr(profile, name, getattr(blank, name))


def daypart(ts_ms: int, utc_offset_min: int | None) -> int:
    """Index into DAYPARTS of the local time of day: UTC plus the tracker's offset (UTC when it sent none).

    Days have four parts of six hours each, and a UTC day starts on a part boundary, so the part is the count
    of six-hour blocks since the epoch, modulo 4 (& 3 is that for negative counts too)."""
    local_ms = ts_ms if utc_offset_min is None else ts_ms + utc_offset_min * _MS_PER_MINUTE
    return (local_ms // _MS_PER_DAYPART) & 3


def _record_decision(profile: Profile, event: Event) -> None:
    """Keep the latest banner answer (by when it was decided, so a late redelivery never replaces a newer one)."""
    decision = event.decision
    if decision is None:
        return
    decided_ms = int(decision.decided_at.timestamp() * 1000)
    record = profile.consent_record
    if record is None or decided_ms >= record[2]:
        consent = event.consent
        profile.consent_record = (consent.analytics, consent.personalization, decided_ms, decision.action)


def _apply(profile: Profile, event: Event, ts_ms: int, half_life_ms: int) -> None:
    kind = event.type
    consent = event.consent
    if kind is _CONSENT:
        profile.consent_record = latest_record(profile.consent_record, event)
    # Every other type reaches the fold only with analytics consent (parse_record drops the rest); a consent
    # event may say analytics is withdrawn, and then nothing may be kept either.
    allowed = consent.analytics and consent.personalization
    if not allowed:
        profile.analytics = consent.analytics
        profile.personalization = False
        withdrawn = profile.withdrawn_ms
        if withdrawn is None or ts_ms > withdrawn:
            profile.withdrawn_ms = ts_ms
        if profile.has_history:
            _forget(profile)
        return
    withdrawn = profile.withdrawn_ms
    if withdrawn is not None and ts_ms <= withdrawn:
        # Sent before the latest withdrawal and delivered after it: its consent is outdated, its data gone.
        return
    profile.analytics = True
    profile.personalization = True
    if kind is _CONSENT:
        return
    name, code, weight, cart = _FOLDED[kind]
    first_seen = profile.first_seen_ms
    if first_seen is None or ts_ms < first_seen:
        profile.first_seen_ms = ts_ms
    counts = profile.counts
    counts[name] = counts.get(name, 0) + 1
    last_seen = profile.last_seen_ms
    previous = last_seen.get(name)
    if previous is None or ts_ms > previous:
        last_seen[name] = ts_ms
    if kind is _PURCHASE:
        if previous is None or ts_ms - previous > EPISODE_GAP_MS:
            profile.orders += 1
        if event.price is not None:
            profile.monetary = round(profile.monetary + event.price * event.quantity, 2)
    elif kind is _ADD_TO_CART and (previous is None or ts_ms - previous > EPISODE_GAP_MS):
        profile.cart_episodes += 1
    # The time-of-day and device mixes; daypart() inlined, as a Python call costs as much as it does here.
    context = event.context
    offset = context.utc_offset_min
    part = ((ts_ms if offset is None else ts_ms + offset * _MS_PER_MINUTE) // _MS_PER_DAYPART) & 3
    dayparts = profile.dayparts
    mixed = dayparts[part] + 1
    dayparts[part] = mixed
    if mixed >= MIX_CAP:
        profile.dayparts = [count // 2 for count in dayparts]
    device = context.device
    if device is not None:
        code = DEVICE_CODES.get(device) or device_class(device)
        devices = profile.devices
        mixed = devices.get(code, 0) + 1
        devices[code] = mixed
        if mixed >= MIX_CAP:
            profile.devices = {key: half for key, value in devices.items() if (half := value // 2)}
    country = context.country
    # The newest event's country, whatever order events arrive in (a late one from an earlier trip keeps out).
    if country is not None and country != profile.last_country and ts_ms >= max(last_seen.values()):
        profile.last_country = country
    category = event.category
    if category and weight:
        _add_affinity(profile, category, weight, ts_ms, half_life_ms)
    item = event.item_id
    if item and profile.seen:
        record_touch(profile.seen, item, ts_ms)
    if kind is _DISMISS:
        record_dismissal(profile.dismissed, item or "", ts_ms)  # an item is required of a dismissal
    elif item:
        recent = profile.recent
        entry = (item, code, ts_ms)
        # Ordered by event time, so a late event lands where it happened and replays in time order agree.
        if not recent or recent[-1][2] <= ts_ms:
            recent.append(entry)
        else:
            recent.insert(bisect.bisect_right(recent, ts_ms, key=_entry_ts), entry)
        if len(recent) > HISTORY_LIMIT:
            del recent[:-HISTORY_LIMIT]
    if cart:
        _update_cart(profile, event, ts_ms)
    _update_session(profile, event.session_id, item, code, ts_ms)


def _shown(profile: Profile, event: Event, ts_ms: int) -> None:
    """Serve's impression: the items it showed. Its consent is serve's, not the person's, so it changes no
    consent state; it is kept only while the person allows personalization and is not older than a withdrawal."""
    withdrawn = profile.withdrawn_ms
    if event.impression is None or not profile.personalization or (withdrawn is not None and ts_ms <= withdrawn):
        return
    record_shown(profile.seen, event.impression.items, ts_ms, lambda: _last_touches(profile))


def _last_touches(profile: Profile) -> dict[str, int]:
    """When the person last touched each item their history holds (a dismissal is a touch too)."""
    touches = dict(profile.dismissed)
    for item, _, ts in profile.recent:
        if ts > touches.get(item, -1):
            touches[item] = ts
    return touches


def fold(
    profile: Profile | None,
    user_id: str,
    events: Iterable[PositionedEvent],
    settings: FoldSettings | None = None,
    *,
    in_place: bool = False,
) -> tuple[Profile, int]:
    """Apply the events not yet applied, in sequence order. Returns the new profile and how many applied.

    The input profile is not mutated, so a caller can retry a failed conditional write from the original.
    With `in_place` it is: for a caller that owns a profile it decoded for this fold alone (ingest reads the
    profile again before every retry), which saves the copy, a fifth of a typical fold.
    """
    half_life_ms = (settings or _DEFAULT_SETTINGS).affinity_half_life_ms
    if profile is None:
        state = Profile(user_id=user_id)
    elif in_place:
        state = profile
    else:
        state = _copy(profile)
    watermarks = state.watermarks
    event_ids = state.event_ids
    applied = 0
    for event, shard, seq in sorted(events, key=_position):
        if event.user_id != user_id:
            raise ValueError("fold got an event of another user")
        if seq <= watermarks.get(shard, -1):
            continue  # redelivered by Kinesis: at or below this shard's watermark
        if event.type is _IMPRESSION:
            # Serve's exposure record is idempotent by itself (a showing at the same time is kept once), so it
            # takes no place among the recent event ids, which guard the person's own events against resends.
            _shown(state, event, int(event.ts.timestamp() * 1000))
            watermarks[shard] = seq
            applied += 1
            continue
        # event_id_digest and to_ms, inlined: a Python call costs as much as each of them here.
        digest = sha256(event.event_id.encode()).hexdigest()[:10]
        if digest in event_ids:
            continue  # re-sent by the producer with a new sequence number
        _apply(state, event, int(event.ts.timestamp() * 1000), half_life_ms)
        watermarks[shard] = seq
        event_ids.append(digest)
        if len(event_ids) > EVENT_ID_LIMIT:
            del event_ids[:-EVENT_ID_LIMIT]
        applied += 1
    return state, applied
