"""`python -m bench.loop`: the learning loop on the bundled data, on the loopback stack, end to end.

Every bundled REES46 event, time-shifted so that the newest lands now, is put on the Kinesis stream and folded by the
real ingest handler, which archives what it accepts through Firehose (moto's writes straight to the loopback S3).
Five people are erased and the scheduled archive purge is run. The retraining job's use case (model_export
retrain) then runs three times against the archive: a first version (nothing live yet), a candidate on the full
window that the gate compares with it, and a candidate trained on events whose item ids were shuffled, which the
gate must refuse. Two serve processes answer fragments throughout the promotion.

Figures (the JSON object on the last line):
  accepted_events                 distinct event ids ingest accepted (validated, consented, pseudonymized)
  archived_events                 distinct event ids in the archive before the purge (must equal accepted_events)
  archive_duplicates              archived lines beyond the first copy of each event id (at-least-once delivery)
  erased_people                   people erased (through the erase function's use case, by raw id)
  erased_events_left_in_archive   archived lines naming any of them after the purge (must be 0): every object is
                                  scanned for their pseudonyms, anywhere in a line
  purged_events                   archived lines the purge removed (the erasure log's count)
  promotion                       the gate's decision on the full-window candidate ("promoted" or "rejected"); the
                                  live version it is compared with was trained the same way on the events before the
                                  latest (infra.local.scenario.before_latest)
  candidate_ndcg / live_ndcg      both versions' NDCG@10 on the held-out latest 12% of the span (20 minutes of the
                                  bundled slice; user split of evaluate)
  rejects_worse                   true when the candidate trained on shuffled item ids was refused by the gate
  switch_s                        seconds from the promotion (when the retraining use case returns, the pointer
                                  switched) until every serve process answers, for good, with the new
                                  X-Model-Version (null if they did not within SWITCH_TIMEOUT_S); serve re-reads
                                  models/current.json every MODEL_MAX_AGE_S (1 s on loopback)
  errors_5xx                      5xx answers from serve during the whole time it ran
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import bundled_events, main_of, table
from infra.local.scenario import LOCAL_SERVE, LocalProduct
from infra.local.serve_process import ServeProcess

if TYPE_CHECKING:
    import pandas as pd

    from ingest.batch import Classified, IngestResult

ERASED_PEOPLE = 5
SERVE_PROCESSES = 2
SWITCH_TIMEOUT_S = 30.0
SEED = 15


# -- serve, watched --------------------------------------------------------------------------------------


@dataclass
class Watch:
    """Requests fragments from each serve process in a loop; records every answer's time, status and version."""

    processes: list[ServeProcess]
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[list[tuple[float, int, str]]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Watch:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for process in self.processes:
            seen: list[tuple[float, int, str]] = []
            self.answers.append(seen)
            thread = threading.Thread(target=self._loop, args=(opener, process.url, seen), daemon=True)
            self.threads.append(thread)
            thread.start()
        return self

    def _loop(self, opener: urllib.request.OpenerDirector, url: str, seen: list[tuple[float, int, str]]) -> None:
        while not self.stop.is_set():
            try:
                with opener.open(f"{url}/v1/fragments/for-you?format=json&k=8", timeout=5) as response:
                    seen.append((time.monotonic(), response.status, response.headers.get("X-Model-Version", "")))
            except urllib.error.HTTPError as exc:
                seen.append((time.monotonic(), exc.code, exc.headers.get("X-Model-Version", "")))
            except OSError:
                seen.append((time.monotonic(), 599, ""))  # no answer at all counts as a server error
            time.sleep(0.05)

    def switched_at(self, version: str, since: float) -> float | None:
        """When the last process started answering with `version` for good (after `since`); None if one never did."""
        latest = since
        for seen in self.answers:
            after = [(at, answered) for at, _, answered in seen if at >= since]
            if not after or after[-1][1] != version:
                return None
            first_for_good = next(
                at for index, (at, _) in enumerate(after) if all(v == version for _, v in after[index:])
            )
            latest = max(latest, first_for_good)
        return latest

    def errors_5xx(self) -> int:
        return sum(status >= 500 for seen in self.answers for _, status, _ in seen)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


# -- the loop ---------------------------------------------------------------------------------------------


def shuffled_items(frame: pd.DataFrame) -> pd.DataFrame:
    """The same events with item ids permuted among themselves: what a broken upstream join would produce."""
    items = sorted(frame["item_id"].unique())
    permuted = items[:]
    random.Random(SEED).shuffle(permuted)
    mapping = dict(zip(items, permuted, strict=True))
    return frame.assign(item_id=frame["item_id"].map(mapping))


def archive_lines(product: LocalProduct) -> list[bytes]:
    from personalization.archive import ARCHIVE_PREFIX, object_lines

    s3 = product.stack.client("s3")
    bucket = product.stack.physical_names["ArchiveBucket"]
    lines: list[bytes] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=ARCHIVE_PREFIX):
        for entry in page.get("Contents", []):
            lines.extend(object_lines(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()))
    return lines


def ingest_all(product: LocalProduct, frame: pd.DataFrame, shift: timedelta) -> set[str]:
    """Replay the events through the stream and the real handler; the event ids ingest accepted."""
    from ingest.wiring import ingest_deps
    from personalization.profile import PositionedEvent

    accepted: set[str] = set()
    writer = ingest_deps().writer
    write = writer.write

    def recording(classified: Sequence[Classified]) -> IngestResult:
        result = write(classified)
        failed = set(result.failed_seqs)
        accepted.update(
            item.outcome.event.event_id
            for item in classified
            if isinstance(item.outcome, PositionedEvent) and item.record.seq not in failed
        )
        return result

    writer.write = recording  # type: ignore[method-assign]
    try:
        product.replay(frame, shift)
        product.ingest_backlog()
    finally:
        writer.write = write  # type: ignore[method-assign]
    return accepted


def erase_and_purge(product: LocalProduct, frame: pd.DataFrame) -> tuple[list[str], int]:
    """Erase a few people by raw id, run the scheduled purge once; their pseudonyms and the lines it removed."""
    from erase.usecase import EraseRequest, erase
    from erase.wiring import erase_deps
    from personalization.identity import pseudonymize
    from personalization.privacy import ErasurePath
    from purge.usecase import purge
    from purge.wiring import purge_deps

    os.environ.update({**product.stack.function_env("EraseFunction"), **product.stack.function_env("PurgeFunction")})
    erase_deps.cache_clear()
    purge_deps.cache_clear()
    counts = frame["user_id"].value_counts()
    candidates = sorted(str(user) for user in counts[counts >= 3].index)
    chosen = random.Random(SEED).sample(candidates, ERASED_PEOPLE)
    for user in chosen:
        erase(EraseRequest(user_id=user), ErasurePath.ADMIN, erase_deps(), datetime.now(UTC))
    receipt = purge(purge_deps(), datetime.now(UTC))
    return [pseudonymize(product.pepper, user) for user in chosen], receipt.events


def run() -> dict[str, Any]:
    from infra.local.scenario import before_latest, load_events
    from model_export.training.training import train_models

    source = bundled_events()
    timings: dict[str, float] = {}
    with LocalProduct() as product, tempfile.TemporaryDirectory(prefix="bench-loop-") as scratch_dir:
        scratch = Path(scratch_dir)
        started = time.perf_counter()
        product.start_stack()
        frame, shift = load_events(source)
        accepted = ingest_all(product, frame, shift)
        timings["ingest_s"] = time.perf_counter() - started

        lines = archive_lines(product)
        ids = Counter(json.loads(line)["event_id"] for line in lines)

        mark = time.perf_counter()
        erased, purged = erase_and_purge(product, frame)
        left = sum(any(p.encode() in line for p in erased) for line in archive_lines(product))
        timings["erase_purge_s"] = time.perf_counter() - mark

        mark = time.perf_counter()
        # The version the shop had before its latest events (nothing live yet: it must beat popularity)
        first = product.retrain(before_latest(frame), shift, scratch / "first")
        timings["first_version_s"] = time.perf_counter() - mark

        processes = [ServeProcess(dict(product.serve_env)) for _ in range(SERVE_PROCESSES)]
        watch: Watch | None = None
        try:
            for process in processes:
                process.start(timeout_s=60.0)
            watch = Watch(processes).start()
            mark = time.perf_counter()
            second = product.retrain(frame, shift, scratch / "second")
            timings["candidate_s"] = time.perf_counter() - mark
            promoted_at = time.monotonic()
            switched = None
            if second.decision.promote and second.candidate_version is not None:
                deadline = promoted_at + SWITCH_TIMEOUT_S
                while time.monotonic() < deadline and switched is None:
                    time.sleep(0.2)
                    switched = watch.switched_at(second.candidate_version, promoted_at)
            mark = time.perf_counter()
            worse = product.retrain(
                frame, shift, scratch / "worse", trainer=lambda rows: train_models(shuffled_items(rows))
            )
            timings["shuffled_candidate_s"] = time.perf_counter() - mark
            time.sleep(0.5)
            watch.finish()
            errors = watch.errors_5xx()
            requests = sum(len(seen) for seen in watch.answers)
        finally:
            if watch is not None:
                watch.finish()
            for process in processes:
                process.stop()
        timings["total_s"] = time.perf_counter() - started

    summary = second.summary()
    return {
        "source": source.name,
        "accepted_events": len(accepted),
        "archived_events": len(ids),
        "archive_duplicates": sum(ids.values()) - len(ids),
        "archived_equals_accepted": set(ids) == accepted,
        "erased_people": len(erased),
        "erased_events_left_in_archive": left,
        "purged_events": purged,
        "first_version": first.candidate_version,
        "first_promotion": first.summary()["promotion"],
        "promotion": summary["promotion"],
        "reason": summary["reason"],
        "candidate_version": second.candidate_version,
        "live_version": second.live_version,
        "candidate_ndcg": summary["candidate_ndcg"],
        "live_ndcg": summary["live_ndcg"],
        "rejects_worse": worse.summary()["promotion"] == "rejected",
        "worse_ndcg": worse.summary()["candidate_ndcg"],
        "worse_reason": worse.summary()["reason"],
        "switch_s": None if switched is None else round(switched - promoted_at, 2),
        "serve_processes": SERVE_PROCESSES,
        "model_max_age_s": int(LOCAL_SERVE["MODEL_MAX_AGE_S"]),
        "serve_requests": requests,
        "errors_5xx": errors,
        **{name: round(seconds, 1) for name, seconds in timings.items()},
    }


def report(f: Mapping[str, Any]) -> None:
    print(f"loop: {f['source']} replayed through the loopback stack: ingest -> archive -> erase + purge -> retrain")
    print("(moto's Firehose writes every PutRecordBatch at once; timings are this 2-core machine's)\n")
    rows = [
        ("accepted_events", f["accepted_events"], "", "distinct event ids ingest accepted"),
        ("archived_events", f["archived_events"], "== accepted", f"same ids {f['archived_equals_accepted']}"),
        ("archive_duplicates", f["archive_duplicates"], "", "lines beyond the first copy of an event id"),
        ("erased_people", f["erased_people"], "", f"purge removed {f['purged_events']} archived lines"),
        ("erased_events_left_in_archive", f["erased_events_left_in_archive"], "0", "every object scanned"),
        ("promotion", f["promotion"], "", f"{f['reason']}"),
        ("candidate_ndcg", f"{f['candidate_ndcg']:.4f}", "", f"{f['candidate_version']}"),
        ("live_ndcg", f"{f['live_ndcg']:.4f}", "", f"{f['live_version']} ({f['first_promotion']} with nothing live)"),
        ("rejects_worse", str(f["rejects_worse"]).lower(), "true", f"shuffled items: NDCG@10 {f['worse_ndcg']:.4f}"),
        (
            "switch_s",
            "none" if f["switch_s"] is None else f"{f['switch_s']:.2f}",
            f"<= {f['model_max_age_s']} + a request",
            f"{f['serve_processes']} serve processes re-reading current.json every {f['model_max_age_s']} s"
            + ("" if f["switch_s"] is not None else f": not switched within {SWITCH_TIMEOUT_S:.0f} s"),
        ),
        ("errors_5xx", f["errors_5xx"], "0", f"of {f['serve_requests']} fragment requests"),
        ("total_s", f"{f['total_s']:.0f}", "", f"ingest {f['ingest_s']}, first version {f['first_version_s']},"
         f" candidate {f['candidate_s']}, shuffled {f['shuffled_candidate_s']}"),
    ]  # fmt: skip
    print(table(("figure", "value", "target", "note"), rows))


if __name__ == "__main__":
    sys.exit(main_of(run, report))
