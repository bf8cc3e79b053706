"""Hypothesis strategies for event records that carry a person's raw id every way a careless or broken producer
might: under arbitrary keys (other spellings of user_id, a customer object), nested in context or lists, copied
into other fields, and encoded with every JSON encoder option and breakage (escaped non-ASCII and slashes,
escaped key letters, single quotes, cut short, double-encoded)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hypothesis import strategies as st

# "zq" never occurs in a pseudonym (hex) nor in any fixed part of a record, so finding it means a leak. The rest
# includes non-ASCII letters and "/" so that encoders escape it (ensure_ascii, "\/").
ID_ALPHABET = "abcdefghkmnpqrstuvwxy0123456789éüßø/-_.+ 中"
raw_ids = st.builds(lambda tail: f"zq{tail}", st.text(alphabet=ID_ALPHABET, min_size=6, max_size=14))

PERSON_KEYS = ("userId", "UserID", "user-id", "uid", "customer_id", "visitor", "client_id", "email", "member")
# Every name the event schema defines, at any level: a hostile key is never one, so every record is invalid.
KNOWN_KEYS = frozenset(
    {"event_id", "pseudonymous", "user_id", "type", "ts", "item_id", "category", "price", "quantity", "session_id"}
    | {"context", "device", "referrer", "country", "page", "consent", "analytics", "personalization"}
    | {"impression", "slot", "items", "experiment", "variant", "model_version", "rules_version", "schema_version"}
)
KEYS = st.one_of(st.sampled_from(PERSON_KEYS), st.text(min_size=1, max_size=12)).filter(lambda k: k not in KNOWN_KEYS)


def forms(raw_id: str) -> list[bytes]:
    """Every byte spelling of `raw_id` a stored item could hold: plain UTF-8 and JSON-escaped variants."""
    ascii_json = json.dumps(raw_id)[1:-1]
    spellings = {raw_id, ascii_json, ascii_json.replace("/", "\\/"), raw_id.replace("/", "\\/")}
    return [s.encode("utf-8") for s in spellings]


def leaked(raw_id: str, stored: bytes) -> bool:
    return any(form in stored for form in forms(raw_id))


@dataclass(frozen=True)
class HostileRecord:
    raw_id: str
    data: bytes
    # Whether the id is under the top-level user_id of a record that parses: its pseudonym must be filed.
    filed: bool


def _base(ts: datetime) -> dict[str, Any]:
    return {
        "event_id": "e-hostile",
        "type": "view_product",
        "ts": ts.isoformat(),
        "item_id": "i-1",
        "consent": {"analytics": True, "personalization": True},
    }


@st.composite
def _placed(draw: st.DrawFn, raw_id: str, ts: datetime) -> tuple[dict[str, Any], bool]:
    """An event object with the raw id placed one or more hostile ways; whether it is under user_id too."""
    body = _base(ts)
    as_user = draw(st.booleans())
    if as_user:
        body["user_id"] = draw(st.sampled_from([raw_id, raw_id, [raw_id], {"id": raw_id}]))
    wrapped: Any = raw_id
    for _ in range(draw(st.integers(0, 3))):  # nested in objects and lists under arbitrary keys
        wrapped = draw(st.sampled_from([lambda v: [v], lambda v: {draw(KEYS): v}]))(wrapped)
    where = draw(st.sampled_from(["top", "context", "customer", "consent", "impression"]))
    key = draw(KEYS)
    if where == "top":
        body[key] = wrapped
    elif where == "customer":
        body["customer"] = {"id": wrapped, "name": "x"}
    else:
        body.setdefault(where, {})
        body[where] = {**body[where], key: wrapped}
    # Copied into fields the schema knows (only in records invalid anyway: see docs/privacy.md on valid ones)
    if draw(st.booleans()):
        body["session_id"] = raw_id
    if draw(st.booleans()):
        body.setdefault("context", {})
        body["context"] = {**body["context"], "page": f"/account/{raw_id}/orders"}
    filed = as_user and isinstance(body["user_id"], str)
    return body, filed


def _escape_key_letters(text: str) -> str:
    """Some key letters written as \\u escapes, as a broken encoder might."""
    return re.sub(
        r'"(user_id|customer|context)"', lambda m: '"\\u00' + f"{ord(m.group(1)[0]):02x}" + m.group(1)[1:] + '"', text
    )


@st.composite
def hostile_records(draw: st.DrawFn, ts: datetime) -> HostileRecord:
    raw_id = draw(raw_ids)
    body, filed = draw(_placed(raw_id, ts))
    text = json.dumps(
        body, ensure_ascii=draw(st.booleans()), separators=draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    )
    encoding = draw(st.sampled_from(["plain", "slashes", "keys", "single", "cut", "double", "latin1"]))
    parses = True
    if encoding == "slashes":
        text = text.replace("/", "\\/")
    elif encoding == "keys":
        text = _escape_key_letters(text)
    elif encoding == "single":
        text, parses = text.replace('"', "'"), False
    elif encoding == "cut":
        text, parses = text[: draw(st.integers(1, max(1, len(text) - 1)))], False
    elif encoding == "double":
        text, parses = json.dumps(text), False  # a JSON string holding the event's JSON
    data = text.encode("utf-8")
    if encoding == "latin1":
        data, parses = text.encode("utf-8", errors="replace").replace(b"i-1", b"i-\xff"), False
    return HostileRecord(raw_id, data, filed and parses)
