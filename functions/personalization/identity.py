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
# A number in its one canonical form: ASCII digits only (str.isdigit() also takes "²", which int() refuses)
# and no leading zero (the signature covers the number, so "0123" would be a second spelling of "123").
_CANONICAL_NUMBER = re.compile(r"(?:0|[1-9][0-9]{0,17})", re.ASCII)


def _canonical_int(text: str) -> int | None:
    """The number `text` spells in canonical form, or None for anything else."""
    return int(text) if _CANONICAL_NUMBER.fullmatch(text) else None


# A batch names the same people many times; the cache holds pseudonyms only for ids seen in this container.
@lru_cache(maxsize=65_536)
def pseudonymize(pepper: bytes, raw_user_id: str) -> str:
    mac = _keyed(pepper).copy()
    mac.update(raw_user_id.encode())
    return mac.hexdigest()


@lru_cache(maxsize=4)
def _keyed(pepper: bytes) -> hmac.HMAC:
    # HMAC with the key already mixed in: copying it is a quarter cheaper than keying a new one per person.
    return hmac.new(pepper, digestmod=hashlib.sha256)


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
    _, pseudonym, expiry_text, signature = parts
    expiry = _canonical_int(expiry_text)
    if expiry is None or not _PSEUDONYM.fullmatch(pseudonym):
        return None
    expected = _signature(key, pseudonym, expiry)
    # Constant time, so the signature cannot be guessed byte by byte from response timings. Both sides are
    # bytes: compare_digest refuses a str holding non-ASCII characters with a TypeError.
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", errors="replace")):
        return None
    if expiry <= now:
        return None
    return pseudonym


SEGMENT_FORMAT = "s1"


def _segment_signature(key: bytes, segment: int, model_version: str) -> str:
    mac = hmac.new(key, f"{SEGMENT_FORMAT}.{segment}.{model_version}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def sign_segment(key: bytes, segment: int, model_version: str) -> str:
    """A cookie value naming a segment of one model version: the CDN keys shared fragments on it, so it must
    not be forgeable (a forged value would only pick another segment's public fragment, but still)."""
    return f"{SEGMENT_FORMAT}.{segment}.{_segment_signature(key, segment, model_version)}"


def verify_segment(key: bytes, cookie: str | None, model_version: str) -> int | None:
    """The segment a cookie names, or None when missing, malformed, forged or from another model version."""
    if not cookie or len(cookie) > 64:
        return None
    parts = cookie.split(".")
    segment = _canonical_int(parts[1]) if len(parts) == 3 and parts[0] == SEGMENT_FORMAT else None
    if segment is None:
        return None
    signature = parts[2].encode("utf-8", errors="replace")
    if not hmac.compare_digest(_segment_signature(key, segment, model_version).encode(), signature):
        return None
    return segment
