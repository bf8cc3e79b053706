"""The archive's format: ingest's lines parse back to the events it accepted, the template's partitioning query
reads their date, PutRecordBatch calls stay within Firehose's limits, and the purge removes exactly an erased
person's lines."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jq
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.local.template import Template
from personalization.archive import archive_line, day_of, object_body, object_lines, without_people
from personalization.events import Event, RecordParser
from personalization.identity import pseudonymize
from store.archive import MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL, _calls, _encoded_size

PEPPER = b"unit-pepper"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=180)


def record(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e-1",
        "user_id": "541312140",
        "type": "view_product",
        "ts": "2026-12-06T11:59:00Z",
        "item_id": "44600062",
        "consent": {"analytics": True, "personalization": True},
    }
    return {**base, **fields}


def accepted(data: bytes) -> Event:
    event = RecordParser(NOW, RETENTION, PEPPER).parse(data)
    assert isinstance(event, Event)
    return event


def round_trip(data: bytes) -> tuple[Event, Event, bytes]:
    event = accepted(data)
    line = archive_line(data, event)
    # A reader validates lines without the pepper: nothing is hashed again
    return event, Event.model_validate_json(line), line


user_ids = st.text(min_size=1, max_size=40)
layouts = st.sampled_from([{}, {"indent": 2}, {"separators": (",", ":")}, {"separators": (" , ", " : ")}])


@settings(max_examples=200)
@given(user_id=user_ids, layout=layouts, ascii_only=st.booleans(), extra=st.sampled_from([{}, {"pseudonymous": False}]))
def test_a_line_parses_back_to_the_accepted_event_under_its_pseudonym(
    user_id: str, layout: dict[str, Any], ascii_only: bool, extra: dict[str, Any]
) -> None:
    # Given a record with a raw id (any characters, escaped or not), laid out in any way JSON allows
    data = json.dumps(record(user_id=user_id, **extra), ensure_ascii=ascii_only, **layout).encode()

    # When ingest makes its archive line
    event, archived, line = round_trip(data)

    # Then it is one line, it parses to the same event, marked pseudonymous, and the raw id is gone
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert archived.model_copy(update={"pseudonymous": False}) == event.model_copy(update={"pseudonymous": False})
    assert archived.pseudonymous
    assert archived.user_id == pseudonymize(PEPPER, user_id)
    assert json.loads(line)["user_id"] == archived.user_id


def test_a_record_sent_pseudonymous_is_archived_as_its_own_bytes() -> None:
    pseudonym = pseudonymize(b"collector", "visitor")
    data = json.dumps(record(user_id=pseudonym, pseudonymous=True)).encode()
    event, archived, line = round_trip(data)
    assert line == data + b"\n"
    assert archived == event


def test_a_raw_id_is_spliced_not_reserialized() -> None:
    data = json.dumps(record(price=10.50, category="a.b")).encode()
    _, _archived, line = round_trip(data)
    # The rest of the bytes is as sent (10.5 is not rewritten, no default fields are added)
    assert b'"price": 10.5' in line
    assert b'"quantity"' not in line
    assert line.startswith(b'{"event_id": "e-1", "pseudonymous":true,"user_id":"')


def test_the_templates_partitioning_query_reads_each_lines_event_date() -> None:
    # Given the delivery stream's JQ query, as deployed
    stream = Template.load().resource("ArchiveDeliveryStream").properties
    processors = stream["ExtendedS3DestinationConfiguration"]["ProcessingConfiguration"]["Processors"]
    [query] = [
        p["ParameterValue"] for p in processors[0]["Parameters"] if p["ParameterName"] == "MetadataExtractionQuery"
    ]
    program = jq.compile(query)
    # When it reads lines whose ts takes each form the schema accepts
    forms = {
        "2026-12-06T23:59:59Z": "2026-12-06",
        "2026-12-06T23:59:59.123456+00:00": "2026-12-06",
        "2026-12-06 01:00:00+02:00": "2026-12-06",  # the sender's date: within the day of slack readers allow
        1796601599: "2026-12-06",
        1796601599123: "2026-12-06",
        "1796601599": "2026-12-06",
        1796601599.5: "2026-12-06",
    }
    for ts, day in forms.items():
        data = json.dumps(record(ts=ts)).encode()
        event = RecordParser(datetime(2026, 12, 7, tzinfo=UTC), RETENTION, PEPPER).parse(data)
        assert isinstance(event, Event)
        line = archive_line(data, event)
        # Then the partition is the event's date
        assert program.input_text(line.decode()).first() == {"dt": day}, ts


def test_day_of_is_the_utc_date() -> None:
    event = accepted(json.dumps(record(ts="2026-12-06T01:00:00+05:00")).encode())
    assert day_of(event) == "2026-12-05"


@given(sizes=st.lists(st.integers(min_value=1, max_value=40_000), max_size=1500))
def test_calls_keep_order_and_firehose_limits(sizes: list[int]) -> None:
    lines = [(index, b"x" * size) for index, size in enumerate(sizes)]
    calls = list(_calls(lines))
    assert [item for call in calls for item in call] == lines
    for call in calls:
        assert 1 <= len(call) <= MAX_RECORDS_PER_CALL
        assert sum(_encoded_size(line) for _, line in call) <= MAX_BYTES_PER_CALL


def test_calls_of_a_big_batch_split_at_500_records_and_at_4_mib() -> None:
    assert [len(c) for c in _calls([(i, b"x") for i in range(1200)])] == [500, 500, 200]
    big = [(i, b"x" * 30_000) for i in range(300)]  # 40,000 bytes each in base64: 104 per 4 MiB
    assert [len(c) for c in _calls(big)] == [104, 104, 92]


def test_the_purge_removes_every_line_naming_an_erased_person_and_keeps_the_compression() -> None:
    erased, kept = pseudonymize(PEPPER, "gone"), pseudonymize(PEPPER, "stays")
    lines = [
        json.dumps({"event_id": "1", "user_id": erased}).encode() + b"\n",
        json.dumps({"event_id": "2", "user_id": kept}).encode() + b"\n",
        json.dumps({"event_id": "3", "user_id": kept, "context": {"referrer": erased}}).encode() + b"\n",
    ]
    for body in (b"".join(lines), object_body(lines)):
        result = without_people(body, frozenset({erased}))
        assert result is not None
        rest, removed = result
        assert removed == 2
        assert list(object_lines(rest)) == [lines[1]]
        assert (rest[:2] == b"\x1f\x8b") == (body[:2] == b"\x1f\x8b")
        assert erased.encode() not in (gzip.decompress(rest) if rest[:2] == b"\x1f\x8b" else rest)
    # An object naming none of them is left alone, one naming only them comes back empty
    assert without_people(lines[1], frozenset({erased})) is None
    assert without_people(object_body(lines[:1]), frozenset({erased})) == (b"", 1)


@given(user_id=st.text(min_size=1, max_size=40))
def test_a_record_laid_out_as_event_to_json_bytes_takes_the_short_path_and_parses_back(user_id: str) -> None:
    data = Event.model_validate(record(user_id=user_id)).to_json_bytes()
    assert b'"pseudonymous":false,"user_id":"' in data
    event, archived, line = round_trip(data)
    assert archived.user_id == pseudonymize(PEPPER, user_id)
    assert archived.model_copy(update={"pseudonymous": False}) == event
    assert line.startswith(b'{"event_id":"e-1","pseudonymous":true,"user_id":"' + archived.user_id.encode() + b'"')


def test_a_record_with_two_user_ids_never_archives_either_raw_id() -> None:
    # Given a record naming two raw ids (JSON parsers keep one of duplicate keys: which one must not matter)
    compact = b'{"event_id":"e","pseudonymous":false,"user_id":"first-raw","type":"page_view",'
    compact += b'"ts":"2026-12-06T11:59:00Z","consent":{"analytics":true,"personalization":true},'
    compact += b'"user_id":"second-raw"}'
    for data in (compact, compact.replace(b'"pseudonymous":false,', b"")):
        # When it is archived, Then the line holds the pseudonym the event was folded under, and no raw id
        event, archived, line = round_trip(data)
        assert archived.user_id == event.user_id
        assert b"first-raw" not in line
        assert b"second-raw" not in line
