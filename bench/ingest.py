"""`python -m bench.ingest`: the ingest hot path and its DynamoDB footprint, on real events.

Every bundled REES46 event is time-shifted so that the newest lands now. "The batch" is the newest 1,000, as
one Lambda-shaped Kinesis batch of one shard; it is folded onto the profiles every earlier event left (the
steady state: most people in a batch already have a history). Those profiles are written to a loopback stack
started (and stopped) here, exactly as the store writes them; the batch then goes through the real handler.

Figures (the JSON object on the last line):
  events                    events used: all bundled events
  cpu_us_per_event          the batch's parse + validate + pseudonymize (ingest.batch.Classifier), grouping by
                            user, personalization.profile.fold onto the stored profiles, each accepted event's
                            archive line (personalization.archive.archive_line) and trending's in-memory sum of the
                            batch (ingest.trending.batch_activity), per event, no I/O; the thread's CPU time
                            (time.thread_time_ns), not the wall clock, which on a shared machine also counts the
                            time other processes hold the core; median of repetitions after a warm-up; the
                            pseudonym cache holds the people seen before. As the handler runs it: cyclic GC
                            paused, each profile decoded afresh (untimed: that is the read) and folded in place.
                            Split into classify, fold, archive and trending; _best is the fastest repetition;
                            _fresh is the same batch onto empty profiles with nobody cached (a new container's
                            first contact)
  reference_json_loads_us   json.loads of one record on this machine (thread CPU time): a yardstick to scale the
                            CPU figures
  writes_per_batch          profile writes the batch made through the handler, counted from item versions
                            (every write bumps one), and distinct_users_per_batch, the people in it
  batch_ms_loopback         the batch end to end through a warm handler (against moto: says little about AWS)
  replay_identical          five redeliveries of the batch leave every stored item byte-identical
  profile_kb_p95/_max       stored item size as DynamoDB counts it (attribute names + values), for every
                            profile after all bundled events; stored_kb_p95/_max: the items the batch wrote
  wcu_per_batch             write units the batch's writes consume: ceil(size / 1 KB) per write, where a put
                            replacing an item is charged for the larger of the old and the new item
  stored_equals_offline_fold  the batch's people as the handler stored them equal an offline fold of all events
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import bundled_events, main_of, median, percentile, table
from infra.local.poller import LocalLambdaContext, lambda_kinesis_record
from infra.local.stack import LocalStack, conflicting_env_vars

if TYPE_CHECKING:
    from personalization.events import Event
    from personalization.profile import FoldSettings, Profile

BATCH = 1_000
SHARD = "shardId-000000000000"
# Kinesis sequence numbers are 56-digit decimals; the watermarks compare them as integers.
FIRST_SEQ = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_002
WARMUP = 3
REPETITIONS = 15
REPLAYS = 5
KB = 1024
# Set before the handler's modules are imported: powertools reads them once, at import.
QUIET = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
TARGETS = {"cpu_us_per_event": 30.0, "profile_kb_p95": 4.0}
# The template's default TrendingHalfLifeHours.
TRENDING_HALF_LIFE_MS = 3600 * 1000

Item = Mapping[str, Mapping[str, Any]]


# -- data ----------------------------------------------------------------------------------------------


def load_events() -> tuple[list[Event], Path]:
    """All bundled events, shifted so that the newest lands now, in time order."""
    from model_export.data.canonical import to_events
    from model_export.data.datasets import load_any

    source = bundled_events()
    # load_any converts a dataset beside its input file: work on a copy, never in the shared folder.
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / source.name
        shutil.copyfile(source, copy)
        frame = load_any(copy)
    shift = datetime.now(UTC) - frame["timestamp"].max().to_pydatetime()
    return list(to_events(frame, shift)), source


def kinesis_records(events: Sequence[Event], pepper: bytes, first: int) -> list[dict[str, Any]]:
    """What get_records would return for these events, put by the tracker one after another on one shard."""
    from personalization.identity import pseudonymize

    arrived = datetime.now(UTC)
    return [
        {
            "Data": event.to_json_bytes(),
            "PartitionKey": pseudonymize(pepper, event.user_id),
            "SequenceNumber": str(FIRST_SEQ + first + index),
            "ApproximateArrivalTimestamp": arrived,
        }
        for index, event in enumerate(events)
    ]


# -- DynamoDB sizes --------------------------------------------------------------------------------------


def number_size(text: str) -> int:
    """DynamoDB's size of a number: 1 byte per two significant digits, plus 1."""
    mantissa = text.lstrip("+-").lower().split("e")[0].replace(".", "")
    digits = mantissa.strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def item_size(item: Item) -> int:
    """Bytes of an item as DynamoDB counts them for storage and write units: attribute names plus values."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        [(kind, data)] = value.items()
        if kind == "S":
            size += len(data.encode())
        elif kind == "B":
            size += len(data)
        elif kind == "N":
            size += number_size(data)
        elif kind in ("BOOL", "NULL"):
            size += 1
        else:
            raise ValueError(f"no size rule here for attribute type {kind}")
    return size


def write_units(size: int) -> int:
    return math.ceil(size / KB)


def stored_form(profile: Profile, version: int, retention: timedelta) -> Item:
    """The item ProfileStore.save writes for a profile, without writing it."""
    from store import codec
    from store.profiles import ProfileItem

    # As BatchWriter computes it: the profile expires a retention after its last event.
    expires = datetime.fromtimestamp((profile.last_event_ms or 0) / 1000, tz=UTC) + retention
    item = ProfileItem(pk=profile.user_id, d=codec.encode(profile), ttl=expires)
    item.v = version
    serialized: Item = item.serialize()
    return serialized


def offline_profiles(events: Sequence[Event], pepper: bytes, settings: FoldSettings) -> dict[str, Profile]:
    """Every person's profile after all events, folded as ingest folds them (same pseudonyms and positions)."""
    from personalization.identity import pseudonymize
    from personalization.profile import PositionedEvent, fold

    by_user: dict[str, list[PositionedEvent]] = defaultdict(list)
    for index, event in enumerate(events):
        user = pseudonymize(pepper, event.user_id)
        by_user[user].append(PositionedEvent(event.model_copy(update={"user_id": user}), SHARD, FIRST_SEQ + index))
    return {user: fold(None, user, positioned, settings)[0] for user, positioned in by_user.items()}


# -- the loopback stack ----------------------------------------------------------------------------------


@dataclass
class Loopback:
    stack: LocalStack
    env: dict[str, str]

    @property
    def table(self) -> str:
        return self.env["PROFILES_TABLE"]

    def get_items(self, keys: Sequence[str]) -> dict[str, Item]:
        dynamodb = self.stack.client("dynamodb")
        found: dict[str, Item] = {}
        for start in range(0, len(keys), 100):
            request: Any = {self.table: {"Keys": [{"pk": {"S": key}} for key in keys[start : start + 100]]}}
            while request:
                response = dynamodb.batch_get_item(RequestItems=request)
                found.update((item["pk"]["S"], item) for item in response["Responses"].get(self.table, []))
                request = response.get("UnprocessedKeys") or None
        return found

    def snapshot(self) -> dict[str, Item]:
        items: dict[str, Item] = {}
        for page in self.stack.client("dynamodb").get_paginator("scan").paginate(TableName=self.table):
            items.update((item["pk"]["S"], item) for item in page["Items"])
        return items

    def lambda_event(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        arn = self.stack.arns["EventStream"]
        return {"Records": [lambda_kinesis_record(dict(r), SHARD, arn, self.stack.region) for r in records]}


def point_environment_at(stack: LocalStack) -> dict[str, str]:
    env = stack.function_env("IngestFunction")
    for name in conflicting_env_vars(os.environ):
        del os.environ[name]
    os.environ.update(env)
    os.environ.update(QUIET)
    return env


def invoke(handler: Callable[[dict[str, Any], Any], dict[str, Any]], event: dict[str, Any]) -> float:
    """Milliseconds for one invocation; a reported failure makes every figure meaningless, so it stops the run."""
    start = time.perf_counter()
    response = handler(event, LocalLambdaContext("IngestFunction"))
    elapsed = (time.perf_counter() - start) * 1000
    if response.get("batchItemFailures"):
        raise RuntimeError(f"the handler reported failures: {response['batchItemFailures'][:3]}")
    return elapsed


# -- CPU -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cpu:
    classify_us: float
    fold_us: float
    archive_us: float
    trending_us: float
    best_us: float  # the fastest repetition: closest to an unloaded machine

    @property
    def total_us(self) -> float:
        return self.classify_us + self.fold_us + self.archive_us + self.trending_us


def measure_cpu(
    records: Sequence[Mapping[str, Any]],
    priors: Mapping[str, bytes],
    pepper: bytes,
    retention: timedelta,
    settings: FoldSettings,
    seen: Sequence[str] = (),
) -> Cpu:
    """classify + group + fold of one batch, per event; the median of each part over the repetitions.

    Before each repetition the pseudonym cache holds exactly the raw ids in `seen`: the people the container
    that owns this shard has met before (Kinesis partitions by pseudonym, so they keep coming to it). The
    stored profiles (`priors`: their encoded bytes) are decoded afresh, untimed, as the handler's read does,
    and folded in place, as the handler folds them.
    """
    from ingest.batch import Classifier, RawRecord, cyclic_gc_paused
    from ingest.trending import batch_activity
    from personalization.archive import archive_line
    from personalization.identity import pseudonymize
    from personalization.profile import PositionedEvent, fold
    from store import codec

    raw = [RawRecord(r["Data"], SHARD, r["SequenceNumber"], r["ApproximateArrivalTimestamp"]) for r in records]
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)

    def once() -> tuple[float, float, float, float]:
        profiles = {user: codec.decode(user, blob) for user, blob in priors.items()}
        pseudonymize.cache_clear()
        for raw_id in seen:
            pseudonymize(pepper, raw_id)
        # As the handler runs a batch: with the cyclic garbage collector paused
        with cyclic_gc_paused():
            start = time.thread_time_ns()
            classify = Classifier(pepper, now, retention).classify
            classified = [classify(record) for record in raw]
            parsed = time.thread_time_ns()
            by_user: dict[str, list[PositionedEvent]] = defaultdict(list)
            for item in classified:
                if isinstance(item.outcome, PositionedEvent):
                    by_user[item.outcome.event.user_id].append(item.outcome)
            applied = 0
            fresh: list[PositionedEvent] = []
            for user, events in by_user.items():
                # As BatchWriter picks what trending counts: above the stored watermark, read before the fold
                prior = profiles.get(user)
                marks = prior.watermarks if prior is not None else {}
                fresh += [p for p in events if p.seq > marks.get(p.shard, -1)]
                applied += fold(prior, user, events, settings, in_place=True)[1]
            folded = time.thread_time_ns()
            # What ingest.archiving makes of each accepted event for PutRecordBatch (the call itself is I/O)
            lines = [
                archive_line(item.record.data, item.outcome.event)
                for item in classified
                if isinstance(item.outcome, PositionedEvent)
            ]
            archived = time.thread_time_ns()
            # Trending's in-memory sum of the batch (ingest.trending; the one write per shard is I/O)
            trend = batch_activity(fresh, now_ms, TRENDING_HALF_LIFE_MS)
            end = time.thread_time_ns()
        if not trend:
            raise RuntimeError("the batch added nothing to trending: it is not what it should be")
        if applied != len(raw) or len(lines) != len(raw):
            raise RuntimeError(f"only {applied} of {len(raw)} events applied: the batch is not what it should be")
        per_event = 1000 * len(raw)
        return (
            (parsed - start) / per_event,
            (folded - parsed) / per_event,
            (archived - folded) / per_event,
            (end - archived) / per_event,
        )

    for _ in range(WARMUP):
        once()
    runs = [once() for _ in range(REPETITIONS)]
    classify, fold_us, archive, trending = (median([r[part] for r in runs]) for part in range(4))
    return Cpu(classify, fold_us, archive, trending, min(map(sum, runs)))


# -- the run ---------------------------------------------------------------------------------------------


def preload(loopback: Loopback, profiles: Mapping[str, Profile], retention: timedelta) -> None:
    """Store the profiles as the handler would have left them (version 1), in BatchWriteItem requests.

    The history could go through the handler too, and ends in the same bytes (the fold is batch-invariant,
    which the run checks on the batch's people), but moto takes seconds per batch of 1,000 to do it.
    """
    dynamodb = loopback.stack.client("dynamodb")
    items = [stored_form(profile, 1, retention) for profile in profiles.values()]
    for start in range(0, len(items), 25):
        request: Any = {loopback.table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        while request:
            request = dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or None


def reference_us(record: bytes) -> float:
    """json.loads of one typical record, in microseconds: a yardstick for this machine's speed and load."""
    runs = []
    for _ in range(REPETITIONS):
        start = time.thread_time_ns()
        for _ in range(1000):
            json.loads(record)
        runs.append((time.thread_time_ns() - start) / 1000 / 1000)
    return median(runs)


def run() -> dict[str, Any]:
    events, source = load_events()
    history, batch = events[:-BATCH], events[-BATCH:]
    with LocalStack() as stack:
        env = point_environment_at(stack)
        from ingest.batch import Classified, IngestResult
        from ingest.handler import lambda_handler
        from ingest.wiring import ingest_deps

        loopback = Loopback(stack, env)
        service = ingest_deps()
        pepper, retention, settings = service.pepper(), service.retention, service.writer.fold_settings
        results: list[IngestResult] = []
        write = service.writer.write

        def recording(classified: Sequence[Classified]) -> IngestResult:
            result = write(classified)
            results.append(result)
            return result

        service.writer.write = recording  # type: ignore[method-assign]

        # Given the profiles every earlier event left
        preload(loopback, offline_profiles(history, pepper, settings), retention)
        records = kinesis_records(batch, pepper, len(history))
        users = sorted({r["PartitionKey"] for r in records})
        before = loopback.get_items(users)
        priors = {user: bytes(item["d"]["B"]) for user, item in before.items()}

        # The hot path alone, onto those profiles and onto none
        cpu = measure_cpu(records, priors, pepper, retention, settings, sorted({e.user_id for e in history}))
        cpu_fresh = measure_cpu(records, {}, pepper, retention, settings)

        # A warm container (a redelivered old record: read, skipped, nothing written), then the batch through
        # the handler, then five redeliveries of it
        invoke(lambda_handler, loopback.lambda_event(kinesis_records(history[:1], pepper, 0)))
        results.clear()
        batch_ms = invoke(lambda_handler, loopback.lambda_event(records))
        [result] = results
        after = loopback.get_items(users)
        once = loopback.snapshot()
        replay_ms = [invoke(lambda_handler, loopback.lambda_event(records)) for _ in range(REPLAYS)]
        replay_identical = loopback.snapshot() == once

    writes = sum(int(after[u]["v"]["N"]) - (int(before[u]["v"]["N"]) if u in before else 0) for u in after)
    new_sizes = {u: item_size(item) for u, item in after.items()}
    wcu = sum(write_units(max(new_sizes[u], item_size(before[u]) if u in before else 0)) for u in after)

    # Every profile after all events, sized in the form the store writes it; the batch's people as the
    # handler stored them must be exactly these
    profiles = offline_profiles(events, pepper, settings)
    stored_equals_offline = set(profiles) == set(once) and all(
        bytes(once[u]["d"]["B"]) == stored_form(profiles[u], 1, retention)["d"]["B"] for u in users
    )
    all_kb = [item_size(stored_form(p, int(once[u]["v"]["N"]), retention)) / KB for u, p in profiles.items()]
    batch_kb = [size / KB for size in new_sizes.values()]

    return {
        "events": len(events),
        "source": source.name,
        "batch_size": len(batch),
        "distinct_users_per_batch": len(users),
        "writes_per_batch": writes,
        "handler_reported_writes": result.writes,
        "cpu_us_per_event": round(cpu.total_us, 2),
        "cpu_classify_us_per_event": round(cpu.classify_us, 2),
        "cpu_fold_us_per_event": round(cpu.fold_us, 2),
        "cpu_archive_us_per_event": round(cpu.archive_us, 2),
        "cpu_trending_us_per_event": round(cpu.trending_us, 2),
        "cpu_us_per_event_best": round(cpu.best_us, 2),
        "cpu_us_per_event_fresh": round(cpu_fresh.total_us, 2),
        "reference_json_loads_us": round(reference_us(records[0]["Data"]), 2),
        "batch_ms_loopback": round(batch_ms, 1),
        "replay_ms_median": round(median(replay_ms), 1),
        "replay_identical": replay_identical,
        "profiles": len(profiles),
        "profile_kb_p95": round(percentile(all_kb, 0.95), 3),
        "profile_kb_max": round(max(all_kb), 3),
        "stored_kb_p95": round(percentile(batch_kb, 0.95), 3),
        "stored_kb_max": round(max(batch_kb), 3),
        "wcu_per_batch": wcu,
        "stored_equals_offline_fold": stored_equals_offline,
    }


def report(f: Mapping[str, Any]) -> None:
    print(
        f"ingest: {f['events']:,} REES46 events ({f['source']}) time-shifted to now; the batch is the newest "
        f"{f['batch_size']:,}, folded onto the profiles the {f['events'] - f['batch_size']:,} before it left"
    )
    print("(the loopback DynamoDB is moto on this machine: its milliseconds say little about AWS, its counts do)\n")
    split = (
        f"classify {f['cpu_classify_us_per_event']:.1f} + fold {f['cpu_fold_us_per_event']:.1f}"
        f" + archive {f['cpu_archive_us_per_event']:.1f} + trending {f['cpu_trending_us_per_event']:.1f}"
    )
    rows = [
        ("cpu_us_per_event", f"{f['cpu_us_per_event']:.1f}", "<= 30", f"{split} (median)"),
        ("cpu_us_per_event_best", f"{f['cpu_us_per_event_best']:.1f}", "", f"fastest of {REPETITIONS} repetitions"),
        ("cpu_us_per_event_fresh", f"{f['cpu_us_per_event_fresh']:.1f}", "", "onto empty profiles, nobody cached"),
        ("reference_json_loads_us", f"{f['reference_json_loads_us']:.1f}", "", "json.loads of one record: this CPU"),
        ("distinct_users_per_batch", str(f["distinct_users_per_batch"]), "", ""),
        (
            "writes_per_batch",
            str(f["writes_per_batch"]),
            "== users",
            f"item versions; handler: {f['handler_reported_writes']}",
        ),
        ("batch_ms_loopback", f"{f['batch_ms_loopback']:.0f}", "", "warm handler, one Lambda-shaped batch"),
        ("replay_ms_median", f"{f['replay_ms_median']:.0f}", "", f"{REPLAYS} redeliveries of the batch"),
        ("replay_identical", str(f["replay_identical"]).lower(), "true", "every stored item byte-identical"),
        ("profile_kb_p95", f"{f['profile_kb_p95']:.2f}", "<= 4", f"all {f['profiles']:,} profiles after all events"),
        ("profile_kb_max", f"{f['profile_kb_max']:.2f}", "", ""),
        ("stored_kb_p95", f"{f['stored_kb_p95']:.2f}", "", "the items the batch wrote"),
        ("stored_kb_max", f"{f['stored_kb_max']:.2f}", "", ""),
        ("wcu_per_batch", str(f["wcu_per_batch"]), "", "ceil(KB) per write, larger of old and new item"),
        ("stored_equals_offline_fold", str(f["stored_equals_offline_fold"]).lower(), "true", "the batch's items"),
    ]
    print(table(("figure", "value", "target", "note"), rows))
    met = {
        "cpu_us_per_event": f["cpu_us_per_event"] <= TARGETS["cpu_us_per_event"],
        "writes_per_batch": f["writes_per_batch"] == f["distinct_users_per_batch"],
        "profile_kb_p95": f["profile_kb_p95"] <= TARGETS["profile_kb_p95"],
    }
    print("\ntargets met: " + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in met.items()))


if __name__ == "__main__":
    sys.exit(main_of(run, report))
