"""The local product, assembled step by step: what `make demo` narrates and what the browser test drives.

    with LocalProduct() as product:
        product.start_stack()
        product.publish_model(frame)
        product.publish_rules()
        product.replay(frame, shift)
        product.ingest_backlog()
        product.start_serve()
        product.start_live_ingest()
        product.start_collector()
        product.start_edge()          # product.edge.url is the shop

Each step is a method so that the demo can time and narrate it; `storefront()` runs them all for tests.
Leaving the block stops everything that was started, newest first, by pid, and gives os.environ back: the
ingest handler runs in this process (as the event source mapping would call it), so the process environment
is pointed at the loopback stack while the product runs.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from infra.local.poller import KinesisPoller, PollStats
from infra.local.serve_process import ServeProcess, free_port
from infra.local.stack import LocalStack, LocalStackError

if TYPE_CHECKING:
    import pandas as pd

    from model_export.publishing.retrain import RetrainResult, Trainer

ROOT = Path(__file__).resolve().parents[2]
RULES_EXAMPLE = ROOT / "rules" / "example.json"
SAMPLE_EVENTS = ROOT / "tests" / "data" / "rees46_head2000.csv"
# Handler logs at warning level, metrics (EMF lines) off the console: the demo's output is for people.
QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
LOCAL_SERVE = {
    # A republished rules document shows within a second.
    "RULES_MAX_AGE_S": "1",
    # So does a promoted (or rolled-back) model version.
    "MODEL_MAX_AGE_S": "1",
    # The template's 20/30 ms profile-read budget is for DynamoDB; moto, single-process and closing every
    # connection, misses it as soon as a page asks for three fragments at once while ingest writes.
    "PROFILE_CONNECT_TIMEOUT_S": "0.5",
    "PROFILE_READ_TIMEOUT_S": "1.0",
}
# The retraining job on loopback holds out the latest eighth of the data's span (20 minutes of the bundled
# slice's under three hours; a day of a month-long dataset, as the job does in AWS).
HOLDOUT_SHARE = 0.12
STARTUP_TIMEOUT_S = 60.0


@dataclass
class LiveIngest:
    """The event source mapping, live: a thread feeding new stream records to the ingest handler."""

    poller: KinesisPoller
    batch_size: int
    window_s: float
    _stop: threading.Event
    _thread: threading.Thread
    stats: PollStats | None = None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class LocalProduct:
    """Stack, model, rules, ingest, serve, collector and edge on loopback; `stop()` ends all of them."""

    def __init__(self) -> None:
        self._stack: LocalStack | None = None
        self._saved_env: dict[str, str] | None = None
        self._poller: KinesisPoller | None = None
        self._stoppers: list[Callable[[], None]] = []
        self.serve: ServeProcess | None = None
        self.collector: ServeProcess | None = None
        self.edge: ServeProcess | None = None
        self.live: LiveIngest | None = None
        self.model_version: str | None = None
        self.rules_version: str | None = None
        # Chosen up front so the edge can be started before the apps it forwards to.
        self._ports = {"serve": free_port(), "collect": free_port()}

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalProduct:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop everything started, newest first; each stop runs even when an earlier one fails."""
        errors: list[BaseException] = []
        while self._stoppers:
            try:
                self._stoppers.pop()()
            except Exception as exc:  # keep stopping the rest; report the first failure after
                errors.append(exc)
        if self._saved_env is not None:
            os.environ.clear()
            os.environ.update(self._saved_env)
            self._saved_env = None
            self._forget_ingest_config()
        if errors:
            raise errors[0]

    @staticmethod
    def _forget_ingest_config() -> None:
        # The handler's config and secrets are cached per container; this process's next user may be another
        # stack (a test session), which must not inherit this one's.
        from ingest.wiring import ingest_deps
        from store import parameters
        from store.tables import forget_bindings

        ingest_deps.cache_clear()
        forget_bindings()
        parameters.clear_cache()

    # -- the stack and its data ----------------------------------------------------------------------

    @property
    def stack(self) -> LocalStack:
        if self._stack is None:
            raise LocalStackError("start_stack() first")
        return self._stack

    def start_stack(self) -> LocalStack:
        self._stack = LocalStack().start()
        self._stoppers.append(self._stack.stop)
        self._saved_env = dict(os.environ)
        self._stack.apply_env(os.environ)
        os.environ.update(self.ingest_env)
        self._forget_ingest_config()  # whatever this process cached belongs to another stack
        return self._stack

    @property
    def ingest_env(self) -> dict[str, str]:
        return {**self.stack.function_env("IngestFunction"), **QUIET}

    @property
    def serve_env(self) -> dict[str, str]:
        return {**self.stack.function_env("ServeFunction"), **LOCAL_SERVE, **QUIET}

    @property
    def collect_env(self) -> dict[str, str]:
        if "CollectFunction" in self.stack.template.resources:
            return {**self.stack.function_env("CollectFunction"), **QUIET}
        # Until the template declares the collector: what its config reads, from the resources it would use.
        return {**self.serve_env, "STREAM_NAME": self.stream, **QUIET}

    @property
    def stream(self) -> str:
        return self.stack.physical_names["EventStream"]

    @property
    def bucket(self) -> str:
        return self.serve_env["ARTIFACT_BUCKET"]

    @property
    def pepper(self) -> bytes:
        return self.stack.secret_values[self.ingest_env["PEPPER_PARAMETER"]].encode()

    @property
    def identity_key(self) -> bytes:
        return self.stack.secret_values[self.serve_env["IDENTITY_KEY_PARAMETER"]].encode()

    def template_default(self, parameter: str) -> str:
        return self.stack.template.parameter_default(parameter)

    def publish_model(self, frame: pd.DataFrame) -> str:
        """Train on canonical events and publish the version to the artifact bucket (current points at it)."""
        from model_export.publishing.folder import train_version
        from store.artifacts import ArtifactStore

        with tempfile.TemporaryDirectory() as models:
            folder = train_version(frame, Path(models))
            self.model_version = ArtifactStore(self.bucket, self.stack.region).publish(folder)
        return self.model_version

    def publish_rules(self, path: Path = RULES_EXAMPLE) -> str | None:
        """Validate the rules document as serve will and make it current; None when there is no document."""
        if not path.exists():
            return None
        from personalization.rules import parse_document
        from store.rules_source import RulesSource

        body = path.read_bytes()
        version = parse_document(body).version
        RulesSource(self.bucket, self.stack.region, max_age_s=1).publish(version, body)
        self.rules_version = version
        return version

    def replay(self, frame: pd.DataFrame, shift: timedelta, on_chunk: Callable[[int], None] = lambda n: None) -> None:
        """Put the events on the stream, time-shifted, partitioned by pseudonym (as the collector would)."""
        from infra.local.producer import put_events
        from model_export.data.canonical import to_events

        put_events(self.stack.client("kinesis"), self.stream, to_events(frame, shift), self.pepper, on_chunk)

    def _ingest_poller(self, on_batch: Callable[[int], None] = lambda n: None) -> KinesisPoller:
        if self._poller is None:
            from ingest.handler import lambda_handler

            batch_size = int(self.template_default("IngestBatchSize"))
            self._poller = KinesisPoller(self.stack.client("kinesis"), self.stream, lambda_handler, batch_size)
        self._poller.on_batch = on_batch
        return self._poller

    def ingest_backlog(self, on_batch: Callable[[int], None] = lambda n: None) -> PollStats:
        """Fold everything on the stream now through the real handler; returns when the stream is read."""
        return self._ingest_poller(on_batch).drain()

    # -- the learning loop ----------------------------------------------------------------------------

    def retrain(
        self, frame: pd.DataFrame, shift: timedelta, out: Path, trainer: Trainer | None = None
    ) -> RetrainResult:
        """The retraining job's use case (what the Glue job runs) on the archive ingest wrote, over the whole span
        of `frame` (as replayed with `shift`), its latest HOLDOUT_SHARE held out; the gate decides."""
        from model_export.publishing.retrain import RetrainConfig, retrain
        from model_export.training.training import train_models
        from store.artifacts import ArtifactStore
        from store.profiles import ProfileStore, TableSettings

        start, end = (
            frame["timestamp"].min().to_pydatetime() + shift,
            frame["timestamp"].max().to_pydatetime() + shift,
        )
        span = end - start + timedelta(minutes=2)
        config = RetrainConfig(
            archive=f"s3://{self.stack.physical_names['ArchiveBucket']}/events",
            days=span / timedelta(days=1),
            out=out,
            holdout_days=span * HOLDOUT_SHARE / timedelta(days=1),
            until=end + timedelta(minutes=1),
            region=self.stack.region,
        )
        erased = frozenset(
            ProfileStore(TableSettings(self.ingest_env["PROFILES_TABLE"], self.stack.region)).erased_ids()
        )
        store = ArtifactStore(self.bucket, self.stack.region)
        result = retrain(config, store, trainer=trainer or train_models, erased=erased)
        if result.decision.promote and result.candidate_version is not None:
            self.model_version = result.candidate_version
        return result

    # -- running parts -------------------------------------------------------------------------------

    def start_live_ingest(self) -> LiveIngest:
        """Keep folding new records within about a second, batched as template.yaml's mapping says."""
        poller = self._ingest_poller()
        batch_size = int(self.template_default("IngestBatchSize"))
        window_s = float(self.template_default("IngestBatchWindowSeconds"))
        stop = threading.Event()
        live: LiveIngest

        def loop() -> None:
            live.stats = poller.run_forever(stop, batch_size, window_s)

        thread = threading.Thread(target=loop, name="live-ingest", daemon=True)
        live = LiveIngest(poller, batch_size, window_s, stop, thread)
        thread.start()
        self.live = live
        self._stoppers.append(live.stop)
        return live

    def _start(self, process: ServeProcess) -> ServeProcess:
        self._stoppers.append(process.stop)
        # Generous: on a busy 2-core machine serve's imports and model load alone can take 15 s.
        return process.start(timeout_s=STARTUP_TIMEOUT_S)

    def start_serve(self) -> ServeProcess:
        """Serve loads the current model version at start: publish it first."""
        self.serve = self._start(ServeProcess(self.serve_env, port=self._ports["serve"]))
        return self.serve

    def start_collector(self) -> ServeProcess | None:
        """The collector app, once functions/collect provides one; None until then."""
        if not (ROOT / "functions" / "collect" / "app.py").exists():
            return None
        process = ServeProcess(
            self.collect_env, port=self._ports["collect"], app="collect.app:app", ready_path="/openapi.json"
        )
        self.collector = self._start(process)
        return self.collector

    def start_edge(self, country: str | None = None, time_zone: str | None = None) -> ServeProcess:
        """The shop's origin; needs only the other apps' addresses, so it may start before them. `country` and
        `time_zone` are what it says of every viewer, as CloudFront would (else the Accept-Language region and
        UTC). The first edge started is `self.edge`; another (a test's viewers elsewhere) runs beside it."""
        env = {
            **self.stack.aws_env(),
            "EDGE_SERVE_URL": f"http://127.0.0.1:{self._ports['serve']}",
            "EDGE_COLLECT_URL": f"http://127.0.0.1:{self._ports['collect']}",
            "ARTIFACT_BUCKET": self.bucket,
            "EDGE_COUNTRY": country or "",
            "EDGE_TIME_ZONE": time_zone or "",
        }
        process = self._start(ServeProcess(env, app="infra.local.edge:app_from_env", factory=True, ready_path="/"))
        if self.edge is None:
            self.edge = process
        return process


def before_latest(frame: pd.DataFrame) -> pd.DataFrame:
    """The events a shop had before its latest ones: what its first model version learned from, so that the
    retraining job, held out on the latest, has something newer to learn (and a fair live version to beat)."""
    start, end = frame["timestamp"].min(), frame["timestamp"].max()
    cutoff = end - (end - start) * HOLDOUT_SHARE * 1.25
    return frame[frame["timestamp"] < cutoff].reset_index(drop=True)


def load_events(path: Path) -> tuple[pd.DataFrame, timedelta]:
    """Canonical events from any supported file, and the shift that makes the last one land now."""
    from model_export.data.datasets import load_any

    frame = load_any(path)
    return frame, datetime.now(UTC) - frame["timestamp"].max().to_pydatetime()


@contextmanager
def storefront(events: Path = SAMPLE_EVENTS, history: bool = False) -> Iterator[LocalProduct]:
    """The whole product with the shop in front, for tests: yields once `product.edge.url` answers.

    With `history`, the events are also replayed into profiles (as the demo does); new visitors do not need
    them, so tests skip the wait. The collector and the edge start while the model trains.
    """
    with LocalProduct() as product, ThreadPoolExecutor(2, thread_name_prefix="start") as pool:
        product.start_stack()
        early: list[Future[ServeProcess | None]] = [pool.submit(product.start_collector)]
        early.append(pool.submit(product.start_edge))
        frame, shift = load_events(events)
        product.publish_model(frame)
        product.publish_rules()
        if history:
            product.replay(frame, shift)
            product.ingest_backlog()
        product.start_serve()
        product.start_live_ingest()
        for started in early:
            started.result()
        yield product
