"""The exposure log: an impression event on the interaction stream for every personal fragment served.

Experiments are judged offline from these (`python -m model_export experiment`): what was shown, to whom
(pseudonymous id), under which variant, model and rules versions; clicks are the views that follow.

A page never waits on Kinesis for its exposure record: impressions are queued and a background thread sends
them in PutRecords batches. The price, said plainly: on Lambda that thread only runs while the container is
thawed, so what is queued when a container is retired is lost (at most the last few requests' worth); the
queue is bounded, and what it drops or fails to send is counted (ImpressionsDropped / ImpressionsFailed).
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from observability import count, logger
from personalization.events import Consent, Event, EventType, Impression
from personalization.fragments import Fragment
from personalization.provenance import impression_key, impression_signature
from store.stream import EventStream, NotWritten, StreamRecord

MAX_QUEUED = 10_000
BATCH = 500
# How long the sender waits for more impressions to share one PutRecords call.
LINGER_S = 0.05
# Serve only logs fragments of people whose profile exists (analytics consent) with personalization consent.
CONSENTED = Consent(analytics=True, personalization=True)


def impression_event(pseudonym: str, fragment: Fragment, now: datetime, identity_key: bytes) -> Event:
    """The impression of one served fragment, signed so that a report can tell it from a forged one."""
    event = Event(
        event_id=uuid.uuid4().hex,
        pseudonymous=True,
        user_id=pseudonym,
        type=EventType.IMPRESSION,
        ts=now,
        consent=CONSENTED,
        impression=Impression(
            slot=fragment.slot,
            items=[item.id for item in fragment.items],
            experiment=fragment.experiment,
            variant=fragment.variant,
            model_version=fragment.model_version,
            rules_version=fragment.rules_version,
        ),
    )
    assert event.impression is not None
    signature = impression_signature(impression_key(identity_key), event)
    return event.model_copy(update={"impression": event.impression.model_copy(update={"signature": signature})})


class ImpressionLog:
    def __init__(self, stream: EventStream, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._stream = stream
        self._clock = clock
        self._queue: queue.Queue[StreamRecord] = queue.Queue(maxsize=MAX_QUEUED)
        self._idle = threading.Condition()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def record(self, pseudonym: str, fragment: Fragment, identity_key: bytes) -> None:
        """Queue one impression; never blocks and never raises."""
        try:
            event = impression_event(pseudonym, fragment, self._clock(), identity_key)
            self._ensure_sender()
            with self._idle:
                self._in_flight += 1
            self._queue.put_nowait(StreamRecord(event.to_json_bytes(), pseudonym))
        except queue.Full:
            self._done(1)
            self.dropped += 1
            count("ImpressionsDropped")
        except Exception:
            logger.exception("impression not recorded")

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything queued has been sent (or failed); False on timeout. For tests and the demo."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _ensure_sender(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_forever, name="impressions", daemon=True)
                self._thread.start()

    def _done(self, n: int) -> None:
        with self._idle:
            self._in_flight -= n
            self._idle.notify_all()

    def _send_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + LINGER_S
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get(timeout=max(deadline - time.monotonic(), 0)))
                except queue.Empty:
                    break
            try:
                result = self._stream.put(batch)
                failed = sum(isinstance(outcome, NotWritten) for outcome in result.outcomes)
            except Exception:
                logger.exception("impressions not sent")
                failed = len(batch)
            self.sent += len(batch) - failed
            self.failed += failed
            if failed:
                count("ImpressionsFailed", failed)
            self._done(len(batch))
