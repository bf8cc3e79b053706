"""The event archive's format: newline-delimited JSON, one event per line in the one schema, pseudonymous ids only.

Ingest writes it (through Firehose, or straight to S3 when Firehose is down), the trainer reads it, and the
erasure purge rewrites it. Pure code: no AWS here.

A line is the event as the stream carried it, never re-serialized where that can be avoided: ingest archives every
accepted event, so the line is made on the hot path and must cost far less than validating the record did.
- A record sent with `"pseudonymous": true` (the collector's and serve's) already holds the pseudonym the validator
  checked: its bytes are the line.
- A record with a raw id (a server-side producer) gets the pseudonym spliced in where the raw id was, marked
  `"pseudonymous": true` (its `false` turned to `true`, or the key added) so that no reader hashes it again. The
  splice is made only where it is certainly right: exactly one `"user_id"` in the bytes, followed by a colon and a
  string without escapes, and at most one `"pseudonymous"`, followed by a colon and `false` (validation already
  proved the record is one JSON object whose keys are all fields of the schema, so those occurrences are the keys).
- Anything else (escapes in the raw id, say) is serialized from the validated event.
The line parses back, through the same `Event` model, to the event ingest accepted.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator
from datetime import datetime

from personalization.events import Event

# The one top-level key whose value is replaced; the value must be a plain string (no escapes) to be spliced.
_USER_KEY = b'"user_id"'
_USER_VALUE = re.compile(rb'"user_id"\s*:\s*"[^"\\]*"')
_PSEUDONYMOUS_KEY = b'"pseudonymous"'
_NOT_PSEUDONYMOUS = re.compile(rb'"pseudonymous"\s*:\s*false')
_MARKED = b'"pseudonymous":true'
_COMPACT = b'"pseudonymous":false,"user_id":"'
_COMPACT_LEN = len(_COMPACT)
_BACKSLASH = ord("\\")
_LF, _CR = ord("\n"), ord("\r")
_COMPACT_MARKED = b'"pseudonymous":true,"user_id":"'
_GZIP_MAGIC = b"\x1f\x8b"
# A pseudonym as it appears anywhere in an archived object: HMAC-SHA256 hex.
_PSEUDONYM_TOKEN = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")

# Where archived events live in a bucket (CONTRACTS.md): events/dt=YYYY-MM-DD/... from Firehose's dynamic
# partitioning and from ingest's fallback objects, or events/YYYY/MM/DD/HH/... from moto's Firehose.
ARCHIVE_PREFIX = "events/"


def _serialized(event: Event) -> bytes:
    return event.model_copy(update={"pseudonymous": True}).to_json_bytes()


def archive_line(data: bytes, event: Event) -> bytes:
    """The archive's line (newline included) for an event ingest accepted from the record bytes `data`."""
    # JSON allows a line break between tokens, never inside a string: a blank in its place changes nothing.
    # (Looked for as byte values: `10 in data` is one memchr, `b"\n" in data` a substring search, 30 times slower.)
    if _LF in data or _CR in data:
        data = data.replace(b"\r", b" ").replace(b"\n", b" ")
    if event.pseudonymous:
        return data + b"\n"
    # The layout every producer built on `Event.to_json_bytes` sends (most raw-id records), in four C calls (each
    # call here costs more than the bytes it touches). The one `"user_id"` must be this one (were there a second, the
    # parser may have taken that one, and the raw id here would be archived). An escaped quote in the raw id would
    # end it early: then the general splice decides. A second `"pseudonymous"` is not looked for: at worst a line
    # would say false beside a pseudonym, which every reader takes as it is (it reads without the pepper).
    flag = data.find(_COMPACT)
    if flag >= 0 and data.count(_USER_KEY) == 1:
        end = data.find(b'"', flag + _COMPACT_LEN)
        if data[end - 1] != _BACKSLASH:
            return b"".join((data[:flag], _COMPACT_MARKED, event.user_id.encode(), data[end:], b"\n"))
    return (_spliced(data, event.user_id) or _serialized(event)) + b"\n"


def _spliced(data: bytes, pseudonym: str) -> bytes | None:
    """The record's bytes with the pseudonym in place of the raw id, marked pseudonymous; None where not certain.

    Found with bytes.find and anchored matches, never a regex scan: on the hot path, a scan of the record for a
    pattern with no literal start costs as much as the rest of the line.
    """
    key = data.find(_USER_KEY)
    if key < 0 or data.find(_USER_KEY, key + len(_USER_KEY)) >= 0:
        return None
    user = _USER_VALUE.match(data, key)
    if user is None:
        return None
    value = b'"user_id":"' + pseudonym.encode() + b'"'
    mark = data.find(_PSEUDONYMOUS_KEY)
    if mark < 0:
        return data[:key] + _MARKED + b"," + value + data[user.end() :]
    if data.find(_PSEUDONYMOUS_KEY, mark + len(_PSEUDONYMOUS_KEY)) >= 0:
        return None
    flag = _NOT_PSEUDONYMOUS.match(data, mark)
    if flag is None:
        return None
    if mark < key:
        return data[:mark] + _MARKED + data[flag.end() : key] + value + data[user.end() :]
    return data[:key] + value + data[user.end() : mark] + _MARKED + data[flag.end() :]


def day_of(event: Event) -> str:
    """The event's UTC date as the archive's keys carry it (YYYY-MM-DD)."""
    ts: datetime = event.ts
    return ts.strftime("%Y-%m-%d")


def object_body(lines: Iterable[bytes]) -> bytes:
    """An archive object as ingest writes one itself: the lines, gzip-compressed like Firehose's objects."""
    return gzip.compress(b"".join(lines), compresslevel=6, mtime=0)


def object_lines(body: bytes) -> Iterator[bytes]:
    """The lines of an archived object, gzip or not (told by its magic bytes, not by its key); blank lines skipped."""
    text = gzip.decompress(body) if body[:2] == _GZIP_MAGIC else body
    for line in text.splitlines(keepends=True):
        if line.strip():
            yield line if line.endswith(b"\n") else line + b"\n"


def is_gzip(body: bytes) -> bool:
    return body[:2] == _GZIP_MAGIC


def without_people(body: bytes, people: frozenset[str]) -> tuple[bytes, int] | None:
    """The object with every line that names one of `people` (pseudonyms) removed, and how many were removed.

    None when it names none of them: most objects, found by one scan for pseudonym-shaped tokens, and left
    untouched. A line is removed if the pseudonym appears anywhere in it, not only as its user_id: nothing of an
    erased person may stay. The body keeps its compression; an object whose every line goes comes back empty.
    """
    text = gzip.decompress(body) if is_gzip(body) else body
    named = {token.decode() for token in _PSEUDONYM_TOKEN.findall(text)} & people
    if not named:
        return None
    marks = [name.encode() for name in named]
    kept: list[bytes] = []
    removed = 0
    for line in text.splitlines(keepends=True):
        if any(mark in line for mark in marks):
            removed += 1
        else:
            kept.append(line)
    rest = b"".join(kept)
    return (object_body(kept) if is_gzip(body) and rest else rest), removed
