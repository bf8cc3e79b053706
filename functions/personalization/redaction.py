"""The one redaction rule for what the quarantine keeps of a rejected record: no raw id of a person stays.

A record that parses as JSON is kept as the schema sees it:
- `user_id` becomes its pseudonym (HMAC of the id as decoded, so an erasure by the raw id finds it however the
  producer's encoder escaped it), or is kept when the record says it is one already (`"pseudonymous": true`, as
  our collector and serve send it: ingest may still quarantine such an event, e.g. as stale);
- every field the schema defines keeps its value (that is what one debugs), except a container where the schema
  has a scalar;
- every field the schema does not define (`userId`, `customer`, `context.user_id`, a key spelled with escapes,
  anything) keeps its key and loses its value: no rule can tell which unknown value names a person;
- wherever a raw id seen in the record (under `user_id`, or under an unknown key) was copied into another field,
  or into a key, it is replaced too.
The result is written back as ASCII JSON, so no escaped spelling of anything survives either.

A record that does not parse (cut short, not UTF-8, single quotes, double-encoded) keeps only its shape: key
names (letters and underscores) and punctuation; every value becomes `*`. Its user id is still read, in every
spelling a broken sender uses, so that its pseudonym can be filed for erasure.

The same raw ids are replaced in the rejection's message (`Redacted.text`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel

from personalization.events import MAX_RECORD_BYTES, PSEUDONYM_PATTERN, Event
from personalization.identity import pseudonymize

MASK = "<redacted>"
# A raw id shorter than this is replaced where a whole value equals it, not inside longer text: "42" must not
# turn every price and timestamp containing 42 into a mask.
MIN_COPY_LEN = 4
# A value under an unknown key not naming a person is taken for a possible id from this length on.
MIN_UNKNOWN_LEN = 6
# Deeper than any event: what lies below is masked whole (and the walk's recursion stays bounded).
MAX_DEPTH = 8
USER_KEY = "user_id"
FLAG_KEY = "pseudonymous"
# Unknown keys whose values name a person: their ids are learnt, so copies of them elsewhere are replaced too.
_PERSON_KEY = re.compile(r"user|customer|client|visitor|member|account|person|shopper|buyer|guest|login|email|uid")
_PSEUDONYM = re.compile(PSEUDONYM_PATTERN)

Schema = dict[str, "Schema"] | None  # an object's known fields, or None for a scalar leaf


def _schema_of(model: type[BaseModel]) -> dict[str, Schema]:
    """The known field tree of a pydantic model: nested models are objects, everything else a leaf."""
    fields: dict[str, Schema] = {}
    for name, info in model.model_fields.items():
        nested = [t for t in (info.annotation, *get_args(info.annotation)) if _is_model(t)]
        fields[name] = _schema_of(nested[0]) if nested else None
    return fields


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


EVENT_SCHEMA = _schema_of(Event)


@dataclass(frozen=True, slots=True)
class Redacted:
    raw: bytes
    # The pseudonym the record is filed under for erasure, when its user id could be read.
    user: str | None
    # Raw ids seen, each with what replaces it.
    replacements: tuple[tuple[str, str], ...] = ()

    def text(self, message: str) -> str:
        """`message` with every raw id seen in the record replaced."""
        return _replace_copies(message, self.replacements)


def redact(pepper: bytes, data: bytes) -> Redacted:
    """What the quarantine may keep of `data`, and the pseudonym it is filed under."""
    if len(data) <= MAX_RECORD_BYTES:
        try:
            document = json.loads(data.decode("utf-8"), parse_constant=str)
        except (ValueError, RecursionError):
            pass
        else:
            return _redact_document(pepper, document)
    return _redact_broken(pepper, data[:MAX_RECORD_BYTES])


# ---------------------------------------------------------------------------------------------- parsed JSON


def _scalar_leaves(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string or integer inside `value` as text (the forms an id takes)."""
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
    elif depth < MAX_DEPTH and isinstance(value, dict):
        for item in value.values():
            yield from _scalar_leaves(item, depth + 1)
    elif depth < MAX_DEPTH and isinstance(value, list):
        for item in value:
            yield from _scalar_leaves(item, depth + 1)


def _is_person_key(key: str) -> bool:
    return _PERSON_KEY.search(re.sub(r"[^a-z]", "", key.lower())) is not None


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _walk(value: Any, schema: Schema, learnt: list[str], depth: int) -> Any:
    if schema is None:  # a leaf: scalars (and lists of them: impression items) are kept, containers are not
        if isinstance(value, list) and all(_scalar(item) for item in value):
            return value
        return value if _scalar(value) else MASK
    if not isinstance(value, dict) or depth >= MAX_DEPTH:
        return value if _scalar(value) else MASK
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in schema:
            out[key] = _walk(item, schema[key], learnt, depth + 1)
        else:
            # Any unknown value may be an id (under "0" as well as "customerId"); copies of it elsewhere go too.
            # Short values only under keys that name a person: "mobile" copied into device is no one's id.
            person = _is_person_key(key)
            learnt.extend(leaf for leaf in _scalar_leaves(item) if person or len(leaf) >= MIN_UNKNOWN_LEN)
            out[key] = MASK
    return out


def _user(pepper: bytes, document: dict[str, Any]) -> tuple[Any, str | None, list[tuple[str, str]]]:
    """The redacted user_id value, the pseudonym to file under, and the raw ids it held with their replacement."""
    value = document[USER_KEY]
    if isinstance(value, str) and document.get(FLAG_KEY) is True and _PSEUDONYM.fullmatch(value):
        return value, value, []  # already the pseudonym: hashing it again would file it under nobody
    leaves = list(_scalar_leaves(value))
    if isinstance(value, bool) or not leaves:
        return value if not isinstance(value, dict | list) else MASK, None, []
    if len(leaves) == 1:  # "id", 541312140, ["id"], {"id": "id"}: one id, whatever wraps it
        pseudonym = pseudonymize(pepper, leaves[0])
        return pseudonym, pseudonym, [(leaves[0], pseudonym)]
    return MASK, None, [(leaf, MASK) for leaf in leaves]


def _redact_document(pepper: bytes, document: Any) -> Redacted:
    learnt: list[str] = []
    user: str | None = None
    replacements: list[tuple[str, str]] = []
    if isinstance(document, dict):
        kept = _walk(document, EVENT_SCHEMA, learnt, 0)
        if USER_KEY in document:
            kept[USER_KEY], user, replacements = _user(pepper, document)
    else:  # not an event object at all: nothing of it is known
        learnt.extend(_scalar_leaves(document))
        kept = MASK
    replacements += [(raw, MASK) for raw in learnt]
    replacements = _longest_first(replacements)
    kept = _replace_everywhere(kept, replacements, user)
    raw = json.dumps(kept, ensure_ascii=True, separators=(",", ":")).encode()
    return Redacted(raw, user, tuple(replacements))


def _longest_first(replacements: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # A raw id that contains another is replaced first, so no part of it is left behind.
    unique = dict(reversed(replacements))
    return sorted(unique.items(), key=lambda pair: -len(pair[0]))


def _replace_copies(text: str, replacements: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    for raw, replacement in replacements:
        if len(raw) >= MIN_COPY_LEN:
            text = text.replace(raw, replacement)
        elif text == raw:
            return replacement
    return text


def _replace_everywhere(value: Any, replacements: list[tuple[str, str]], keep: str | None) -> Any:
    if not replacements:
        return value
    if isinstance(value, str):
        return value if value == keep else _replace_copies(value, replacements)
    if isinstance(value, int | float) and not isinstance(value, bool):
        replaced = _replace_copies(str(value), replacements)
        return value if replaced == str(value) else MASK
    if isinstance(value, list):
        return [_replace_everywhere(item, replacements, keep) for item in value]
    if isinstance(value, dict):
        return {
            _replace_copies(key, replacements): _replace_everywhere(item, replacements, keep)
            for key, item in value.items()
        }
    return value


# ---------------------------------------------------------------------------------------------- broken bytes


def _spelled(word: str) -> bytes:
    """A pattern for `word` with any letter possibly written as a JSON \\u escape (as a broken encoder may)."""
    return b"".join(rb"(?:%s|\\u00%x)" % (re.escape(ch).encode(), ord(ch)) for ch in word)


# A user id key in broken bytes, quoted every way broken senders quote it: "user_id", 'user_id', bare, \"user_id\"
# inside a double-encoded string, any letter \u-escaped.
_USER_ID_KEY = re.compile(rb"""\\*["']?""" + _spelled(USER_KEY) + rb"""\\*["']?\s*:\s*""", re.IGNORECASE)
_FLAG_TRUE = re.compile(rb"""["']?""" + _spelled(FLAG_KEY) + rb"""\\*["']?\s*:\s*true""", re.IGNORECASE)
_SCALAR = re.compile(
    rb'"(?:[^"\\]|\\.)*"?'  # a JSON string, maybe cut short
    rb"|'[^']*'?"  # single-quoted
    rb'|\\+"(?:[^"\\]|\\+[^"\\])*(?:\\+")?'  # a string inside a double-encoded string: \"...\"
    rb"|[-+0-9.eE]+"  # a number
)
# Tokens of broken JSON: a string (maybe cut short), or a run of non-structural bytes; then whether a key
# separator follows.
_TOKEN = re.compile(rb"""("(?:[^"\\]|\\.)*"?|'[^']*'?|[^\s"'{}\[\]:,]+)(\s*:)?""", re.DOTALL)
_PLAIN_KEY = re.compile(rb"""["']?[A-Za-z_]{1,40}["']?""")


def _unescaped(text: bytes) -> str:
    """The id as the sender meant it: JSON escapes decoded (\\u00e9, \\/), once per level of encoding."""
    backslashes = len(text) - len(text.lstrip(b"\\"))
    quoted = text[backslashes : backslashes + 1] in (b'"', b"'")
    value = text.strip(b"\\").strip(b"\"'").rstrip(b"\\") if quoted else text
    decoded = value.decode("utf-8", errors="replace")
    # A string inside a double-encoded string (\\"...\\") carries its escapes escaped once more per level.
    for _ in range(1 + (backslashes + 1) // 2 if quoted else 0):
        if "\\" not in decoded:
            break
        try:
            decoded = json.loads(f'"{decoded}"')
        except ValueError:  # cut short inside an escape, or not JSON's escapes: decode what can be
            decoded = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), decoded)
            decoded = re.sub(r"\\(.)", r"\1", decoded)
    return decoded


def _broken_user(pepper: bytes, data: bytes) -> tuple[str | None, str | None]:
    """The pseudonym of the first readable user id in broken bytes, and the raw id itself."""
    for key in _USER_ID_KEY.finditer(data):
        scalar = _SCALAR.match(data, key.end())
        if scalar is None or scalar.group(0) in (b"null", b"true", b"false"):
            continue
        raw = _unescaped(scalar.group(0))
        if not raw:
            continue
        if _PSEUDONYM.fullmatch(raw) and _FLAG_TRUE.search(data):
            return raw, None
        return pseudonymize(pepper, raw), raw
    return None, None


def _redact_broken(pepper: bytes, data: bytes) -> Redacted:
    user, raw_id = _broken_user(pepper, data)

    def mask(token: re.Match[bytes]) -> bytes:
        text, separator = token.group(1), token.group(2)
        if separator is not None and _PLAIN_KEY.fullmatch(text):
            return token.group(0)  # a key name: the record's shape
        return b"*" + (separator or b"")

    masked = _TOKEN.sub(mask, data)
    if raw_id is not None and len(raw_id) >= MIN_COPY_LEN:
        # A key name spelled like the raw id (letters only) is not kept either.
        masked = masked.replace(raw_id.encode("utf-8", errors="replace"), b"*")
    replacements = ((raw_id, user or MASK),) if raw_id else ()
    return Redacted(masked, user, replacements)
