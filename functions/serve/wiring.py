"""Wiring for serve: what it builds once per container (before the SnapStart snapshot): config, stores, and the
rollout that holds the model version and rules in force."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from observability import logger
from serve.config import ServeConfig
from serve.impressions import ImpressionLog
from serve.live_rules import LiveRules
from serve.rollout import Rollout
from serve.snapshot import Snapshot, collector_paused
from serve.sources import Sources
from serve.trending import TrendingView
from store.artifacts import ArtifactStore, s3_client
from store.erasure import Eraser, connect_eraser
from store.parameters import get_secret
from store.profiles import ProfileStore, TableSettings
from store.rules_source import RulesSource
from store.stream import EventStream, StreamSettings
from store.trending import TrendingStore

# The GIL switch interval while init runs (io_first).
INIT_SWITCH_INTERVAL_S = 0.0005


@dataclass
class ServeState:
    config: ServeConfig
    profiles: ProfileStore
    rollout: Rollout
    impressions: ImpressionLog | None = None
    trending: TrendingView | None = None

    def identity_key(self) -> bytes | None:
        return identity_key(self.config)

    def serving(self) -> Serving:
        """What one request answers with: take it once per request."""
        return Serving(self.config, self.profiles, self.rollout.current(), self.trending)


@dataclass(frozen=True, slots=True)
class Serving:
    """The stores and the one snapshot a request took: catalog, models and rules of one version, never mixed."""

    config: ServeConfig
    profiles: ProfileStore
    snapshot: Snapshot
    trending: TrendingView | None = None

    @property
    def sources(self) -> Sources:
        """What the use case reads, of this snapshot alone."""
        snapshot = self.snapshot
        config = self.config
        return Sources(
            self.profiles,
            snapshot,
            snapshot.catalog,
            snapshot.rules,
            config.fold_settings,
            dismiss_ms=config.dismiss_ms,
            trending=self.trending,
        )


def identity_key(config: ServeConfig) -> bytes | None:
    try:
        return get_secret(config.identity_key_parameter)
    except Exception:
        logger.exception("identity key unavailable; every visitor is anonymous until it is")
        return None


@lru_cache(maxsize=1)
def serve_state() -> ServeState:
    config = ServeConfig.from_env()
    profiles = ProfileStore(
        TableSettings(
            config.profiles_table,
            config.region,
            connect_timeout_s=config.profile_connect_timeout_s,
            read_timeout_s=config.profile_read_timeout_s,
            max_retry_attempts=0,
        )
    )
    # One S3 client for the artifacts and the rules document (each client of a service costs its making), made
    # first and alone: every read of the model version waits for it.
    s3 = s3_client(config.region)
    artifacts = ArtifactStore(config.artifact_bucket, config.region, s3=s3)
    # The rollout paces the rules reads (every RULES_MAX_AGE_S); a cache of the source's own on top would only
    # delay a change by up to another max age.
    source = RulesSource(config.artifact_bucket, config.region, max_age_s=0, s3=s3)
    with collector_paused(), io_first(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="init") as pool:
        # While this thread reads the model version: the rules document, and what the first request would
        # otherwise set up (the table's client, the stream's, the identity key from SSM, cached).
        rules_read = pool.submit(source.fetch)
        connected = pool.submit(_connect, config, profiles)
        # Loads the live version and compiles the rules now, before the snapshot, not on the first request.
        rules = LiveRules(_first_from(rules_read, source.fetch))
        rollout = Rollout(artifacts, rules, config.model_max_age_s, config.rules_max_age_s)
        impressions = connected.result()
    return ServeState(config, profiles, rollout, impressions, trending_view(config))


def primes_at_init(environ: Mapping[str, str]) -> bool:
    """Whether init should also run a request or two through the app (serve.handler), paying at init what a
    first request would pay once. Only where init is off the visitor's path: SnapStart snapshots the primed
    container, provisioned concurrency runs init ahead of traffic. On an on-demand start the visitor waits for
    init and the first request alike, and priming costs more than it saves (init +17 ms, first request -7 ms,
    median of 15 interleaved cold starts). Lambda names the kind of start in AWS_LAMBDA_INITIALIZATION_TYPE."""
    return environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") in ("snap-start", "provisioned-concurrency")


def _first_from(started: Future[bytes], fetch: Callable[[], bytes]) -> Callable[[], bytes]:
    """`fetch`, whose first call takes the read already under way (its bytes, or its exception)."""
    first = [started]

    def read() -> bytes:
        return first.pop().result() if first else fetch()

    return read


@contextmanager
def io_first() -> Iterator[None]:
    """Threads that wait on the network take the GIL back within 0.5 ms instead of 5 while init runs.

    Init reads the model version (S3: every GET is a handful of blocking socket calls) while other threads make
    clients, CPU work that holds the GIL. Each time a read's socket is ready, CPython's default 5 ms switch
    interval could leave it waiting for the GIL up to that long: a 4.6 MB graph took 55 ms to arrive from the
    loopback S3 where it takes 25 with the shorter interval, and the graph is on init's critical path. Put back
    after init: a warm container's requests run one at a time, where the interval does not matter.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(INIT_SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _connect(config: ServeConfig, profiles: ProfileStore) -> ImpressionLog | None:
    """The clients a request uses besides the model version's, and the identity key (cached by get_secret)."""
    profiles.connect()
    impressions = None
    if config.stream_name:
        impressions = ImpressionLog(EventStream.connect(StreamSettings(config.stream_name, config.region)))
    identity_key(config)
    return impressions


@lru_cache(maxsize=1)
def serve_eraser() -> Eraser:
    """The stores of the privacy routes (a person's own access and erasure), built on first use: most containers
    answer fragments only. Not the fragment path's 20 ms timeouts: a person asking about their data can wait."""
    return connect_eraser(serve_state().config)


def trending_view(config: ServeConfig) -> TrendingView:
    """The trending rows, read with the profile read's tight timeouts (the slot falls back rather than wait)."""
    read_all = None
    if config.trending_table:
        store = TrendingStore(
            config.trending_table,
            config.region,
            connect_timeout_s=config.profile_connect_timeout_s,
            read_timeout_s=config.profile_read_timeout_s,
        )
        read_all = store.read_all
    half_life_ms = int(config.trending_half_life_hours * 3600 * 1000)
    return TrendingView(read_all, half_life_ms, config.trending_max_age_s)
