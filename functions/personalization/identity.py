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


# Finds a user id in raw record bytes even when the record around it is broken, so that a quarantined record
# can be kept for debugging without keeping the raw id. Broken senders quote the key every way: "user_id",
# 'user_id', bare user_id, \"user_id\" inside a double-encoded JSON string, or with the underscore escaped.
_USER_ID_KEY = re.compile(rb"""\\*["']?user(?:_|\\u005[fF])id\\*["']?\s*:\s*""")
_SCALAR = re.compile(
    rb'"(?:[^"\\]|\\.)*"?'  # a JSON string, maybe cut short
    rb"|'[^']*'?"  # single-quoted
    rb'|\\+"(?:[^"\\]|\\+[^"\\])*(?:\\+")?'  # a string inside a double-encoded string: \"...\"
    rb"|[-+0-9.eE]+"  # a number
)
_NO_ID = re.compile(rb"null\b|true\b|false\b")
# Anything that may be a user id key: its letters read user...id, whatever junk a broken encoder put between
# them ("use\xc3(r_id", "userId", "user\\u005fid"). If one is left without a replaced value after it, an id may
# still be there, and the whole record is masked instead.
_ID_LIKE_KEY = re.compile(
    rb"u[^a-z0-9]{0,4}s[^a-z0-9]{0,4}e[^a-z0-9]{0,4}r(?:[^a-z0-9]{0,6}|\\u005f)i[^a-z0-9]{0,4}d", re.IGNORECASE
)
_REPLACED = re.compile(rb"""\\*["']?\s*:\s*(?:"[0-9a-f]{64}"|null\b|true\b|false\b)""")
# A maximal run of non-structural bytes, and whether a key separator follows it.
_TOKEN = re.compile(rb"""[^\s"'{}\[\]:,\\]+(?=(["']?\s*:)?)""")


def _container_end(raw: bytes, start: int) -> int:
    """The end of the list or object opening at `start` (or of the data, when it is cut short)."""
    depth = 0
    quote: int | None = None
    index = start
    while index < len(raw):
        char = raw[index]
        if quote is not None:
            if char == 0x5C:  # backslash: skip the escaped byte
                index += 1
            elif char == quote:
                quote = None
        elif char in b"\"'":
            quote = char
        elif char in b"[{":
            depth += 1
        elif char in b"]}":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return len(raw)


def _id_text(value: bytes) -> str:
    if len(value) > 1 and value[:1] in (b'"', b"'") and value[-1:] == value[:1]:
        value = value[1:-1]
    elif value.startswith(b"\\"):
        value = value.lstrip(b"\\")[1:].rstrip(b'"').rstrip(b"\\")
    return value.decode("utf-8", errors="replace")


def _mask(raw: bytes) -> bytes:
    """Keep the record's shape and key names, replace every value token by "*"."""
    return _TOKEN.sub(lambda m: m.group(0) if m.group(1) is not None else b"*", raw)


def redact_user_id(pepper: bytes, raw: bytes) -> tuple[bytes, str | None]:
    """Replace every user id in `raw` by its pseudonym; return the redacted bytes and the first pseudonym.

    A string, number, list or object after a user id key is replaced whole. When some key that may name a
    user is left with anything else after it, every value in the record is masked: the raw id must not stay.
    """
    found: list[str] = []
    out = bytearray()
    position = 0
    for key in _USER_ID_KEY.finditer(raw):
        start = key.end()
        if key.start() < position or _NO_ID.match(raw, start):
            continue  # inside a value replaced already, or a field that names nobody
        if raw[start : start + 1] in (b"[", b"{"):
            end = _container_end(raw, start)
        else:
            scalar = _SCALAR.match(raw, start)
            if scalar is None:
                continue
            end = scalar.end()
        pseudonym = pseudonymize(pepper, _id_text(raw[start:end]))
        found.append(pseudonym)
        out += raw[position:start] + b'"' + pseudonym.encode() + b'"'
        position = end
    out += raw[position:]
    redacted = bytes(out)
    if any(_REPLACED.match(redacted, key.end()) is None for key in _ID_LIKE_KEY.finditer(redacted)):
        redacted = _mask(redacted)
    return redacted, (found[0] if found else None)


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
