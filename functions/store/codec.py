"""The stored form of a profile: compact, deterministic bytes.

DynamoDB bills a write unit for every started KB, and every batch rewrites the whole item, so the state is
JSON with short keys, sorted and without spaces (the same profile always encodes to the same bytes), then
zlib-compressed. Pure code: no AWS here, so the trainer and benchmarks can size profiles too.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from personalization.profile import Profile, Session


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    session = profile.session
    data: dict[str, Any] = {
        "f": profile.first_seen_ms,
        "n": profile.counts,
        "l": profile.last_seen_ms,
        "a": profile.affinity,
        "at": profile.affinity_at_ms,
        "m": profile.monetary,
        "r": [list(entry) for entry in profile.recent],
        "c": profile.cart,
        "p": profile.purchased,
        "s": None
        if session is None
        else [
            session.id,
            session.start_ms,
            session.last_ms,
            session.events,
            session.items,
            session.last_type,
        ],
        "ok": profile.personalization,
        "w": profile.watermarks,
        "e": profile.event_ids,
    }
    # Written only when they differ from the default, so that nearly every profile (consent given, never
    # withdrawn) costs no byte for them, and items written before they existed decode to the same state.
    if not profile.analytics:
        data["an"] = False
    if profile.withdrawn_ms is not None:
        data["wd"] = profile.withdrawn_ms
    # Likewise the frequencies and mixes (items written before they existed decode to zeros).
    if profile.visits:
        data["vi"] = profile.visits
    if profile.orders:
        data["o"] = profile.orders
    if profile.cart_episodes:
        data["ce"] = profile.cart_episodes
    if any(profile.dayparts):
        data["h"] = profile.dayparts
    if profile.devices:
        data["d"] = profile.devices
    if profile.consent_record is not None:
        data["cr"] = list(profile.consent_record)
    return data


def profile_from_dict(user_id: str, data: dict[str, Any]) -> Profile:
    raw_session = data.get("s")
    session = None
    if raw_session is not None:
        sid, start, last, events, items, last_type = raw_session
        session = Session(sid, int(start), int(last), int(events), list(items), str(last_type))
    return Profile(
        user_id=user_id,
        first_seen_ms=data.get("f"),
        counts={k: int(v) for k, v in data.get("n", {}).items()},
        last_seen_ms={k: int(v) for k, v in data.get("l", {}).items()},
        affinity={k: float(v) for k, v in data.get("a", {}).items()},
        affinity_at_ms=int(data.get("at", 0)),
        monetary=float(data.get("m", 0.0)),
        recent=[(str(i), str(t), int(ts)) for i, t, ts in data.get("r", [])],
        cart={k: int(v) for k, v in data.get("c", {}).items()},
        purchased={k: int(v) for k, v in data.get("p", {}).items()},
        session=session,
        personalization=bool(data.get("ok", True)),
        analytics=bool(data.get("an", True)),
        withdrawn_ms=None if data.get("wd") is None else int(data["wd"]),
        visits=int(data.get("vi", 0)),
        orders=int(data.get("o", 0)),
        cart_episodes=int(data.get("ce", 0)),
        dayparts=[int(v) for v in data.get("h", (0, 0, 0, 0))],
        devices={k: int(v) for k, v in data.get("d", {}).items()},
        consent_record=_consent_record(data.get("cr")),
        watermarks={k: int(v) for k, v in data.get("w", {}).items()},
        event_ids=[str(e) for e in data.get("e", [])],
    )


def _consent_record(value: Any) -> tuple[bool, bool, int, str] | None:
    if value is None:
        return None
    analytics, personalization, decided_ms, action = value
    return bool(analytics), bool(personalization), int(decided_ms), str(action)


def encode(profile: Profile) -> bytes:
    text = json.dumps(profile_to_dict(profile), sort_keys=True, separators=(",", ":"))
    return zlib.compress(text.encode(), 9)


def decode(user_id: str, blob: bytes) -> Profile:
    return profile_from_dict(user_id, json.loads(zlib.decompress(blob)))
