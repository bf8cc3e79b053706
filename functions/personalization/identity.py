"""Pseudonymous ids and signed identity tokens.

A raw user id never leaves ingest: it becomes HMAC-SHA256(pepper, raw id). Serve learns who a visitor is
only from a token that binds a pseudonymous id to an expiry under a key it holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from functools import lru_cache

TOKEN_FORMAT = "v1"  # noqa: S105 -- a format tag, not a secret
_PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")


# A batch names the same people many times; the cache holds pseudonyms only for ids seen in this container.
@lru_cache(maxsize=65_536)
def pseudonymize(pepper: bytes, raw_user_id: str) -> str:
    return hmac.new(pepper, raw_user_id.encode(), hashlib.sha256).hexdigest()


def _signature(key: bytes, pseudonym: str, expires_at: int) -> str:
    mac = hmac.new(key, f"{TOKEN_FORMAT}.{pseudonym}.{expires_at}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign_token(key: bytes, pseudonym: str, expires_at: int) -> str:
    if not _PSEUDONYM.match(pseudonym):
        raise ValueError("a token names a pseudonymous id (64 hex characters), never a raw id")
    return f"{TOKEN_FORMAT}.{pseudonym}.{expires_at}.{_signature(key, pseudonym, expires_at)}"


def verify_token(key: bytes, token: str | None, now: int) -> str | None:
    """The pseudonymous id a token proves, or None for a missing, malformed, expired or forged token."""
    if not token or len(token) > 200:
        return None
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_FORMAT:
        return None
    _, pseudonym, expiry, signature = parts
    if not _PSEUDONYM.match(pseudonym) or not expiry.isdigit():
        return None
    expected = _signature(key, pseudonym, int(expiry))
    # Constant time, so the signature cannot be guessed byte by byte from response timings.
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return None
    if int(expiry) <= now:
        return None
    return pseudonym


# Finds a user id in raw record bytes even when the JSON around it is broken, so that a quarantined
# record can be kept for debugging without keeping the raw id.
_USER_ID_FIELD = re.compile(rb'("user_id"\s*:\s*)("(?:[^"\\]|\\.)*"?|[-+0-9.eE]+)')


def redact_user_id(pepper: bytes, raw: bytes) -> tuple[bytes, str | None]:
    """Replace every user id in `raw` by its pseudonym; return the redacted bytes and the first pseudonym."""
    found: list[str] = []

    def substitute(match: re.Match[bytes]) -> bytes:
        value = match.group(2)
        text = value[1:-1] if value.startswith(b'"') and value.endswith(b'"') and len(value) > 1 else value
        pseudonym = pseudonymize(pepper, text.decode("utf-8", errors="replace"))
        found.append(pseudonym)
        return match.group(1) + b'"' + pseudonym.encode() + b'"'

    redacted = _USER_ID_FIELD.sub(substitute, raw)
    return redacted, (found[0] if found else None)
