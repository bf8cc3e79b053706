"""infra/local/stream_dump.py against the loopback Kinesis: what the producer puts, the dump gives back."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.local.producer import put_events
from infra.local.stack import LocalStack
from infra.local.stream_dump import dump_stream, shard_ids
from model_export.experiments.experiment import analyze
from personalization.events import Event

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONSENT = {"analytics": True, "personalization": True}
PEPPER = b"test pepper"


def pseudonym(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def ab_events(users: int = 40) -> list[Event]:
    """Per user one impression; even users are control, odd popular; every third user clicks."""
    events: list[Event] = []
    for n in range(users):
        who = pseudonym(f"user-{n}")
        variant = "control" if n % 2 == 0 else "popular"
        shown = {
            "slot": "home",
            "items": [f"item-{n}", "item-x"],
            "experiment": "exp1",
            "variant": variant,
            "model_version": "v1",
            "rules_version": "r1",
        }
        base = {"pseudonymous": True, "user_id": who, "consent": CONSENT}
        events.append(
            Event.model_validate({**base, "event_id": f"i{n}", "type": "impression", "ts": T0, "impression": shown})
        )
        if n % 3 == 0:
            at = T0 + timedelta(minutes=2)
            events.append(
                Event.model_validate(
                    {**base, "event_id": f"v{n}", "type": "view_product", "ts": at, "item_id": f"item-{n}"}
                )
            )
    return events


def test_the_dump_holds_every_record_put_on_every_shard(clean_stack: LocalStack, tmp_path: Path) -> None:
    # Given events published by the demo producer over the stream's shards
    stream = clean_stack.physical_names["EventStream"]
    kinesis = clean_stack.client("kinesis")
    events = ab_events()
    put_events(kinesis, stream, events, PEPPER)
    assert len(shard_ids(kinesis, stream)) == clean_stack.shard_count
    # When the stream is dumped, through the stack and through a bare client, plain and gzipped
    plain, zipped = tmp_path / "events.jsonl", tmp_path / "events.jsonl.gz"
    assert dump_stream(clean_stack, stream, plain) == len(events)
    assert dump_stream(kinesis, stream, zipped) == len(events)
    # Then every line is one record's bytes, and they parse back into the events sent
    lines = plain.read_bytes().splitlines()
    assert sorted(lines) == sorted(event.to_json_bytes() for event in events)
    assert gzip.decompress(zipped.read_bytes()) == plain.read_bytes()
    parsed = {Event.model_validate_json(line).event_id: Event.model_validate_json(line) for line in lines}
    assert parsed == {event.event_id: event for event in events}
    assert not list(tmp_path.glob(".*partial"))


def test_a_dump_feeds_the_experiment_report(clean_stack: LocalStack, tmp_path: Path) -> None:
    # Given the events put twice, as a producer retrying after a timeout would
    stream = clean_stack.physical_names["EventStream"]
    events = ab_events()
    put_events(clean_stack.client("kinesis"), stream, events, PEPPER)
    put_events(clean_stack.client("kinesis"), stream, events, PEPPER)
    path = tmp_path / "events.jsonl"
    dump_stream(clean_stack, stream, path)
    # When the report reads the dump
    summary = analyze(path).summary()
    # Then each event counts once: 20 impressions per variant, users 0, 6, 12, 18, ... (7 control, 7 popular) clicked
    control, popular = summary["experiments"]["exp1"]["control"], summary["experiments"]["exp1"]["popular"]
    assert (control["impressions"], control["clicks"]) == (20, 7)
    assert (popular["impressions"], popular["clicks"]) == (20, 7)
    assert summary["duplicates"] == len(events)
    assert summary["lines"] == 2 * len(events)


def test_a_record_with_line_breaks_stays_one_line(clean_stack: LocalStack, tmp_path: Path) -> None:
    # Given a pretty-printed event (legal JSON, one record) and a record that is not JSON at all
    stream = clean_stack.physical_names["EventStream"]
    kinesis = clean_stack.client("kinesis")
    event = ab_events(1)[0]
    pretty = json.dumps(json.loads(event.to_json_bytes()), indent=2).encode()
    kinesis.put_record(StreamName=stream, Data=pretty, PartitionKey="a")
    kinesis.put_record(StreamName=stream, Data=b"not\njson", PartitionKey="b")
    # When dumped
    path = tmp_path / "events.jsonl"
    assert dump_stream(clean_stack, stream, path) == 2
    # Then each record is one line: the event still parses, the other is still not an event
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2
    assert Event.model_validate_json(next(line for line in lines if line.startswith(b"{"))) == event
    summary = analyze(path).summary()
    assert (summary["lines"], summary["unparsed"]) == (2, 1)


def test_an_empty_stream_gives_an_empty_file(clean_stack: LocalStack, tmp_path: Path) -> None:
    path = tmp_path / "nested" / "events.jsonl"
    assert dump_stream(clean_stack, clean_stack.physical_names["EventStream"], path) == 0
    assert path.read_bytes() == b""


def test_an_unknown_stream_is_an_error_and_leaves_no_file(clean_stack: LocalStack, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with pytest.raises(clean_stack.client("kinesis").exceptions.ResourceNotFoundException):
        dump_stream(clean_stack, "no-such-stream", path)
    assert not path.exists()
    assert not list(tmp_path.iterdir())
