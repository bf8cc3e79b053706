"""Where an event may come from, and proof that an impression came from serve.

Browsers send interactions through the collector, which admits only `BROWSER_EVENT_TYPES`; impressions (the
exposure log experiments are judged from) are written by serve alone, and each carries an HMAC that serve
makes under a key derived from its identity key. A report that holds the key counts only impressions whose
signature verifies, so an impression written by anyone else (a forged browser post before the collector
refused them, a careless backend producer) changes no experiment's figures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from personalization.events import Event

# Domain separation: a signature made for impressions can never stand for a token's, nor the reverse.
_PURPOSE = b"pz-impressions-v1"
_SEPARATOR = "\x1f"  # a unit separator: no field of an impression can hold it ambiguously next to another


def impression_key(identity_key: bytes) -> bytes:
    """The key impressions are signed with, derived from serve's identity key."""
    return hmac.new(identity_key, _PURPOSE, hashlib.sha256).digest()


def _payload(event: Event) -> bytes:
    shown = event.impression
    assert shown is not None  # only impression events are signed
    fields = (
        event.event_id,
        event.user_id,
        event.ts.isoformat(),
        shown.slot,
        shown.experiment or "",
        shown.variant or "",
        _SEPARATOR.join(shown.items),
        shown.model_version,
        shown.rules_version,
    )
    return _SEPARATOR.join(fields).encode()


def impression_signature(key: bytes, event: Event) -> str:
    """The signature of an impression event (its `impression.signature` is not part of what is signed)."""
    mac = hmac.new(key, _payload(event), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def signed_by_serve(key: bytes, event: Event) -> bool:
    """Whether an impression event carries serve's signature over exactly what it says."""
    shown = event.impression
    if shown is None or shown.signature is None:
        return False
    expected = impression_signature(key, event).encode()
    return hmac.compare_digest(expected, shown.signature.encode("utf-8", errors="replace"))
