"""Erasure reaches the archive: people erased, the scheduled purge run, then every archived object scanned for them."""

from __future__ import annotations

import gzip
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.poller import LocalLambdaContext
from ingest.wiring import ingest_deps
from personalization.identity import pseudonymize
from purge.wiring import purge_deps
from store.erasure_log import ErasureLogStore
from tests.helpers.archive_bucket import FaultyAws, archived
from tests.helpers.ingest import Ingest, real_events


def raw_objects(ingest: Ingest) -> dict[str, bytes]:
    """Every archived object's bytes as stored, decompressed where gzip: what the scan searches."""
    s3 = ingest.stack.client("s3")
    bucket = ingest.stack.physical_names["ArchiveBucket"]
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="events/"):
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            found[entry["Key"]] = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    return found


@pytest.fixture
def functions(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The erase and purge functions' environments beside ingest's, as fresh containers."""
    from erase.wiring import erase_deps

    env = {**ingest.stack.function_env("EraseFunction"), **ingest.stack.function_env("PurgeFunction")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    erase_deps.cache_clear()
    purge_deps.cache_clear()
    yield env
    erase_deps.cache_clear()
    purge_deps.cache_clear()


def erase(user_id: str) -> dict[str, Any]:
    from erase.handler import lambda_handler

    answer: dict[str, Any] = lambda_handler({"user_id": user_id}, LocalLambdaContext("EraseFunction"))
    return answer


def run_purge(event: dict[str, Any] | None = None) -> dict[str, Any]:
    from purge.handler import lambda_handler
    from tests.helpers.events import load_event

    answer: dict[str, Any] = lambda_handler(event or load_event("purge_schedule.json"), LocalLambdaContext("Purge"))
    return answer


def test_erased_peoples_archived_events_are_purged_and_nobody_elses(
    ingest: Ingest, functions: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an archive written both ways: by Firehose (moto's plain objects) and, while it was down, by ingest
    # itself (gzip objects under events/dt=...)
    events = real_events(700)
    ingest.publish(events[:450])
    ingest.poller(batch_size=500).drain()
    with FaultyAws(ingest.stack.endpoint_url, firehose_down=1000) as faulty:
        monkeypatch.setenv("AWS_ENDPOINT_URL_FIREHOSE", faulty.url)
        ingest_deps.cache_clear()
        ingest.publish(events[450:])
        # (the poller reads from the trim horizon: the first 450 come again, and are archived again)
        ingest.poller(batch_size=500).drain()
    before = archived(ingest.stack)
    assert set(before.event_ids) == {e.event_id for e in events}
    assert any(before.gzipped.values())
    assert not all(before.gzipped.values())

    # and three people with events in both kinds of object, erased: three that share their objects (one shard's),
    # so that some objects name none of them
    late = {e.user_id for e in events[450:]}
    where: dict[frozenset[str], list[str]] = defaultdict(list)
    for user in sorted({e.user_id for e in events[:450]} & late):
        mark = pseudonymize(ingest.pepper, user).encode()
        keys = frozenset(key for key, lines in before.objects.items() if any(mark in line for line in lines))
        where[keys].append(user)
    gone = next(users[:3] for keys, users in where.items() if len(users) >= 3 and len(keys) < len(before.objects))
    for user in gone:
        erase(user)
    pseudonyms = [pseudonymize(ingest.pepper, user).encode() for user in gone]
    naming = {key for key, body in raw_objects(ingest).items() if any(p in body for p in pseudonyms)}
    untouched = {key: body for key, body in raw_objects(ingest).items() if key not in naming}
    assert naming
    assert untouched

    # When the scheduled purge runs
    receipt = run_purge()

    # Then no archived object names them, anywhere in any line
    after = raw_objects(ingest)
    assert [key for key, body in after.items() if any(p in body for p in pseudonyms)] == []
    # every other event is still there, once, and objects that never named them were not touched
    theirs = [line for line in before.events if line["user_id"].encode() in pseudonyms]
    kept = [line["event_id"] for line in before.events if line["user_id"].encode() not in pseudonyms]
    assert sorted(archived(ingest.stack).event_ids) == sorted(kept)
    assert set(kept) == {e.event_id for e in events if e.user_id not in gone}
    assert {key: after[key] for key in untouched} == untouched
    # and the erasure log has the run's counts, naming nobody
    log = ErasureLogStore(functions["ERASURE_LOG_TABLE"], ingest.stack.region, functions_retention())
    [run] = log.purges()
    assert run.model_dump(mode="json") == receipt
    assert (run.people, run.events, run.rewritten + run.deleted, run.objects) == (
        3,
        len(theirs),
        len(naming),
        len(before.objects),
    )
    assert len(log.all()) == 3  # the three erasures, logged as before

    # When it runs again, Then it reads only what was written since (everything, here: within the clock margin),
    # and there is nothing left to remove and nothing is rewritten
    again = run_purge()
    assert (again["full"], again["events"], again["rewritten"], again["deleted"]) == (False, 0, 0, 0)
    assert raw_objects(ingest) == after


def functions_retention() -> Any:
    from datetime import timedelta

    return timedelta(days=1)
