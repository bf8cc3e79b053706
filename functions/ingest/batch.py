"""One Kinesis batch -> quarantine entries and one conditional profile write per user.

Failure semantics (ReportBatchItemFailures on a Kinesis stream): Lambda restarts a shard from the LOWEST
sequence number a response reports, and redelivers everything after it. So:
- a bad record is quarantined and counts as processed: it must never hold back the shard;
- if a user's profile write fails (throttle, timeout, persistent version conflict), every record of that
  user is reported; the redelivery starts at that user's earliest record, re-applies that user's events,
  and the per-shard watermark in every other user's profile makes their already-applied events no-ops;
- if the quarantine write fails, the quarantined records are reported, so they come back and are kept.
The end state of any such sequence equals one clean run, which the tests check.

An erased person's item is a tombstone (see store.profiles). The one profile read per batch returns it, and
their events and bad records are dropped and counted: replaying the stream after an erasure brings nothing
back. A write that races the erasure fails its version condition, re-reads, finds the tombstone, and drops.

After the profiles, the batch's accepted events go to the archive (ingest.archiving says what a Firehose outage
does); events that could be archived nowhere have their records reported like a failed write.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from ingest.archiving import ArchiveOutcome, Archiver, ArchiveUnavailable
from ingest.trending import TrendingWriter, TrendOutcome
from personalization.events import Event, EventType, NoConsent, Reason, RecordParser, Rejected
from personalization.profile import FoldSettings, PositionedEvent, fold, to_ms
from personalization.redaction import redact
from personalization.scrub import scrub_bytes, scrub_text
from store.profiles import Erased, ProfileStore, StoredProfile, VersionConflict
from store.quarantine import RAW_BYTES_KEPT, QuarantinedRecord, QuarantineStore


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one batch.

    A batch allocates some twenty objects per record that all live until it ends and form no reference cycles
    (refcounting frees them). Every collection in between would walk them all again, for nothing: that was
    a fifteenth of the batch's CPU. Cycles made meanwhile (say, by an exception's traceback) are collected by
    the first collection after the batch.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class RawRecord:
    """What the batch needs of a Kinesis record, independent of how Lambda wrapped it."""

    data: bytes
    shard: str
    seq: str
    arrived: datetime


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """A record to report in batchItemFailures (Lambda redelivers the shard from the lowest), and why."""

    seq: str
    error: Exception


@dataclass(slots=True)
class IngestResult:
    """What one batch did: counts for metrics and logs, and the records that must come back."""

    applied: int = 0
    skipped: int = 0
    dropped_no_consent: int = 0
    # Events and bad records of erased people, dropped while their tombstone lasts.
    dropped_erased: int = 0
    impressions: int = 0
    quarantined: dict[Reason, int] = field(default_factory=dict)
    users: int = 0
    writes: int = 0
    conflicts: int = 0
    failures: list[RecordFailure] = field(default_factory=list)
    archive: ArchiveOutcome = field(default_factory=ArchiveOutcome)
    trending: TrendOutcome = field(default_factory=TrendOutcome)

    @property
    def failed_seqs(self) -> list[str]:
        """The sequence numbers to report, in the order their records failed."""
        return [failure.seq for failure in self.failures]


@dataclass(frozen=True, slots=True)
class UserOutcome:
    applied: int
    skipped: int
    writes: int
    conflicts: int
    erased: int = 0
    # The events applied for the first time (above the profile's watermark before this fold): what trending
    # counts, so a redelivered batch adds nothing to it twice.
    fresh: list[PositionedEvent] = field(default_factory=list)


# A NamedTuple, not a frozen dataclass: as immutable, and a third of the cost to make, once per record.
class Classified(NamedTuple):
    record: RawRecord
    outcome: PositionedEvent | QuarantinedRecord | NoConsent


class Classifier:
    """The records of one batch -> events with pseudonymous ids (never the raw ones), quarantine entries, or
    no-consent drops. Made once per batch: the clock window is the same for all its records."""

    __slots__ = ("_parser", "_pepper")

    def __init__(self, pepper: bytes, now: datetime, retention: timedelta) -> None:
        self._pepper = pepper
        self._parser = RecordParser(now, retention, pepper)

    def classify(self, record: RawRecord) -> Classified:
        parsed = self._parser.parse(record.data)
        if type(parsed) is Event:  # nearly every record: checked first
            return Classified(record, PositionedEvent(parsed, record.shard, int(record.seq)))
        if isinstance(parsed, Rejected):
            return Classified(record, self._quarantined(record, parsed))
        return Classified(record, NoConsent())

    def _quarantined(self, record: RawRecord, rejected: Rejected) -> QuarantinedRecord:
        # The one redaction rule (personalization.redaction): no raw id in what is kept, record or message.
        redacted = redact(self._pepper, record.data)
        # No e-mail or IP address is kept either, wherever a broken sender put one.
        return QuarantinedRecord(
            rejected.reason.value,
            scrub_text(redacted.text(rejected.message)),
            scrub_bytes(redacted.raw[:RAW_BYTES_KEPT]),
            record.shard,
            record.seq,
            record.arrived,
            redacted.user,
        )


@dataclass
class BatchWriter:
    profiles: ProfileStore
    quarantine: QuarantineStore
    fold_settings: FoldSettings
    retention: timedelta
    max_conflict_retries: int
    max_write_workers: int = 16
    # None: no archive (a deployment without one, and tests of the fold alone).
    archiver: Archiver | None = None
    # None: no trending table.
    trending: TrendingWriter | None = None

    def write(self, classified: Sequence[Classified]) -> IngestResult:
        result = IngestResult()
        by_user: dict[str, list[tuple[RawRecord, PositionedEvent]]] = defaultdict(list)
        bad: list[tuple[RawRecord, QuarantinedRecord]] = []
        for item in classified:
            if isinstance(item.outcome, NoConsent):
                result.dropped_no_consent += 1
            elif isinstance(item.outcome, QuarantinedRecord):
                bad.append((item.record, item.outcome))
            else:
                # Serve's impressions too: the fold keeps what a person was shown and did not take (fatigue).
                if item.outcome.event.type is EventType.IMPRESSION:
                    result.impressions += 1
                by_user[item.outcome.event.user_id].append((item.record, item.outcome))
        stored = self._read(by_user, bad, result)
        if stored is None:
            # Reported already, except bad records that name nobody: no tombstone can concern them.
            self._quarantine([pair for pair in bad if pair[1].user is None], result)
            self._archive(classified, set(by_user), result)
            return result
        self._quarantine(self._not_erased(bad, stored, result), result)
        fresh: list[PositionedEvent] = []
        failed_users = self._fold_users(by_user, stored, result, fresh)
        erased = {user for user, found in stored.items() if type(found) is Erased}
        self._archive(classified, failed_users | erased, result)
        if self.trending is not None and fresh:
            result.trending = self.trending.add(fresh, datetime.now(UTC))
        return result

    def _archive(self, classified: Sequence[Classified], left_out: set[str], result: IngestResult) -> None:
        """The accepted events of everyone not `left_out` (erased people, failed writes) to the archive, in order."""
        if self.archiver is None:
            return
        items: list[tuple[RawRecord, Event]] = []
        for record, outcome in classified:
            if type(outcome) is PositionedEvent and outcome.event.user_id not in left_out:
                items.append((record, outcome.event))
        result.archive = self.archiver.archive([(record.data, event) for record, event in items])
        if result.archive.failed:
            exc = ArchiveUnavailable(result.archive.error or "archive unavailable")
            for index in result.archive.failed:
                self._fail(items[index][0], exc, result)

    def _read(
        self,
        by_user: dict[str, list[tuple[RawRecord, PositionedEvent]]],
        bad: list[tuple[RawRecord, QuarantinedRecord]],
        result: IngestResult,
    ) -> dict[str, StoredProfile | Erased] | None:
        """One BatchGetItem for every person the batch names (bad records too: they may be erased)."""
        users = set(by_user) | {entry.user for _, entry in bad if entry.user is not None}
        if not users:
            return {}
        try:
            return self.profiles.read_many(users)
        except Exception as exc:
            for pairs in by_user.values():
                for record, _ in pairs:
                    self._fail(record, exc, result)
            for record, entry in bad:
                if entry.user is not None:
                    self._fail(record, exc, result)
            return None

    @staticmethod
    def _not_erased(
        bad: list[tuple[RawRecord, QuarantinedRecord]],
        stored: dict[str, StoredProfile | Erased],
        result: IngestResult,
    ) -> list[tuple[RawRecord, QuarantinedRecord]]:
        kept = []
        for record, entry in bad:
            if entry.user is not None and isinstance(stored.get(entry.user), Erased):
                result.dropped_erased += 1
            else:
                kept.append((record, entry))
        return kept

    def _quarantine(self, bad: list[tuple[RawRecord, QuarantinedRecord]], result: IngestResult) -> None:
        if not bad:
            return
        try:
            self.quarantine.put_many(entry for _, entry in bad)
        except Exception as exc:  # any store failure: report the records so they are redelivered
            for record, _ in bad:
                self._fail(record, exc, result)
            return
        for _, entry in bad:
            reason = Reason(entry.reason)
            result.quarantined[reason] = result.quarantined.get(reason, 0) + 1

    def _fold_users(
        self,
        by_user: dict[str, list[tuple[RawRecord, PositionedEvent]]],
        stored: dict[str, StoredProfile | Erased],
        result: IngestResult,
        fresh: list[PositionedEvent],
    ) -> set[str]:
        """Fold and write every user's events; return the users whose write failed (their records are reported).
        The events applied for the first time by the writes that succeeded are added to `fresh`."""
        result.users = len(by_user)
        failed: set[str] = set()
        if not by_user:
            return failed
        # One conditional put per user; they are independent, and each waits on a network round trip, so
        # they run side by side. Results are gathered here, on the calling thread, in a fixed order.
        with ThreadPoolExecutor(max_workers=self.max_write_workers) as pool:
            futures = [
                (
                    user_id,
                    pairs,
                    pool.submit(self._fold_one, user_id, [event for _, event in pairs], stored.get(user_id)),
                )
                for user_id, pairs in by_user.items()
            ]
            for user_id, pairs, future in futures:
                try:
                    outcome = future.result()
                except Exception as exc:
                    failed.add(user_id)
                    for record, _ in pairs:
                        self._fail(record, exc, result)
                    continue
                result.applied += outcome.applied
                result.skipped += outcome.skipped
                result.writes += outcome.writes
                result.conflicts += outcome.conflicts
                result.dropped_erased += outcome.erased
                fresh += outcome.fresh
                if outcome.erased:
                    failed.add(user_id)  # erased while the batch ran: archive none of theirs
        return failed

    def _fold_one(
        self, user_id: str, events: list[PositionedEvent], current: StoredProfile | Erased | None
    ) -> UserOutcome:
        conflicts = 0
        # Inactivity is measured from the newest event of any kind (consent changes included), so a profile
        # that keeps only consent state expires like any other; a late batch never shortens the retention.
        newest = datetime.fromtimestamp(max(to_ms(p.event) for p in events) / 1000, tz=UTC) + self.retention
        for _attempt in range(self.max_conflict_retries):
            if isinstance(current, Erased):
                return UserOutcome(0, 0, 0, conflicts, erased=len(events))
            # Before the fold, which moves the watermarks (in place).
            fresh = self._fresh(events, current) if self.trending is not None else []
            # In place: the profile was decoded for this attempt alone, and a retry reads it again.
            profile, applied = fold(
                current.profile if current else None, user_id, events, self.fold_settings, in_place=True
            )
            if applied == 0:
                return UserOutcome(0, len(events), 0, conflicts)  # a pure redelivery: nothing to write
            expires = newest
            if current is not None and current.expires_at is not None:
                expires = max(expires, current.expires_at)
            try:
                self.profiles.save(profile, current.version if current else None, expires)
            except VersionConflict:
                conflicts += 1
                current = self.profiles.read(user_id, consistent=True)
                continue
            return UserOutcome(applied, len(events) - applied, 1, conflicts, fresh=fresh)
        raise VersionConflict(f"gave up after {self.max_conflict_retries} conflicting writes")

    @staticmethod
    def _fresh(events: list[PositionedEvent], current: StoredProfile | None) -> list[PositionedEvent]:
        if current is None:
            return events
        watermarks = current.profile.watermarks
        return [p for p in events if p.seq > watermarks.get(p.shard, -1)]

    @staticmethod
    def _fail(record: RawRecord, exc: Exception, result: IngestResult) -> None:
        result.failures.append(RecordFailure(record.seq, exc))
