"""Mask e-mail and IP addresses in text kept for debugging (quarantined records and their messages).

The event schema has no field for either, but a broken or careless tracker can put them anywhere (a referrer
URL, a page path, a stray field), and a quarantined record keeps its bytes. Candidates are found by pattern
and IP addresses confirmed by `ipaddress`, so times like 12:30:45 or version numbers above 255 are left be.
"""

from __future__ import annotations

import ipaddress
import re

EMAIL_MASK = b"<email>"
IP_MASK = b"<ip>"

# No top-level domain required: a record cut short at 4 KB may end in "name@exam".
_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_IPV4 = re.compile(rb"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9])")
# Two colons at least; whether it is an address is left to ipaddress (it also takes an embedded IPv4 tail).
_IPV6 = re.compile(rb"(?<![0-9A-Za-z:])[0-9A-Fa-f:]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?![0-9A-Za-z:])")


def _ipv4(match: re.Match[bytes]) -> bytes:
    text = match.group(0)
    try:
        ipaddress.IPv4Address(text.decode("ascii"))
    except ValueError:
        return text
    return IP_MASK


def _ipv6(match: re.Match[bytes]) -> bytes:
    text = match.group(0)
    try:
        ipaddress.IPv6Address(text.decode("ascii").rstrip("."))
    except ValueError:
        return text
    return IP_MASK


def scrub_bytes(raw: bytes) -> bytes:
    """`raw` with every e-mail address and IPv4/IPv6 address replaced by a fixed mask."""
    if b"@" in raw:
        raw = _EMAIL.sub(EMAIL_MASK, raw)
    if b"." in raw:
        raw = _IPV4.sub(_ipv4, raw)
    if b":" in raw:
        raw = _IPV6.sub(_ipv6, raw)
    return raw


def scrub_text(text: str) -> str:
    return scrub_bytes(text.encode("utf-8", errors="surrogatepass")).decode("utf-8", errors="replace")
