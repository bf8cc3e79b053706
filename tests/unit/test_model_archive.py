"""Training from the event archive: the window, gzip or plain objects, de-duplication, consent, bad lines,
and the same canonical rows (so the same training) as the equivalent canonical file."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_export.cli import main
from model_export.data.archive import (
    GZIP_MAGIC,
    ArchiveError,
    LocalObjects,
    Window,
    key_date,
    open_archive,
    read_window,
)
from model_export.data.canonical import normalize
from model_export.data.trainable import with_consent
from model_export.data.window import load_window
from personalization.events import Consent, Event, EventType
from store.archive_objects import ArchiveObject
from tests.helpers.archive import archive_objects, archived, hostile_archive, ndjson, sample_frame, write_folder

UNTIL = datetime(2026, 11, 20, 12, tzinfo=UTC)
BOTH = Consent(analytics=True, personalization=True)
ANALYTICS_ONLY = Consent(analytics=True, personalization=False)


def event(n: int, user: str, minutes: float, kind: EventType = EventType.VIEW_PRODUCT, **fields: object) -> Event:
    values: dict[str, object] = {
        "event_id": f"e{n}",
        "user_id": user,
        "type": kind,
        "ts": UNTIL - timedelta(hours=1) + timedelta(minutes=minutes),
        "consent": BOTH,
    }
    if kind in (EventType.VIEW_PRODUCT, EventType.PURCHASE):
        values["item_id"] = f"i{n}"
    values.update(fields)
    return Event.model_validate(values)


def test_a_window_is_read_once_per_event_from_gzip_and_plain_objects(tmp_path: Path) -> None:
    # Given two days of the sample archived in moto's layout, half the objects gzipped, one delivery repeated
    # (at-least-once), a bad line, a corrupt object, and an object dated a month before the window
    frame = sample_frame(UNTIL, days=2, rows=600)
    events = archived(frame)
    objects = hostile_archive(events)
    root = write_folder(tmp_path / "archive", objects)

    # When the last two days are read
    read, stats = read_window(LocalObjects(root), Window.last_days(2, UNTIL))

    # Then every event comes back once, in time order, and every problem is counted, none raised
    assert [e.event_id for e in read] == [e.event_id for e in sorted(events, key=lambda e: e.ts)]
    assert stats.events == len(events)
    assert stats.duplicates == 100 + 3
    assert stats.malformed == 2
    assert stats.objects_unreadable == 1
    assert stats.objects_skipped_by_date == 1


def test_events_outside_the_window_are_left_out_by_their_own_time(tmp_path: Path) -> None:
    # Given an object whose key date is inside the window's slack but whose events are not all inside it
    inside = event(1, "a" * 64, minutes=10)
    before = event(2, "a" * 64, minutes=-60 * 24 * 3)
    after = event(3, "a" * 64, minutes=120)
    root = write_folder(tmp_path, {"events/dt=2026-11-20/part-0.gz": gzip.compress(ndjson([before, inside, after]))})
    # When one day ending at UNTIL is read
    read, stats = read_window(LocalObjects(root), Window.last_days(1, UNTIL))
    # Then only the event stamped inside it is kept
    assert [e.event_id for e in read] == ["e1"]
    assert stats.outside_window == 2


def test_people_who_withdrew_personalization_are_not_trained_on() -> None:
    # Given one person who withdrew, one who withdrew and then agreed again, one with analytics only, one who
    # always agreed
    gone, back, analytics_only, stays = "a" * 64, "b" * 64, "c" * 64, "d" * 64
    events = [
        event(1, gone, 0),
        event(2, gone, 5, EventType.CONSENT, consent=ANALYTICS_ONLY),
        event(3, back, 0),
        event(4, back, 5, EventType.CONSENT, consent=ANALYTICS_ONLY),
        event(5, back, 10, EventType.CONSENT, consent=BOTH),
        event(6, back, 15),
        event(7, analytics_only, 0, consent=ANALYTICS_ONLY),
        event(8, stays, 0),
        event(9, stays, 1),
    ]
    read, _ = read_window(_objects(events), Window.last_days(1, UNTIL))
    # When consent is applied
    kept, excluded = with_consent(read)
    # Then the withdrawn and the analytics-only person are gone, and the returner keeps only what followed
    assert sorted(e.event_id for e in kept) == ["e5", "e6", "e8", "e9"]
    assert excluded.people == 2
    assert excluded.events == 5


def test_a_consent_event_at_the_same_time_as_a_view_decides() -> None:
    user = "e" * 64
    events = [event(1, user, 0), event(2, user, 0, EventType.CONSENT, consent=ANALYTICS_ONLY)]
    kept, excluded = with_consent(read_window(_objects(events), Window.last_days(1, UNTIL))[0])
    assert kept == []
    assert excluded.people == 1


def test_archive_rows_are_the_canonical_rows_of_the_same_events(tmp_path: Path) -> None:
    # Given the sample archived, with a search and a page view that name no item, and impressions
    frame = sample_frame(UNTIL, days=1, rows=400)
    events = archived(frame)
    extra = [
        event(10_001, events[0].user_id, 30, EventType.SEARCH),
        event(10_002, events[0].user_id, 31, EventType.PAGE_VIEW, context={"device": "mobile", "utc_offset_min": 540}),
    ]
    root = write_folder(tmp_path, archive_objects([*events, *extra], per_object=150))
    # When the window is loaded as training rows
    loaded = load_window(str(root), Window.last_days(1, UNTIL), "us-east-1")
    # Then the item events are exactly the canonical file's rows, and the itemless ones are kept without an item
    columns = ["user_id", "item_id", "event_type", "timestamp", "category", "price", "quantity", "session_id"]
    expected = normalize(frame)[columns].reset_index(drop=True)
    with_item = loaded.frame[loaded.frame["item_id"].notna()][columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(with_item, expected, check_dtype=False)
    itemless = loaded.frame[loaded.frame["item_id"].isna()]
    assert sorted(itemless["event_type"]) == ["page_view", "search"]
    # And the context the fold reads (device, clock offset) comes along
    page_view = itemless[itemless["event_type"] == "page_view"].iloc[0]
    assert (page_view["device"], page_view["utc_offset_min"]) == ("mobile", 540)
    assert loaded.summary()["archive"]["events"] == len(events) + 2


def test_train_from_an_archive_folder_writes_a_version_that_names_its_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a day of archived events
    root = write_folder(tmp_path / "archive", archive_objects(archived(sample_frame(UNTIL, days=1, rows=800))))
    # When the CLI trains from the folder
    argv = ["train", "--archive", str(root), "--days", "1", "--until", UNTIL.isoformat(), "--out", str(tmp_path)]
    assert main(argv) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])
    # Then the version's manifest records the window and the archive's counts
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["data"]["window"]["end"] == UNTIL.isoformat()
    assert manifest["data"]["archive"]["events"] == 800
    assert manifest["metrics"]["events"] == 800
    assert manifest["metrics"]["parity"]["ok"]


def test_an_empty_window_is_an_error_not_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_folder(tmp_path / "archive", archive_objects(archived(sample_frame(UNTIL, days=1, rows=50))))
    long_ago = (UNTIL - timedelta(days=30)).isoformat()
    argv = ["train", "--archive", str(root), "--days", "1", "--until", long_ago, "--out", str(tmp_path / "m")]
    assert main(argv) == 1
    assert "no events" in capsys.readouterr().err


def test_archive_locations() -> None:
    with pytest.raises(ArchiveError):
        open_archive("https://example.invalid/events", "us-east-1")
    with pytest.raises(ArchiveError):
        open_archive("/no/such/folder", "us-east-1")
    assert str(open_archive("s3://bucket/events", "us-east-1")) == "s3://bucket/events/"


@given(day=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)), hour=st.integers(0, 23))
def test_key_dates_in_both_layouts(day: date, hour: int) -> None:
    assert key_date(f"events/dt={day:%Y-%m-%d}/part-{hour}.gz") == day
    assert key_date(f"events/{day:%Y/%m/%d}/{hour:02d}/delivery-1") == day
    assert key_date(f"events/{day:%Y%m%d}-{hour}") is None


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.sampled_from([b"{}", b"[]", b"null", b'{"event_id": 1}', b"\x1f\x8b", b"\xff\xfe"]),
            st.integers(0, 19).map(lambda n: event(n, "f" * 64, n).to_json_bytes()),
        ),
        max_size=30,
    ),
    compress=st.booleans(),
)
def test_any_object_reads_to_its_distinct_valid_events(lines: list[bytes], compress: bool) -> None:
    # Given an object of arbitrary lines, some of them valid events (repeats included)
    body = b"\n".join(lines)
    expected = {json.loads(line)["event_id"] for line in lines if line.startswith(b'{"event_id":"e')}
    if not compress and body.startswith(GZIP_MAGIC):
        expected = set()  # a plain object that starts like gzip is read as gzip, fails, and is skipped whole
    source = _Objects({"events/2026/11/20/11/x": gzip.compress(body) if compress else body})
    # When it is read, nothing raises and exactly the distinct valid events come back
    read, stats = read_window(source, Window.last_days(1, UNTIL))
    assert {e.event_id for e in read} == expected
    assert stats.events == len(expected)


class _Objects:
    """An in-memory object source (the reader's protocol), for tests that need no folder."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self._objects = objects

    def objects(self) -> list[ArchiveObject]:
        return [ArchiveObject(key, len(body)) for key, body in sorted(self._objects.items())]

    def read(self, key: str) -> bytes:
        return self._objects[key]


def _objects(events: list[Event]) -> _Objects:
    return _Objects({"events/2026/11/20/11/x": ndjson(events)})
