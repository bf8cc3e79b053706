"""The stored form of a profile: compact, deterministic bytes.

DynamoDB bills a write unit for every started KB, and every batch rewrites the whole item, so the state is
JSON with short keys, sorted and without spaces (the same profile always encodes to the same bytes), then
zlib-compressed. Pure code: no AWS here, so the trainer and benchmarks can size profiles too.
"""

from __future__ import annotations

import json
import zlib
from operator import attrgetter
from typing import Any

from personalization.field_types import field_hints, from_plain, to_plain
from personalization.profile import STORED_FIELDS, Profile

# Per stored field, read off Profile's declarations: its key, its value's plain form (None: as it is) and
# default; and by key, its attribute and how to rebuild its value.
_HINTS = dict(field_hints(Profile))
_BLANK = Profile(user_id="")
_values = attrgetter(*(f.name for f in STORED_FIELDS))
_WRITE = tuple((f.metadata["key"], to_plain(_HINTS[f.name]), getattr(_BLANK, f.name)) for f in STORED_FIELDS)
_READ = {f.metadata["key"]: (f.name, from_plain(_HINTS[f.name])) for f in STORED_FIELDS}


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    # A field is written only when it differs from its default, so most profiles (consent given, never
    # withdrawn, no cart) cost no byte for most fields, and items written before a field existed decode to
    # the same state as if it had been written at its default.
    return {
        key: value if plain is None else plain(value)
        for value, (key, plain, default) in zip(_values(profile), _WRITE, strict=True)
        if value != default
    }


def profile_from_dict(user_id: str, data: dict[str, Any]) -> Profile:
    values: dict[str, Any] = {}
    for key, value in data.items():
        known = _READ.get(key)
        if known is not None:  # a key this version does not know (a newer one wrote it) is left alone
            name, build = known
            values[name] = value if build is None else build(value)
    return Profile(user_id, **values)


def encode(profile: Profile) -> bytes:
    text = json.dumps(profile_to_dict(profile), sort_keys=True, separators=(",", ":"))
    return zlib.compress(text.encode(), 9)


def decode(user_id: str, blob: bytes) -> Profile:
    return profile_from_dict(user_id, json.loads(zlib.decompress(blob)))
