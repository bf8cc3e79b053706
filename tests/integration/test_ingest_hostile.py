"""Hostile input: 10,000 bad records mixed with 1,000 real events, through the real handler and stream.

The records go into the loopback Kinesis stream with put_records (so each one's shard and sequence number is
known), the event-source poller delivers them to the real ingest handler in the template's batch size, and
then every record's fate is checked against what the generator meant it to be:
- a bad record (analytics consent given) is in quarantine under its own "shard#seq" key, with the reason a
  reader of the quarantine would expect for that defect;
- a good record is in its user's profile: every stored profile equals an offline fold of exactly that
  user's good events, so a bad record applied by mistake, or a good one lost, shows up as a difference;
- a record without analytics consent (the second test: a few hundred, valid or not, among real events) is
  dropped: no quarantine entry, no profile change, no trace of it;
- nothing crashes and nothing is reported failed, so no record ever holds back a shard;
- no raw user id appears in anything stored.

Expected reasons are written down here from the defect, never computed by the parser under test.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import pytest

from infra.local.poller import KinesisPoller, PollStats
from infra.local.stack import LocalStack
from ingest.wiring import ingest_deps
from personalization.events import MAX_ID_LEN, MAX_RECORD_BYTES, MAX_TEXT_LEN, Event, Reason
from personalization.identity import pseudonymize
from personalization.profile import PositionedEvent, Profile, fold
from store.quarantine import RAW_BYTES_KEPT
from tests.helpers.ingest import Ingest, real_events, stored_text

SEED = 20_261_124
BAD_COUNT = 10_000
GOOD_COUNT = 1_000
NO_CONSENT_COUNT = 300
# A few good events are padded with whitespace to exactly the size limit: the limit itself is allowed.
PADDED_GOOD = 10

PUT_RECORDS_LIMIT = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024  # Kinesis refuses a larger put_records request (and so does moto)
KINESIS_MAX_RECORD_BYTES = 1_000_000  # 1 MiB with the partition key; stay clearly below it

# Raw user ids made up here carry a pattern no stored byte should ever match; the real ones are numeric.
SYNTHETIC_ID = re.compile(r"ruid\d{5}z")
NO_CONSENT_MARK = re.compile(r"ncmark\d{5}z")
# A numeric id counts as leaked when it stands alone, not when its digits happen to sit inside a hex
# pseudonym or a 56-digit sequence number.
DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\d+(?![0-9A-Za-z])")

Fate = Literal["apply", "quarantine", "drop"]


@dataclass(frozen=True, slots=True)
class Record:
    kind: str
    data: bytes
    partition_key: str
    fate: Fate
    reason: Reason | None = None
    event: Event | None = None  # good records only, with the raw user id


@dataclass(frozen=True, slots=True)
class Placed:
    record: Record
    shard: str
    seq: str

    @property
    def pk(self) -> str:
        return f"{self.shard}#{self.seq}"


# -- the generator ---------------------------------------------------------------------------------------

CATEGORIES = ["electronics.smartphone", "appliances.kitchen.kettle", "apparel.shoes", "électronique", "cat:2053"]
KNOWN_TYPES = ["view_product", "add_to_cart", "remove_from_cart", "purchase"]


def _offset(rng: random.Random) -> timezone:
    return timezone(timedelta(minutes=rng.choice([0, 0, 60, 330, 540, -300, -720, 840])))


def _iso(moment: datetime, rng: random.Random) -> str:
    text = moment.astimezone(_offset(rng)).isoformat()
    return text.replace("+00:00", "Z") if rng.random() < 0.5 else text


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, leaf = path.split(".")
    target = body
    for name in parents:
        target = target.setdefault(name, {})
    target[leaf] = value
    return body


def _delete(body: dict[str, Any], path: str) -> dict[str, Any]:
    *parents, leaf = path.split(".")
    target = body
    for name in parents:
        target = target[name]
    target.pop(leaf, None)
    return body


class Hostile:
    """Seeded bad records, one defect each, with the reason that defect deserves."""

    def __init__(self, rng: random.Random, now: datetime, retention: timedelta, good_users: list[str]) -> None:
        self.rng = rng
        self.now = now
        self.retention = retention
        self.good_users = good_users
        self.serial = 0
        self.kinds: dict[str, Callable[[], tuple[bytes, Reason]]] = {
            "truncated_json": self.truncated_json,
            "wrong_type": self.wrong_type,
            "unknown_type": self.unknown_type,
            "missing_field": self.missing_field,
            "huge_string": self.huge_string,
            "too_large": self.too_large,
            "deep_nesting": self.deep_nesting,
            "non_finite_token": self.non_finite_token,
            "absurd_number": self.absurd_number,
            "future_ts": self.future_ts,
            "stale_ts": self.stale_ts,
            "invalid_utf8": self.invalid_utf8,
            "empty": self.empty,
            "not_object": self.not_object,
            "bad_version": self.bad_version,
        }

    # The raw id a record names: half the time a real user's (so a misapplied record would change a profile
    # this test checks), otherwise a made-up one that must never get a profile.
    def user(self) -> str:
        if self.rng.random() < 0.5:
            return self.rng.choice(self.good_users)
        return f"ruid{self.rng.randrange(100_000):05d}z"

    def body(self, user: str | None = None, mark: str = "") -> dict[str, Any]:
        """A valid event, as a tracker would send it; each kind then breaks exactly one thing."""
        rng = self.rng
        self.serial += 1
        body: dict[str, Any] = {
            "event_id": f"bad-{self.serial}{mark}",
            "user_id": user if user is not None else self.user(),
            "type": rng.choice(KNOWN_TYPES),
            "ts": _iso(self.now - timedelta(seconds=rng.uniform(0, 3600)), rng),
            "item_id": f"item{rng.randrange(10**6)}{mark}",
            "consent": {"analytics": True, "personalization": rng.random() < 0.8},
        }
        if rng.random() < 0.7:
            body["category"] = rng.choice(CATEGORIES) + mark
        if rng.random() < 0.6:
            body["price"] = round(rng.uniform(0.5, 900), 2)
        if rng.random() < 0.5:
            body["quantity"] = rng.randint(1, 4)
        if rng.random() < 0.5:
            body["session_id"] = f"s-{rng.randrange(10**6)}"
        if rng.random() < 0.5:
            body["context"] = {"device": rng.choice(["mobile", "desktop"]), "country": "PL", "page": f"/p/1{mark}"}
        if rng.random() < 0.3:
            body["schema_version"] = 1
        keys = list(body)
        rng.shuffle(keys)
        return {key: body[key] for key in keys}

    def encode(self, body: Any, *, ascii_only: bool = False) -> bytes:
        separators = self.rng.choice([(",", ":"), (", ", ": ")])
        ensure_ascii = ascii_only or self.rng.random() < 0.6
        return json.dumps(body, separators=separators, ensure_ascii=ensure_ascii).encode()

    def with_raw(self, body: dict[str, Any], path: str, raw: str) -> bytes:
        """The body with one value replaced by JSON text that json.dumps cannot produce (tokens, nesting)."""
        placeholder = "__RAW_VALUE__"
        text = self.encode(_set(body, path, placeholder), ascii_only=True)
        return text.replace(f'"{placeholder}"'.encode(), raw.encode(), 1)

    # -- the kinds ---------------------------------------------------------------------------------------

    def truncated_json(self) -> tuple[bytes, Reason]:
        data = self.encode(self.body(), ascii_only=True)
        variant = self.rng.randrange(9)
        if variant <= 2:
            broken = data[: self.rng.randrange(1, len(data))]
        elif variant == 3:
            broken = data[:-1]
        elif variant == 4:
            broken = data[:-1] + b",}"
        elif variant == 5:
            broken = data.replace(b'"', b"'")
        elif variant == 6:
            broken = data + data
        elif variant == 7:
            broken = re.sub(rb'"(\w+)":', rb"\1:", data)
        else:
            broken = self.rng.choice([b"\xef\xbb\xbf", b""]) + data + self.rng.choice([b"\x00", b"}", b" x"])
        return broken, Reason.NOT_JSON

    # (path, value), each invalid_field. Any value in `type` that names no event type is unknown_type instead.
    WRONG_TYPES: tuple[tuple[str, Any], ...] = (
        ("price", "abc"),
        ("price", ""),
        ("price", "12,50"),
        ("price", "$5"),
        ("price", [12.5]),
        ("price", {"amount": 12.5}),
        ("quantity", "x"),
        ("quantity", "two"),
        ("quantity", 1.5),
        ("quantity", [2]),
        ("ts", "yesterday"),
        ("ts", ""),
        ("ts", "2026-13-45T00:00:00Z"),
        ("ts", "24/11/2026 10:00"),
        ("ts", [2026, 11, 24]),
        ("ts", {"iso": "2026-11-24T10:00:00Z"}),
        # Representable in its own offset, out of datetime's range in UTC.
        ("ts", "0001-01-01T00:00:00+05:00"),
        ("ts", "9999-12-31T23:59:59-05:00"),
        ("event_id", 5),
        ("event_id", None),
        ("event_id", ["e-1"]),
        ("event_id", ""),
        ("user_id", None),
        ("user_id", ""),
        ("item_id", 44600062),
        ("item_id", ["i-1"]),
        ("item_id", None),
        ("category", 5),
        ("category", {"name": "shoes"}),
        ("session_id", 7),
        ("context", "mobile"),
        ("context", ["mobile"]),
        ("context.device", 5),
        ("context.country", ["PL"]),
        ("context.surprise", "x"),
        ("consent.personalization", "maybe"),
        ("consent.personalization", [True]),
        ("surprise", 1),
    )
    WRONG_EVENT_TYPES: tuple[Any, ...] = (5, 0, 3.14, None, True, ["view_product"], {"name": "view_product"})

    def wrong_type(self) -> tuple[bytes, Reason]:
        body = self.body()
        roll = self.rng.random()
        if roll < 0.15:
            return self.encode(_set(body, "type", self.rng.choice(self.WRONG_EVENT_TYPES))), Reason.UNKNOWN_TYPE
        if roll < 0.25:
            # An id that is not a string: numbers get redacted like strings, containers must be too.
            user = body["user_id"]
            value = self.rng.choice([[user], {"id": user}, *([int(user)] if user.isdigit() else [])])
            return self.encode(_set(body, "user_id", value)), Reason.INVALID_FIELD
        path, value = self.rng.choice(self.WRONG_TYPES)
        return self.encode(_set(body, path, value)), Reason.INVALID_FIELD

    def unknown_type(self) -> tuple[bytes, Reason]:
        rng = self.rng
        name = rng.choice(
            [
                "teleport",
                "VIEW_PRODUCT",
                "View_Product",
                "view",
                "cart",
                "purchase ",
                " purchase",
                "add-to-cart",
                "addToCart",
                "",
                "null",
                "page-view",
                "vïew_product",
                "view_product\u200b",
                "".join(rng.choices(string.ascii_lowercase + "_", k=rng.randint(1, 40))),
            ]
        )
        return self.encode(_set(self.body(), "type", name)), Reason.UNKNOWN_TYPE

    REQUIRED = ("event_id", "user_id", "type", "ts", "consent.personalization")

    def missing_field(self) -> tuple[bytes, Reason]:
        body = self.body()
        if self.rng.random() < 0.15:
            # item_id is required only for item events: a rule across fields, reported as invalid (like an
            # explicit null), since the schema itself lets it be absent.
            return self.encode(_delete(body, "item_id")), Reason.INVALID_FIELD
        for path in self.rng.sample(self.REQUIRED, self.rng.randint(1, 3)):
            _delete(body, path)
        return self.encode(body), Reason.MISSING_FIELD

    HUGE_FIELDS: tuple[tuple[str, int], ...] = (
        ("event_id", MAX_ID_LEN),
        ("user_id", MAX_ID_LEN),
        ("item_id", MAX_ID_LEN),
        ("session_id", MAX_ID_LEN),
        ("category", MAX_TEXT_LEN),
        ("context.device", MAX_TEXT_LEN),
        ("context.page", MAX_TEXT_LEN),
        ("context.referrer", MAX_TEXT_LEN),
        ("context.country", 8),
    )

    def huge_string(self) -> tuple[bytes, Reason]:
        rng = self.rng
        path, limit = rng.choice(self.HUGE_FIELDS)
        body = self.body()
        length = rng.choice([limit + 1, limit + rng.randint(2, 200), rng.randint(limit + 1, 30_000)])
        if path == "user_id":
            # Still a raw id, so it carries the pattern the leak check looks for.
            value = f"ruid{rng.randrange(100_000):05d}z" + "u" * (length - 10)
        else:
            value = rng.choice(["a", "é", "ж", "漢", "-"]) * length
        data = self.encode(_set(body, path, value))
        while len(data) > MAX_RECORD_BYTES:  # a multi-byte character or escape took it over: trim, stay over limit
            value = value[: max(limit + 1, len(value) * 3 // 4)]
            data = self.encode(_set(body, path, value), ascii_only=False)
        return data, Reason.INVALID_FIELD

    def too_large(self) -> tuple[bytes, Reason]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.95:
            size = MAX_RECORD_BYTES + rng.choice([1, 2, rng.randint(3, 4096)])
        elif roll < 0.99:
            size = rng.randint(64 * 1024, 300 * 1024)
        else:
            # Larger than a DynamoDB item may be: the quarantine must still be able to keep it.
            size = rng.randint(400 * 1024, KINESIS_MAX_RECORD_BYTES - 2000)
        data = self.encode(self.body(), ascii_only=True)
        variant = rng.randrange(4)
        if variant == 0:  # a valid event, padded with whitespace: only its size is wrong
            padded = data[:1] + b" " * (size - len(data)) + data[1:]
        elif variant == 1:  # a valid event with an enormous page
            padded = self.with_raw(self.body(), "context.page", json.dumps("p" * size))
        elif variant == 2:  # an enormous list in a field
            padded = self.with_raw(self.body(), "tags", json.dumps(["t"] * (size // 5)))
        else:  # not even JSON
            padded = bytes(rng.randrange(256) for _ in range(64)) * (size // 64 + 1)
        return padded[: max(size, MAX_RECORD_BYTES + 1)] if variant == 3 else padded, Reason.TOO_LARGE

    def deep_nesting(self) -> tuple[bytes, Reason]:
        rng = self.rng
        room = MAX_RECORD_BYTES - 600
        variant = rng.randrange(5)
        if variant == 0:
            depth = rng.randint(2_000, room // 2)
            return b"[" * depth + b"]" * depth, Reason.NOT_JSON
        if variant == 1:
            depth = rng.randint(2_000, room)
            return b"[" * depth, Reason.NOT_JSON
        if variant == 2:
            depth = rng.randint(2_000, room // 6)
            return b'{"a":' * depth + b"1" + b"}" * depth, Reason.NOT_JSON
        depth = rng.randint(2_000, room // 6)
        nest = "[" * depth + "]" * depth if variant == 3 else '{"a":' * depth + "1" + "}" * depth
        path = rng.choice(["context.page", "extra", "price", "category"])
        return self.with_raw(self.body(), path, nest), Reason.NOT_JSON

    def non_finite_token(self) -> tuple[bytes, Reason]:
        rng = self.rng
        token = rng.choice(["NaN", "Infinity", "-Infinity", "nan", "inf", "-NaN"])
        path = rng.choice(["price", "quantity", "ts", "category", "event_id", "score", "context.page", "extra"])
        raw = f"[1, {token}]" if path == "extra" else token
        return self.with_raw(self.body(), path, raw), Reason.NOT_JSON

    def absurd_number(self) -> tuple[bytes, Reason]:
        rng = self.rng
        body = self.body()
        if rng.random() < 0.7:
            price = rng.choice(
                ["-0.01", "-1", str(-rng.uniform(1, 1e6)), "1000000.01", "1e7", "1e12", "1e308", "1e999"]
            )
            return self.with_raw(body, "price", price), Reason.INVALID_FIELD
        quantity = rng.choice(["0", "-1", "-5", "10001", "1000000000000", "1e999"])
        return self.with_raw(body, "quantity", quantity), Reason.INVALID_FIELD

    def future_ts(self) -> tuple[bytes, Reason]:
        rng = self.rng
        # At least 15 minutes ahead of now: the handler's clock reads later than this one, never earlier.
        ahead = rng.choice(
            [
                timedelta(minutes=rng.uniform(15, 60)),
                timedelta(days=rng.uniform(1, 365)),
                timedelta(days=rng.uniform(365, 3650)),
            ]
        )
        moment = datetime(9999, 12, 31, 23, 59, tzinfo=UTC) if rng.random() < 0.05 else self.now + ahead
        text = moment.isoformat() if moment.year == 9999 else _iso(moment, rng)
        return self.encode(_set(self.body(), "ts", text)), Reason.FUTURE_TIMESTAMP

    def stale_ts(self) -> tuple[bytes, Reason]:
        rng = self.rng
        ago = self.retention + rng.choice([timedelta(days=rng.uniform(1, 5)), timedelta(days=rng.uniform(5, 365 * 30))])
        roll = rng.random()
        if roll < 0.05:
            text = "0001-01-01T00:00:00Z"
        elif roll < 0.1:
            text = "1970-01-01T00:00:00+00:00"
        else:
            text = _iso(self.now - ago, rng)
        return self.encode(_set(self.body(), "ts", text)), Reason.STALE_TIMESTAMP

    INVALID_SEQUENCES = (
        b"\xff",
        b"\xfe\xff",
        b"\xc3\x28",
        b"\xa0\xa1",
        b"\xe2\x28\xa1",
        b"\xf0\x28\x8c\xbc",
        b"\xc0\xaf",  # overlong "/"
        b"\xed\xa0\x80",  # a UTF-16 surrogate, encoded
        b"\xf8\x88\x80\x80\x80",  # a five-byte sequence
        b"\xe2\x82",  # cut short
    )

    def invalid_utf8(self) -> tuple[bytes, Reason]:
        rng = self.rng
        body = self.body()
        variant = rng.randrange(3)
        if variant == 0:  # inside a string value
            field = rng.choice(["item_id", "event_id", "type"])
            text = self.encode(_set(body, field, "__BAD__"), ascii_only=True)
            bad = rng.choice(self.INVALID_SEQUENCES)
            return text.replace(b"__BAD__", b"x" + bad + b"y", 1), Reason.NOT_UTF8
        if variant == 1:  # a Latin-1 encoder
            _set(body, "category", rng.choice(["électronique", "café", "straße", "Ærø"]))
            return json.dumps(body, ensure_ascii=False).encode("latin-1"), Reason.NOT_UTF8
        text = self.encode(body, ascii_only=True)
        cut = rng.randrange(1, len(text))
        return text[:cut] + rng.choice(self.INVALID_SEQUENCES) + text[cut:], Reason.NOT_UTF8

    def empty(self) -> tuple[bytes, Reason]:
        return b"", Reason.EMPTY

    def not_object(self) -> tuple[bytes, Reason]:
        rng = self.rng
        body = self.body()
        value = rng.choice(
            [
                [],
                [body],
                [body, body],
                json.dumps(body),  # double-encoded: a JSON string holding an event
                42,
                -1.5e3,
                None,
                True,
                False,
                "hello",
                [1, 2, 3],
            ]
        )
        return self.encode(value), Reason.NOT_OBJECT

    def bad_version(self) -> tuple[bytes, Reason]:
        value = self.rng.choice([0, 2, 3, 99, -1, "2", "1", "v1", None, 1.5, [1], {"v": 1}])
        return self.encode(_set(self.body(), "schema_version", value)), Reason.UNSUPPORTED_VERSION

    def bad(self, count: int) -> Iterator[tuple[str, bytes, Reason]]:
        names = list(self.kinds)
        for index in range(count):
            kind = names[index % len(names)]
            data, reason = self.kinds[kind]()
            yield kind, data, reason

    # -- consent-less records: malformed or not, they must leave no trace ----------------------------------

    REFUSED_CONSENTS: tuple[Any, ...] = (
        {"analytics": False, "personalization": True},
        {"analytics": False, "personalization": False},
        {"personalization": True},
        {"analytics": None, "personalization": True},
        # Not the JSON literal true: consent is never inferred from a truthy-looking value.
        {"analytics": "yes", "personalization": True},
        {"analytics": "true", "personalization": True},
        {"analytics": 1, "personalization": True},
        None,
        "all",
        [],
    )

    # Valid events twice as often: a consent-less record that would otherwise be applied is the common case.
    NO_CONSENT_VARIANTS = (
        "valid",
        "valid",
        "unknown_type",
        "wrong_type",
        "missing",
        "huge",
        "future",
        "stale",
        "version",
        "non_finite",
        "too_large",
    )

    def no_consent(self, count: int) -> Iterator[tuple[str, bytes]]:
        rng = self.rng
        for index in range(count):
            mark = f"ncmark{index:05d}z"
            body = self.body(mark=mark)
            consent = rng.choice(self.REFUSED_CONSENTS)
            if consent is None and rng.random() < 0.5:
                del body["consent"]
            else:
                body["consent"] = consent
            variant = rng.choice(self.NO_CONSENT_VARIANTS)
            if variant == "unknown_type":
                body["type"] = "teleport"
            elif variant == "wrong_type":
                body["price"] = "abc"
            elif variant == "missing":
                del body["event_id"]
            elif variant == "huge":
                body["category"] = mark * 100
            elif variant == "future":
                body["ts"] = (self.now + timedelta(days=3)).isoformat()
            elif variant == "stale":
                body["ts"] = (self.now - self.retention - timedelta(days=3)).isoformat()
            elif variant == "version":
                body["schema_version"] = 7
            if variant == "non_finite":
                data = self.with_raw(body, "price", "NaN")
            elif variant == "too_large":
                data = self.with_raw(body, "context.page", json.dumps(mark * (MAX_RECORD_BYTES // len(mark) + 10)))
            else:
                data = self.encode(body)
            yield f"no_consent_{variant}", data


# -- running records through the stack and the handler ---------------------------------------------------


def put_all(kinesis: Any, stream: str, records: list[Record]) -> list[Placed]:
    """put_records in chunks of at most 500 records and 5 MiB, keeping every record's shard and sequence."""
    placed: list[Placed] = []
    chunk: list[Record] = []
    size = 0

    def flush() -> None:
        pending = list(chunk)
        for _attempt in range(5):
            response = kinesis.put_records(
                StreamName=stream, Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in pending]
            )
            retry = []
            for record, result in zip(pending, response["Records"], strict=True):
                if "ErrorCode" in result:
                    retry.append(record)
                else:
                    placed.append(Placed(record, result["ShardId"], result["SequenceNumber"]))
            if not retry:
                return
            pending = retry
        raise AssertionError(f"{len(pending)} records could not be put")

    for record in records:
        record_size = len(record.data) + len(record.partition_key)
        if chunk and (len(chunk) == PUT_RECORDS_LIMIT or size + record_size > PUT_RECORDS_MAX_BYTES):
            flush()
            chunk, size = [], 0
        chunk.append(record)
        size += record_size
    if chunk:
        flush()
    return placed


def padded_to_limit(data: bytes) -> bytes:
    return data[:1] + b" " * (MAX_RECORD_BYTES - len(data)) + data[1:]


class Mix:
    """Real events plus generated records, shuffled, each with the partition key a tracker would give it."""

    def __init__(self, pepper: bytes, retention: timedelta) -> None:
        self.rng = random.Random(SEED)
        self.pepper = pepper
        self.good_events = real_events(GOOD_COUNT)
        self.good_users = sorted({event.user_id for event in self.good_events})
        self.hostile = Hostile(self.rng, datetime.now(UTC), retention, self.good_users)

    def key(self) -> str:
        # Half of the generated records share a real user's shard and partition key, so they sit between
        # that user's good events in the same batches.
        if self.rng.random() < 0.5:
            return pseudonymize(self.pepper, self.rng.choice(self.good_users))
        return f"junk-{self.rng.randrange(10**9)}"

    def good(self) -> list[Record]:
        padded = set(self.rng.sample(range(len(self.good_events)), PADDED_GOOD))
        return [
            Record(
                "good",
                padded_to_limit(event.to_json_bytes()) if index in padded else event.to_json_bytes(),
                pseudonymize(self.pepper, event.user_id),
                "apply",
                event=event,
            )
            for index, event in enumerate(self.good_events)
        ]

    def bad(self, count: int) -> list[Record]:
        return [Record(kind, data, self.key(), "quarantine", reason) for kind, data, reason in self.hostile.bad(count)]

    def no_consent(self, count: int) -> list[Record]:
        return [Record(kind, data, self.key(), "drop") for kind, data in self.hostile.no_consent(count)]

    def shuffled(self, *groups: list[Record]) -> list[Record]:
        records = [record for group in groups for record in group]
        self.rng.shuffle(records)
        return records


@dataclass
class Delivery:
    placed: list[Placed]
    stats: PollStats
    problems: list[str]


def deliver(ingest: Ingest, records: list[Record]) -> Delivery:
    """Put the records into the stream, then let the poller hand them to the real handler until it is empty."""
    placed = put_all(ingest.stack.client("kinesis"), ingest.stream, records)
    assert len(placed) == len(records)
    kinds = {p.pk: p.record.kind for p in placed}
    problems: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            response = ingest.handler(event, context)
        except Exception as exc:
            problems.append(f"handler raised {exc!r}")
            raise
        # A batch holds one shard's records; sequence numbers repeat across shards.
        shard = event["Records"][0]["eventID"].split(":", 1)[0] if event["Records"] else ""
        for failure in response.get("batchItemFailures", []):
            pk = f"{shard}#{failure['itemIdentifier']}"
            problems.append(f"reported failed: {kinds.get(pk, pk)}")
        return response

    # The template's batch size; no retries, since a record that fails once is already the bug looked for.
    batch_size = int(str(ingest.stack.template.parameter_values()["IngestBatchSize"]))
    poller = KinesisPoller(ingest.stack.client("kinesis"), ingest.stream, handler, batch_size, max_retries=0)
    try:
        stats = poller.drain()
    except RuntimeError as exc:
        pytest.fail(f"{exc}; problems: {Counter(problems).most_common(10)}")
    return Delivery(placed, stats, problems)


def get_quarantined(ingest: Ingest, pks: list[str]) -> dict[str, dict[str, Any]]:
    """Quarantine items by key. BatchGetItem, not Scan: moto re-reads the whole table for every 1 MB page."""
    dynamodb = ingest.stack.client("dynamodb")
    table = ingest.env["QUARANTINE_TABLE"]
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(pks), 100):
        request: Any = {table: {"Keys": [{"pk": {"S": pk}} for pk in pks[start : start + 100]]}}
        while request:
            response = dynamodb.batch_get_item(RequestItems=request)
            found.update((item["pk"]["S"], item) for item in response["Responses"].get(table, []))
            request = response.get("UnprocessedKeys") or None
    return found


def quarantine_count(ingest: Ingest) -> int:
    # Live in moto (DynamoDB itself refreshes it only every few hours).
    table = ingest.stack.client("dynamodb").describe_table(TableName=ingest.env["QUARANTINE_TABLE"])["Table"]
    return int(table["ItemCount"])


def first_difference(stored: Profile, expected: Profile) -> str:
    for name in (f.name for f in fields(Profile)):
        if getattr(stored, name) != getattr(expected, name):
            return f"{name}: stored {getattr(stored, name)!r:.300} != expected {getattr(expected, name)!r:.300}"
    return "no difference"


def assert_profiles_are_the_offline_fold_of_the_good_events(ingest: Ingest, placed: list[Placed]) -> None:
    pepper = ingest.pepper
    by_user: dict[str, list[PositionedEvent]] = defaultdict(list)
    for p in placed:
        if p.record.event is not None:
            user = pseudonymize(pepper, p.record.event.user_id)
            event = p.record.event.model_copy(update={"user_id": user})
            by_user[user].append(PositionedEvent(event, p.shard, int(p.seq)))
    settings = ingest_deps().writer.fold_settings
    expected = {user: fold(None, user, events, settings)[0] for user, events in by_user.items()}
    assert sum(sum(profile.counts.values()) for profile in expected.values()) == GOOD_COUNT

    assert set(ingest.snapshot()) == set(expected), "a profile for a user with no good event, or one missing"
    stored = ingest.profiles.get_many(expected)
    differences = [
        first_difference(stored[user].profile, profile)
        for user, profile in expected.items()
        if stored[user].profile != profile
    ]
    assert not differences, f"{len(differences)} profiles differ from the offline fold, e.g. {differences[0]}"


def assert_no_raw_id(text: str, placed: list[Placed]) -> None:
    assert SYNTHETIC_ID.findall(text) == []
    real_ids = {p.record.event.user_id for p in placed if p.record.event is not None}
    assert real_ids.isdisjoint(DIGIT_RUN.findall(text))


# -- the tests ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _leave_the_stack_empty(local_stack: LocalStack) -> Iterator[None]:
    # The session's stack is shared: some later tests read the stream from its horizon, and every one would
    # be slowed by 10,000 leftover items. Leave it as empty as a test expects to find it.
    yield
    local_stack.reset()


def test_ten_thousand_hostile_records_are_quarantined_with_their_reason_and_never_disturb_good_ones(
    ingest: Ingest,
) -> None:
    # Given 10,000 seeded bad records (analytics consent given) shuffled among 1,000 real events
    mix = Mix(ingest.pepper, ingest_deps().retention)
    records = mix.shuffled(mix.good(), mix.bad(BAD_COUNT))

    # When they go through the stream, the poller and the real handler
    delivery = deliver(ingest, records)

    # Then nothing crashed, nothing was reported failed, and every record was delivered once
    assert delivery.problems == []
    assert (delivery.stats.errors, delivery.stats.reported_failures) == (0, 0)
    assert delivery.stats.records == len(records)

    # And every bad record, and nothing else, is quarantined under its shard#seq with the right reason
    bad = [p for p in delivery.placed if p.record.fate == "quarantine"]
    quarantined = get_quarantined(ingest, [p.pk for p in bad])
    missing = Counter(p.record.kind for p in bad if p.pk not in quarantined)
    assert not missing, f"bad records not quarantined, by kind: {dict(missing)}"
    wrong = Counter(
        (p.record.kind, str(p.record.reason), quarantined[p.pk]["reason"]["S"])
        for p in bad
        if quarantined[p.pk]["reason"]["S"] != p.record.reason
    )
    assert not wrong, f"(kind, expected reason, stored reason): {dict(wrong)}"
    assert quarantine_count(ingest) == BAD_COUNT
    assert all(item["shard"]["S"] + "#" + item["seq"]["S"] == pk for pk, item in quarantined.items())
    assert max(len(item["raw"]["B"]) for item in quarantined.values()) <= RAW_BYTES_KEPT

    # And every good record is applied, exactly as an offline fold of each user's good events says
    assert_profiles_are_the_offline_fold_of_the_good_events(ingest, delivery.placed)

    # And no raw user id is stored anywhere, however the bad record carried it
    assert_no_raw_id(stored_text(list(quarantined.values()) + list(ingest.snapshot().values())), delivery.placed)


def test_consent_less_records_leave_no_trace_even_when_malformed(ingest: Ingest) -> None:
    # Given a few hundred records without analytics consent (valid, malformed, oversized, with NaN tokens;
    # consent false, absent, or only truthy-looking) shuffled among 1,000 real events
    mix = Mix(ingest.pepper, ingest_deps().retention)
    records = mix.shuffled(mix.good(), mix.no_consent(NO_CONSENT_COUNT))

    # When they go through the stream, the poller and the real handler
    delivery = deliver(ingest, records)

    # Then nothing failed, nothing was quarantined, the profiles hold the good events only, and no byte
    # of a consent-less record is stored anywhere
    assert delivery.problems == []
    assert delivery.stats.records == len(records)
    assert ingest.quarantine.all() == []
    assert_profiles_are_the_offline_fold_of_the_good_events(ingest, delivery.placed)
    everything = ingest.everything_stored()
    assert NO_CONSENT_MARK.findall(everything) == []
    assert_no_raw_id(everything, delivery.placed)
