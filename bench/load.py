"""`python -m bench.load`: the collector and serve under concurrent visitors on loopback, and every event counted.

The product runs as the demo and the storefront test build it (infra/local/scenario.py's LocalProduct): the
loopback stack (moto), a model version trained on the committed REES46 sample and published, rules/example.json,
serve and the collector as uvicorn processes, and the real ingest handler fed by the live poller
(`KinesisPoller.run_forever` with template.yaml's IngestBatchSize and IngestBatchWindowSeconds) in a thread of
this process, as Lambda's event source mapping would call it. Serve runs with the scenario's relaxed profile-read
timeouts (LOCAL_SERVE: the template's 20/30 ms budget is for DynamoDB, and moto misses it under any load).

The load comes from simulated visitors in a child process (asyncio + httpx.AsyncClient), so that the ingest
thread's hold on this process's GIL never shows up as client latency, and so that the clients cost as little
CPU as possible: on a 2-core machine they compete with moto, serve, the collector and ingest, and the CPU table
says how the cores were shared. Clients are closed-loop (the next request leaves when the previous answer is
read, no think time): latency includes the queueing that `--clients` concurrent requests cause.
- Collector clients: one visitor after another; a visitor makes 1..MAX_POSTS posts of 1..`--events-per-post`
  events (view_product, add_to_cart, purchase of items the published catalog lists in the shop, consent to
  analytics and personalization, an event id of its own). The first post brings back the signed `pz_id` cookie;
  later posts send it back. Each visitor keeps its own cookie jar by hand: the cookie is `Secure`, and httpx's
  jar (by the cookie rules) withholds it over plain http, where a browser on 127.0.0.1 still sends it.
- Serve clients: GET /v1/fragments/for-you?format=json&k=8 as a recent visitor (their `pz_id` and `pz_seg`
  cookies) or, ANONYMOUS_SHARE of the time, as nobody.
Before the clock starts, one visitor warms both apps up (a POST, then fragments until theirs is personal): each
app builds its AWS clients and runs its models on its first requests, and sixteen first requests at once would
each pay that. The warm-up's figures are reported apart.

After `--seconds` the clients finish their requests in flight and stop; the live poller drains the stream
(bounded by DRAIN_TIMEOUT_S) and stops. Then every accepted event is checked against the profiles: for each
visitor (pseudonym from the signed cookie, verified with the stack's identity key), the sum of the profile's
per-type counts must equal the events the collector accepted for them (counts are not capped, and every
applied event adds exactly one). A visitor sends at most MAX_POSTS x `--events-per-post` events, kept within
the profile's last EVENT_ID_LIMIT event-id digests, so each accepted id is also looked up by digest, and the
stream is read back to tell a collector loss (accepted, never written) from an ingest loss (written, not folded).

moto's Kinesis numbers a shard's next record max + 1 without a lock (its Shard.put_record says "not safe for
concurrency"): two PutRecords racing on one shard got one sequence number and the second record replaced the
first, both acknowledged. This bench found it (a few dozen of ~8,500 events a minute); the local stack now starts
moto through infra/local/moto_main.py, which serializes that method, and tests/integration/test_local_stack.py
shows the race without it. If events_lost is ever non-zero again, the diagnosis below tells the stream's side
(accepted_not_in_stream) from ingest's (in_stream_not_folded).

Figures (the JSON object on the last line):
  collect_rps / collect_events_per_s   POSTs answered 202, and events accepted, per second of load
  collect_p50_ms / collect_p99_ms      POST latency as the client saw it (every answered request)
  serve_rps / serve_p50_ms / serve_p99_ms   fragments answered 2xx per second, and their latency
  errors_5xx                           5xx answers from either app (target 0)
  errors_other                         other non-2xx answers (4xx, ...); errors_transport: no answer at all
  events_accepted                      events the collector answered `accepted`
  events_lost / events_duplicated      per visitor, shortfall / excess of sum(profile.counts) against the
                                       accepted events (plus any `failed` event found written anyway), summed
  seconds / clients                    the load's length and the clients of each kind (collector and serve)
  trending_freshness_p95_s             after the load, with the live poller still running: seconds from a burst
                                       of purchases of one item to that item in the trending slot's top 3
                                       (bench.trending_burst), p95 over the bursts (target <= 5)
  trending_wcu_per_batch               trending write units per ingest batch (row versions summed x the row's
                                       write units, over the poller's batches): the bound is one write per shard
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import median, percentile, print_figures, table
from names import IDENTITY_COOKIE, PERSONALIZATION_HEADER
from personalization.fragments import Reason

if TYPE_CHECKING:
    import httpx

    from infra.local.scenario import LocalProduct
    from personalization.profile import Profile

DEFAULT_SECONDS = 60.0
DEFAULT_CLIENTS = 8
DEFAULT_EVENTS_PER_POST = 5
# A visitor's posts before the next visitor arrives: a short browsing session.
MAX_POSTS = 8
ANONYMOUS_SHARE = 0.2
# Serve clients pick among the visitors seen most recently, as a page asks for fragments while its visitor is
# active.
RECENT_VISITORS = 256
EVENT_MIX = (("view_product", 0.75), ("add_to_cart", 0.18), ("purchase", 0.07))
# Share of a visitor's events on items of their favourite category: a profile with a clear interest.
HOME_CATEGORY_SHARE = 0.7
CONSENT = {"analytics": True, "personalization": True}
FRAGMENT_PATH = "/v1/fragments/for-you"
FRAGMENT_QUERY = {"format": "json", "k": "8"}
MODE = PERSONALIZATION_HEADER
PERSONALIZED = "personalized"
# An experiment arm that answers a known person without the model (rules/example.json's popular arm).
EXPERIMENT_ARM = "experiment;"
REQUEST_TIMEOUT_S = 10.0
WARMUP_VISITOR = -1  # the warm-up visitor's number: their events are checked, not counted in the rates
# Ingest folds within its batching window (1 s); a cold serve and a busy machine take a few seconds more.
WARMUP_TIMEOUT_S = 20.0
# Serve's impression sender lingers 50 ms per PutRecords batch: its last records land shortly after the last
# fragment was served.
SETTLE_S = 1.0
DRAIN_TIMEOUT_S = 60.0
# Ready-to-start and result messages from the load process; its startup (imports) and result pickling are slow
# on a busy machine, never minutes.
CHILD_MARGIN_S = 90.0
WINDOW_S = 10.0
LAG_TICK_S = 0.02
SEED = 20_261_124
# Issue 20: a burst of purchases in the trending slot's top 3 within this, on loopback with the template's window.
TRENDING_FRESHNESS_TARGET_S = 5.0


def personal(note: str) -> bool:
    """Whether serve answered for the person: the model (`personalized`) or their experiment arm's baseline."""
    return note == PERSONALIZED or note.startswith(EXPERIMENT_ARM)


# -- what the load process is given and gives back (picklable: it crosses a process boundary) ----------------


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    category: str | None
    price: float | None


@dataclass(frozen=True)
class LoadPlan:
    collect_url: str
    serve_url: str
    items: tuple[Item, ...]
    # Each category the shop lists, as indexes into `items` (best-sellers first).
    categories: tuple[tuple[int, ...], ...]
    seconds: float
    collect_clients: int
    serve_clients: int
    events_per_post: int
    anonymous_share: float = ANONYMOUS_SHARE
    seed: int = SEED


@dataclass(slots=True, eq=False)  # eq=False: a visitor is itself, whatever their jar and ledger hold
class Visitor:
    """One simulated browser: its cookie jar and what the collector answered for each event it sent."""

    number: int
    session_id: str
    home: tuple[int, ...]
    cookies: dict[str, str] = field(default_factory=dict)
    accepted: list[tuple[str, str]] = field(default_factory=list)  # (event id, type)
    failed: list[str] = field(default_factory=list)  # valid but not written, as answered: may be written anyway
    unanswered: list[str] = field(default_factory=list)  # sent, no answer (transport error): outcome unknown
    rejected: int = 0
    id_mismatches: int = 0

    @property
    def token(self) -> str | None:
        return self.cookies.get(IDENTITY_COOKIE)


@dataclass(frozen=True, slots=True)
class Call:
    kind: str  # "collect" or "serve"
    at_s: float  # when it was sent, seconds into the load
    ms: float
    status: int | None  # None: no answer (transport error, timeout)
    note: str  # serve: X-Personalization; no answer: the exception's name


@dataclass
class LoadResult:
    started_wall: float
    duration_s: float
    calls: list[Call]
    warmup: list[Call]
    visitors: list[Visitor]
    loop_lag_ms: list[float]
    cpu_s: float
    load_average_end: float


# -- visitors' behaviour (pure: unit-tested) ----------------------------------------------------------------


def parse_set_cookies(headers: Iterable[str]) -> dict[str, str]:
    """name -> value of each Set-Cookie header (attributes dropped), as a browser stores them."""
    jar: dict[str, str] = {}
    for header in headers:
        pair = header.split(";", 1)[0]
        name, sep, value = pair.partition("=")
        if sep and name.strip():
            jar[name.strip()] = value.strip()
    return jar


def cookie_header(cookies: Mapping[str, str]) -> dict[str, str]:
    return {"cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())} if cookies else {}


def new_visitor(number: int, rng: random.Random, plan: LoadPlan) -> Visitor:
    home = rng.choice(plan.categories) if plan.categories else tuple(range(len(plan.items)))
    return Visitor(number, uuid.UUID(int=rng.getrandbits(128)).hex, home)


def next_events(visitor: Visitor, rng: random.Random, plan: LoadPlan) -> list[dict[str, Any]]:
    """1..events_per_post events of the visitor's, each with a fresh event id; the collector stamps the time."""
    kinds = [kind for kind, _ in EVENT_MIX]
    weights = [weight for _, weight in EVENT_MIX]
    events = []
    for _ in range(rng.randint(1, plan.events_per_post)):
        if visitor.home and rng.random() < HOME_CATEGORY_SHARE:
            item = plan.items[rng.choice(visitor.home)]
        else:
            item = plan.items[rng.randrange(len(plan.items))]
        event: dict[str, Any] = {
            "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "type": rng.choices(kinds, weights)[0],
            "item_id": item.id,
            "quantity": 1,
            "session_id": visitor.session_id,
            "context": {"device": "desktop", "page": f"/product/{item.id}"},
            "consent": CONSENT,
        }
        if item.category is not None:
            event["category"] = item.category
        if item.price is not None:
            event["price"] = item.price
        events.append(event)
    return events


def record_answer(visitor: Visitor, sent: Sequence[Mapping[str, Any]], status: int, body: Any) -> None:
    """File each event under what the collector said of it (202/400/503 carry one result per event)."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        visitor.rejected += len(sent) if 400 <= status < 500 else 0
        if status >= 500:
            visitor.failed += [str(event["event_id"]) for event in sent]
        return
    for result in results:
        event = sent[int(result["index"])]
        event_id = str(event["event_id"])
        if result.get("event_id") not in (None, event_id):
            visitor.id_mismatches += 1  # the collector must keep the client's id: that is what makes retries safe
        if result["status"] == "accepted":
            visitor.accepted.append((event_id, str(event["type"])))
        elif result["status"] == "failed":
            visitor.failed.append(event_id)
        else:
            visitor.rejected += 1


# -- the load process ----------------------------------------------------------------------------------------


class Load:
    def __init__(self, plan: LoadPlan, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """`transport` replaces the network (tests)."""
        self.plan = plan
        self._transport = transport
        self.calls: list[Call] = []
        self.warmup: list[Call] = []
        self.visitors: list[Visitor] = []
        self.recent: deque[Visitor] = deque(maxlen=RECENT_VISITORS)
        self.loop_lag_ms: list[float] = []
        self.started = 0.0
        self.deadline = 0.0

    def _client(self, base_url: str) -> httpx.AsyncClient:
        import httpx

        # One keep-alive connection per client, like a browser tab; trust_env=False: loopback never goes through
        # a proxy from the environment. No cookie jar: visitors carry their own (see the module docstring).
        return httpx.AsyncClient(
            base_url=base_url,
            timeout=REQUEST_TIMEOUT_S,
            trust_env=False,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            transport=self._transport,
        )

    async def post(self, client: httpx.AsyncClient, visitor: Visitor, events: list[dict[str, Any]]) -> Call:
        """One POST /v1/events as the visitor; their jar takes the cookie, their ledger each event's answer."""
        import httpx

        sent = time.monotonic()
        try:
            response = await client.post("/v1/events", json={"events": events}, headers=cookie_header(visitor.cookies))
        except httpx.HTTPError as exc:
            visitor.unanswered += [str(event["event_id"]) for event in events]
            return Call("collect", sent - self.started, _ms(sent), None, type(exc).__name__)
        call = Call("collect", sent - self.started, _ms(sent), response.status_code, "")
        visitor.cookies.update(parse_set_cookies(response.headers.get_list("set-cookie")))
        try:
            body = response.json()
        except ValueError:
            body = None
        record_answer(visitor, events, response.status_code, body)
        return call

    async def fetch(self, client: httpx.AsyncClient, visitor: Visitor | None) -> Call:
        """One for-you fragment, as the visitor (their cookies) or as nobody."""
        import httpx

        sent = time.monotonic()
        try:
            jar = {} if visitor is None else visitor.cookies
            response = await client.get(FRAGMENT_PATH, params=FRAGMENT_QUERY, headers=cookie_header(jar))
        except httpx.HTTPError as exc:
            return Call("serve", sent - self.started, _ms(sent), None, type(exc).__name__)
        call = Call("serve", sent - self.started, _ms(sent), response.status_code, response.headers.get(MODE, "?"))
        if visitor is not None:
            # Serve sets the signed segment cookie once it knows the segment; the browser sends it back.
            visitor.cookies.update(parse_set_cookies(response.headers.get_list("set-cookie")))
        return call

    async def warm_up(self) -> None:
        """Before the clock starts: one visitor's first POST, an anonymous fragment, then theirs until personal.

        Each app builds its AWS clients, reads its secrets and runs its models for the first time on its first
        requests; a dozen first requests at once would each do it (seconds on 2 cores) and the figures would
        mix that cold start into the steady state. These calls are reported apart.
        """
        rng = random.Random(self.plan.seed - 1)
        visitor = new_visitor(WARMUP_VISITOR, rng, self.plan)
        self.visitors.append(visitor)
        async with self._client(self.plan.collect_url) as collect, self._client(self.plan.serve_url) as serve:
            self.warmup.append(await self.post(collect, visitor, next_events(visitor, rng, self.plan)))
            self.warmup.append(await self.fetch(serve, None))
            if visitor.token is None:
                return
            self.recent.append(visitor)
            until = time.monotonic() + WARMUP_TIMEOUT_S
            while time.monotonic() < until:
                call = await self.fetch(serve, visitor)
                self.warmup.append(call)
                if personal(call.note):
                    return
                await asyncio.sleep(0.1)

    async def collect_client(self, index: int) -> None:
        rng = random.Random(self.plan.seed * 1_000 + index)
        async with self._client(self.plan.collect_url) as client:
            while time.monotonic() < self.deadline:
                visitor = new_visitor(len(self.visitors), rng, self.plan)
                self.visitors.append(visitor)
                for _ in range(rng.randint(1, MAX_POSTS)):
                    if time.monotonic() >= self.deadline:
                        break
                    call = await self.post(client, visitor, next_events(visitor, rng, self.plan))
                    self.calls.append(call)
                    await asyncio.sleep(0)  # let the other clients run even if the answer came without a wait
                    if visitor.token is None:
                        # No cookie (refused as a whole, or no answer): the next post would mint another visitor.
                        break
                    if call.status is not None and visitor not in self.recent:
                        self.recent.append(visitor)  # from now on serve clients may ask fragments as them

    async def serve_client(self, index: int) -> None:
        rng = random.Random(self.plan.seed * 1_000 + 500 + index)
        async with self._client(self.plan.serve_url) as client:
            while time.monotonic() < self.deadline:
                anonymous = not self.recent or rng.random() < self.plan.anonymous_share
                self.calls.append(await self.fetch(client, None if anonymous else rng.choice(self.recent)))
                await asyncio.sleep(0)  # as above: an in-memory transport (tests) never suspends

    async def lag_probe(self) -> None:
        """How late the event loop wakes up: client-measured latency is inflated by about this much."""
        while time.monotonic() < self.deadline:
            before = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            self.loop_lag_ms.append(max(time.monotonic() - before - LAG_TICK_S, 0.0) * 1000)

    async def progress(self) -> None:
        shown = 0
        while True:
            await asyncio.sleep(max(min(WINDOW_S, self.deadline - time.monotonic()), 0.05))
            if time.monotonic() >= self.deadline:
                return
            now = time.monotonic() - self.started
            kinds = Counter(call.kind for call in self.calls[shown:])
            shown = len(self.calls)
            accepted = sum(len(visitor.accepted) for visitor in self.visitors)
            print(
                f"  {now:5.0f} s: {kinds['collect']:,} posts and {kinds['serve']:,} fragments in the last "
                f"{WINDOW_S:.0f} s; {accepted:,} events accepted, {len(self.visitors):,} visitors so far",
                flush=True,
            )

    async def run(self, on_start: Callable[[], None] = lambda: None) -> LoadResult:
        """Warm up, call `on_start`, then load for plan.seconds."""
        self.started = time.monotonic()
        await self.warm_up()
        on_start()
        started_wall = time.time()
        cpu = time.process_time()
        self.started = time.monotonic()
        self.deadline = self.started + self.plan.seconds
        tasks = [self.collect_client(i) for i in range(self.plan.collect_clients)]
        tasks += [self.serve_client(i) for i in range(self.plan.serve_clients)]
        await asyncio.gather(*tasks, self.lag_probe(), self.progress())
        duration = time.monotonic() - self.started
        return LoadResult(
            started_wall,
            duration,
            self.calls,
            self.warmup,
            self.visitors,
            self.loop_lag_ms,
            time.process_time() - cpu,
            os.getloadavg()[0],
        )


def _ms(sent: float) -> float:
    return (time.monotonic() - sent) * 1000


def load_process(plan: LoadPlan, conn: Connection) -> None:
    """The child's entry point: "ready" once imported, "started" once warm (the parent samples every process's
    CPU then, and again at the end), then the result."""
    try:
        import httpx  # noqa: F401  # imported before "ready": its import is not part of the load's CPU

        conn.send("ready")
        conn.send(asyncio.run(Load(plan).run(on_start=lambda: conn.send("started"))))
    except BaseException as exc:  # the parent must hear of it rather than wait for the timeout
        conn.send(RuntimeError(f"load process failed: {type(exc).__name__}: {exc}"))
        raise
    finally:
        conn.close()


# -- the parent: the product, the stream, the profiles -------------------------------------------------------


class Folded:
    """Records the live poller has handed to the handler and checkpointed (its on_batch callback)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.records += n


@dataclass
class StreamTail:
    """Every record on the stream, read from the start of each shard and then from where it left off."""

    kinesis: Any
    stream: str
    iterators: dict[str, str | None] = field(default_factory=dict)
    events: dict[str, tuple[str, str]] = field(default_factory=dict)  # event id -> (type, partition key)
    records: int = 0
    unreadable: int = 0
    # moto numbers each shard's records 1, 2, 3, ...: a missing number would be a record deleted after the fact.
    sequences: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shards = self.kinesis.describe_stream(StreamName=self.stream)["StreamDescription"]["Shards"]
        for shard in shards:
            self.iterators[shard["ShardId"]] = self.kinesis.get_shard_iterator(
                StreamName=self.stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]

    @property
    def sequence_gaps(self) -> int:
        """Numbers missing between each shard's first and last record (meaningful for moto's 1, 2, 3, ...)."""
        return sum(max(seqs) - min(seqs) + 1 - len(set(seqs)) for seqs in self.sequences.values() if seqs)

    def read_new(self) -> int:
        """Read what arrived since the last call; how many records that was."""
        new = 0
        for shard, iterator in self.iterators.items():
            while iterator:
                page = self.kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                iterator = page.get("NextShardIterator")
                for record in page["Records"]:
                    new += 1
                    self.sequences.setdefault(shard, []).append(int(record["SequenceNumber"]))
                    try:
                        event = json.loads(record["Data"])
                        self.events[str(event["event_id"])] = (str(event["type"]), record["PartitionKey"])
                    except (ValueError, KeyError, TypeError):
                        self.unreadable += 1
                if not page["Records"]:
                    break
            self.iterators[shard] = iterator
        self.records += new
        return new


@dataclass(frozen=True)
class Drain:
    backlog_at_stop: int
    seconds: float
    drained: bool


def drain(tail: StreamTail, folded: Folded, timeout_s: float, settle_s: float = SETTLE_S) -> Drain:
    """Wait until the live poller has checkpointed every record on the stream, and no new one has come."""
    stopped = time.monotonic()
    time.sleep(settle_s)
    tail.read_new()
    backlog = tail.records - folded.records
    while time.monotonic() - stopped < timeout_s:
        if folded.records >= tail.records and tail.read_new() == 0:
            return Drain(backlog, time.monotonic() - stopped, True)
        time.sleep(0.25)
    return Drain(backlog, time.monotonic() - stopped, False)


def proc_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far, from /proc (None where it cannot be read)."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces: fields start after it
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shop_items(product: LocalProduct) -> tuple[tuple[Item, ...], tuple[tuple[int, ...], ...], str]:
    """What the shop lists of the live model version (the storefront's catalog), and its categories."""
    from infra.local.shop_catalog import shop_catalog
    from personalization.catalog import Catalog
    from store.artifacts import ArtifactStore

    version = ArtifactStore(product.bucket, product.stack.region).load()
    listed = shop_catalog(Catalog.from_bytes(version.catalog_data), version.version)
    items = tuple(Item(str(row["id"]), row.get("category"), row.get("price")) for row in listed["items"])
    position = {item.id: index for index, item in enumerate(items)}
    categories = tuple(
        tuple(position[item_id] for item_id in category["item_ids"] if item_id in position)
        for category in listed["categories"]
    )
    return items, tuple(c for c in categories if c), version.version


def run_load(plan: LoadPlan, pids: Mapping[str, int | None]) -> tuple[LoadResult, dict[str, float | None]]:
    """The load in a child process (spawned: a fresh interpreter, no inherited threads or sockets), and the CPU
    seconds each of `pids` spent while it ran (the child measures its own)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=load_process, args=(plan, sender), name="bench-load", daemon=True)
    child.start()
    sender.close()
    try:
        for expected, within_s in (("ready", CHILD_MARGIN_S), ("started", WARMUP_TIMEOUT_S + CHILD_MARGIN_S)):
            message = receiver.recv() if receiver.poll(within_s) else None
            if isinstance(message, BaseException):
                raise message
            if message != expected:
                raise RuntimeError(f"the load process did not say {expected!r} within {within_s:.0f} s")
        before = {name: proc_cpu_s(pid) for name, pid in pids.items()}
        if not receiver.poll(plan.seconds + CHILD_MARGIN_S):
            raise RuntimeError("the load process did not finish in time")
        result = receiver.recv()
        after = {name: proc_cpu_s(pid) for name, pid in pids.items()}
        if isinstance(result, BaseException):
            raise result
        if not isinstance(result, LoadResult):
            raise RuntimeError(f"unexpected message from the load process: {type(result).__name__}")
        child.join(timeout=10)
        return result, {name: _difference(after[name], before[name]) for name in pids}
    finally:
        receiver.close()
        if child.is_alive():
            child.terminate()
            child.join(timeout=5)
            if child.is_alive():
                child.kill()
                child.join(timeout=5)


def _difference(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


# -- checking every accepted event ---------------------------------------------------------------------------


@dataclass
class Check:
    """What check() found, summed over visitors."""

    visitors: int = 0
    visitors_without_identity: int = 0
    visitors_without_profile: int = 0
    visitors_mismatched: int = 0
    accepted: int = 0
    applied: int = 0
    lost: int = 0
    duplicated: int = 0
    failed_but_written: int = 0
    unanswered_but_written: int = 0
    # By event id (exact while a visitor's events fit in the profile's recent-id digests):
    checked_by_id: int = 0
    missing_by_id: int = 0
    # Where a missing event went missing:
    accepted_not_in_stream: int = 0
    in_stream_not_folded: int = 0
    examples: list[str] = field(default_factory=list)


def check(
    visitors: Sequence[Visitor],
    pseudonym_of: Callable[[str], str | None],
    profiles: Mapping[str, Profile],
    in_stream: Mapping[str, tuple[str, str]],
    id_limit: int,
) -> Check:
    """Each visitor's accepted events against their profile: counts first, then ids, then the stream."""
    from personalization.profile import event_id_digest

    result = Check()
    for visitor in visitors:
        if not (visitor.accepted or visitor.failed or visitor.unanswered):
            continue
        result.visitors += 1
        result.accepted += len(visitor.accepted)
        pseudonym = pseudonym_of(visitor.token) if visitor.token else None
        if pseudonym is None:
            result.visitors_without_identity += 1
            result.lost += len(visitor.accepted)
            continue
        profile = profiles.get(pseudonym)
        if profile is None and visitor.accepted:
            result.visitors_without_profile += 1
        # A `failed` or unanswered event may have been written all the same (docs/collector.md); the stream says.
        failed_written = sum(event_id in in_stream for event_id in visitor.failed)
        unanswered_written = sum(event_id in in_stream for event_id in visitor.unanswered)
        result.failed_but_written += failed_written
        result.unanswered_but_written += unanswered_written
        expected = len(visitor.accepted) + failed_written + unanswered_written
        counts = profile.counts if profile is not None else {}
        applied = sum(counts.values())
        result.applied += applied
        result.lost += max(expected - applied, 0)
        result.duplicated += max(applied - expected, 0)
        by_type = Counter(kind for _, kind in visitor.accepted)
        by_type.update(in_stream[e][0] for e in [*visitor.failed, *visitor.unanswered] if e in in_stream)
        if dict(by_type) != {kind: n for kind, n in counts.items() if n}:
            result.visitors_mismatched += 1
            if len(result.examples) < 5:
                result.examples.append(f"{pseudonym[:12]}...: sent {dict(by_type)}, profile counts {counts}")
        if expected <= id_limit:
            digests = set(profile.event_ids) if profile is not None else set()
            for event_id, _ in visitor.accepted:
                result.checked_by_id += 1
                if event_id_digest(event_id) not in digests:
                    result.missing_by_id += 1
                    if event_id in in_stream:
                        result.in_stream_not_folded += 1
                    else:
                        result.accepted_not_in_stream += 1
        else:
            # Past the profile's recent ids (only with a larger --events-per-post) the stream side is still known.
            result.accepted_not_in_stream += sum(event_id not in in_stream for event_id, _ in visitor.accepted)
    return result


# -- the run -------------------------------------------------------------------------------------------------


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _timeline(calls: Sequence[Call], duration_s: float) -> list[tuple[str, float, float, float, float, int]]:
    """Per WINDOW_S of the load (the last window takes the stragglers sent in its final moments)."""
    rows = []
    windows = max(round(duration_s / WINDOW_S), 1)
    for window in range(windows):
        start = window * WINDOW_S
        end = duration_s if window == windows - 1 else start + WINDOW_S
        inside = [c for c in calls if start <= c.at_s < end or (window == windows - 1 and c.at_s >= end)]
        posts = [c for c in inside if c.kind == "collect" and c.status == 202]
        served = [c.ms for c in inside if c.kind == "serve" and c.status is not None and 200 <= c.status < 300]
        errors = sum(c.status is None or not 200 <= c.status < 300 for c in inside)
        span = max(end - start, 1e-9)
        rows.append(
            (
                f"{start:.0f}-{end:.0f} s",
                round(len(posts) / span, 1),
                round(len(served) / span, 1),
                round(median(served), 1) if served else 0.0,
                round(percentile(served, 0.99), 1) if served else 0.0,
                errors,
            )
        )
    return rows


def run(seconds: float, clients: int, events_per_post: int) -> dict[str, Any]:
    from infra.local.scenario import LOCAL_SERVE, SAMPLE_EVENTS, LocalProduct, load_events

    bench_started = time.perf_counter()
    steps: list[tuple[str, float]] = []

    def step(name: str, since: float) -> float:
        now = time.perf_counter()
        steps.append((name, now - since))
        print(f"  {name}: {now - since:.1f} s", flush=True)
        return now

    figures: dict[str, Any] = {}
    print("setting up the product on loopback", flush=True)
    with LocalProduct() as product, ThreadPoolExecutor(1, thread_name_prefix="start") as pool:
        t = time.perf_counter()
        stack = product.start_stack()
        t = step("stack (moto_server from template.yaml)", t)
        # As storefront() does: the collector starts while the model trains.
        collector_started = pool.submit(product.start_collector)
        frame, _ = load_events(SAMPLE_EVENTS)
        product.publish_model(frame)
        product.publish_rules()
        t = step(f"train + publish a model version on {SAMPLE_EVENTS.name}, publish the rules", t)
        serve = product.start_serve()
        collector = collector_started.result()
        if collector is None:
            raise RuntimeError("functions/collect/app.py is missing: there is no collector to load")
        t = step("serve and collector up (uvicorn)", t)
        live = product.start_live_ingest()
        folded = Folded()
        # Assigned after the thread started; nothing is on the stream yet, so no batch goes uncounted.
        live.poller.on_batch = folded.add
        items, categories, model_version = shop_items(product)
        plan = LoadPlan(
            collect_url=collector.url,
            serve_url=serve.url,
            items=items,
            categories=categories,
            seconds=seconds,
            collect_clients=clients,
            serve_clients=clients,
            events_per_post=events_per_post,
        )
        setup_s = time.perf_counter() - bench_started
        print(
            f"load: {clients} collector + {clients} serve clients for {seconds:.0f} s, {len(items)} shop items in "
            f"{len(categories)} categories, model {model_version}",
            flush=True,
        )
        pids = {
            "moto_server": stack.pid,
            "serve (uvicorn)": serve.pid,
            "collector (uvicorn)": collector.pid,
            "bench: ingest poller + handler": os.getpid(),
        }
        load_average = os.getloadavg()[0]
        load, cpu = run_load(plan, pids)
        t = step("warm-up and load", t)

        from bench.trending_burst import freshness, third_score, write_cost

        # The live poller still runs: a burst of purchases per trial, until the item tops the trending slot
        trending_table = product.ingest_env["TRENDING_TABLE"]
        half_life_ms = int(float(product.ingest_env["TRENDING_HALF_LIFE_HOURS"]) * 3600 * 1000)
        dynamodb = stack.client("dynamodb")
        trending_s = freshness(
            collector.url,
            serve.url,
            [item.id for item in items],
            lambda: third_score(dynamodb, trending_table, half_life_ms),
        )
        t = step(f"trending freshness ({len(trending_s)} bursts)", t)

        tail = StreamTail(stack.client("kinesis"), product.stream)
        drained = drain(tail, folded, DRAIN_TIMEOUT_S)
        live.stop()
        t = step("drain the stream through the live poller", t)
        poll = live.stats

        from personalization.identity import verify_token
        from personalization.profile import EVENT_ID_LIMIT
        from store.profiles import ProfileStore, TableSettings

        key = product.identity_key
        now = int(time.time())
        tokens = {v.token for v in load.visitors if v.token}
        pseudonyms = {token: verify_token(key, token, now) for token in tokens}
        reader = ProfileStore(TableSettings(product.serve_env["PROFILES_TABLE"], stack.region))
        stored = reader.get_many({p for p in pseudonyms.values() if p is not None})
        profiles = {user: found.profile for user, found in stored.items()}
        quarantine = stack.client("dynamodb").scan(TableName=product.ingest_env["QUARANTINE_TABLE"], Select="COUNT")
        result = check(load.visitors, pseudonyms.get, profiles, tail.events, EVENT_ID_LIMIT)
        step("read the profiles and check every accepted event", t)
        figures["quarantined"] = int(quarantine["Count"])
        batches = poll.invocations if poll else 0
        figures.update(write_cost(stack.client("dynamodb"), product.ingest_env["TRENDING_TABLE"], batches))
        figures["trending_freshness_p95_s"] = round(percentile(trending_s, 0.95), 2) if trending_s else None
        figures["trending_freshness_max_s"] = round(max(trending_s), 2) if trending_s else None
        figures["trending_bursts"] = len(trending_s)
        figures["trending_freshness_s"] = [round(s, 2) for s in trending_s]

    # -- figures ---------------------------------------------------------------------------------------------
    duration = load.duration_s
    posts = [c for c in load.calls if c.kind == "collect"]
    answered_posts = [c.ms for c in posts if c.status is not None]
    fetched = [c for c in load.calls if c.kind == "serve" and c.status is not None and 200 <= c.status < 300]
    served = [c.ms for c in fetched]
    everything = [*load.warmup, *load.calls]
    statuses = Counter((c.kind, c.status, c.note if c.status is None else "") for c in everything)
    errors_5xx = sum(n for (_, status, _), n in statuses.items() if status is not None and status >= 500)
    errors_other = sum(
        n for (_, status, _), n in statuses.items() if status is not None and not 200 <= status < 300 and status < 500
    )
    errors_transport = sum(n for (_, status, _), n in statuses.items() if status is None)
    modes = Counter(c.note for c in fetched)
    visitors = [v for v in load.visitors if v.accepted or v.failed or v.unanswered or v.rejected]
    accepted_in_load = sum(len(v.accepted) for v in visitors if v.number != WARMUP_VISITOR)
    in_stream_types = Counter(kind for kind, _ in tail.events.values())
    # Serve queues one impression for every personalized fragment; what the stream lacks of them was lost on the
    # way (serve counts failures as ImpressionsFailed) or by the stream itself.
    personalized = sum(c.kind == "serve" and personal(c.note) and c.status == 200 for c in everything)
    warm_post = next((c for c in load.warmup if c.kind == "collect"), None)
    warm_personal = next((c for c in load.warmup if personal(c.note)), None)

    figures.update(
        {
            "collect_rps": round(_rate(sum(c.status == 202 for c in posts), duration), 1),
            "collect_events_per_s": round(_rate(accepted_in_load, duration), 1),
            "collect_p50_ms": round(median(answered_posts), 2) if answered_posts else None,
            "collect_p99_ms": round(percentile(answered_posts, 0.99), 2) if answered_posts else None,
            "serve_rps": round(_rate(len(served), duration), 1),
            "serve_p50_ms": round(median(served), 2) if served else None,
            "serve_p99_ms": round(percentile(served, 0.99), 2) if served else None,
            # A person's answers, either arm of the experiment: the model's and the popular arm's.
            "serve_personalized_share": round(sum(n for m, n in modes.items() if personal(m)) / len(served), 3)
            if served
            else None,
            "serve_degraded": sum(n for mode, n in modes.items() if Reason.PROFILE_UNAVAILABLE in mode),
            "errors_5xx": errors_5xx,
            "errors_other": errors_other,
            "errors_transport": errors_transport,
            "events_accepted": result.accepted,
            "events_rejected": sum(v.rejected for v in visitors),
            "events_failed": sum(len(v.failed) for v in visitors),
            "events_failed_but_written": result.failed_but_written + result.unanswered_but_written,
            "events_lost": result.lost,
            "events_duplicated": result.duplicated,
            "events_missing_by_id": result.missing_by_id,
            "events_checked_by_id": result.checked_by_id,
            "accepted_not_in_stream": result.accepted_not_in_stream,
            "in_stream_not_folded": result.in_stream_not_folded,
            "event_id_mismatches": sum(v.id_mismatches for v in visitors),
            "visitors": result.visitors,
            "visitors_mismatched": result.visitors_mismatched,
            "visitors_without_profile": result.visitors_without_profile,
            "visitors_without_identity": result.visitors_without_identity,
            "stream_records": tail.records,
            "stream_sequence_gaps": tail.sequence_gaps,
            "stream_unreadable": tail.unreadable,
            "impressions_expected": personalized,
            "impressions_in_stream": in_stream_types.get("impression", 0),
            "ingest_backlog_at_stop": drained.backlog_at_stop,
            "drain_s": round(drained.seconds, 1),
            "drained": drained.drained,
            "poller_invocations": poll.invocations if poll else None,
            "poller_errors": poll.errors if poll else None,
            "poller_reported_failures": poll.reported_failures if poll else None,
            "poller_given_up": poll.given_up if poll else None,
            "ingest_batch_size": live.batch_size,
            "ingest_window_s": live.window_s,
            "warmup_first_post_ms": round(warm_post.ms, 1) if warm_post else None,
            "warmup_first_personalized_ms": round(warm_personal.ms, 1) if warm_personal else None,
            "warmup_event_to_personalized_s": round(warm_personal.at_s - warm_post.at_s, 2)
            if warm_post and warm_personal
            else None,
            "loadgen_loop_lag_p99_ms": round(percentile(load.loop_lag_ms, 0.99), 2) if load.loop_lag_ms else None,
            "cpu_cores": {
                name: None if spent is None else round(spent / duration, 2)
                for name, spent in {**cpu, "load generator": load.cpu_s}.items()
            },
            "load_average_1m": [round(load_average, 2), round(load.load_average_end, 2)],
            "serve_timeouts_relaxed": dict(LOCAL_SERVE),
            "setup_s": round(setup_s, 1),
            "bench_s": round(time.perf_counter() - bench_started, 1),
            "seconds": round(duration, 1),
            "clients": clients,
            "events_per_post": events_per_post,
        }
    )
    figures["_tables"] = {
        "steps": steps,
        "statuses": statuses,
        "modes": modes,
        "timeline": _timeline(load.calls, duration),
        "examples": result.examples,
    }
    return figures


def report(f: dict[str, Any]) -> None:
    tables = f.pop("_tables")
    print(
        f"\nload: {f['clients']} collector clients and {f['clients']} serve clients, closed-loop (no think time), "
        f"for {f['seconds']:.1f} s after a warm-up; 1..{f['events_per_post']} events per post, at most {MAX_POSTS} "
        "posts per visitor"
    )
    relaxed = ", ".join(f"{name}={value}" for name, value in f["serve_timeouts_relaxed"].items())
    print(
        f"serve runs with the scenario's relaxed settings for moto ({relaxed}; the template's profile-read budget "
        "is 20/30 ms, meant for DynamoDB)"
    )
    start, end = f["load_average_1m"]
    print(
        "the loopback AWS is moto (one process, closes every connection): its speed bounds every figure here; the "
        "load generator shares the cores with moto, serve, the collector and ingest, and with whatever else runs "
        f"on this machine (1-minute load average {start:.2f} before the load, {end:.2f} at its end, "
        f"{os.cpu_count()} CPUs)\n"
    )
    print(table(("step", "seconds"), [(name, round(s, 1)) for name, s in tables["steps"]]))
    print()
    zero = "== 0"
    impressions_missing = f["impressions_expected"] - f["impressions_in_stream"]
    rows = [
        ("collect_rps", f"{f['collect_rps']:,.1f}", "", "POSTs answered 202 per second"),
        ("collect_events_per_s", f"{f['collect_events_per_s']:,.1f}", "", "events accepted per second"),
        ("collect_p50_ms", _num(f["collect_p50_ms"]), "", "client-side, every answered POST"),
        ("collect_p99_ms", _num(f["collect_p99_ms"]), "", ""),
        ("serve_rps", f"{f['serve_rps']:,.1f}", "", "fragments answered 2xx per second"),
        ("serve_p50_ms", _num(f["serve_p50_ms"]), "", "client-side, 2xx answers"),
        ("serve_p99_ms", _num(f["serve_p99_ms"]), "", f"personalized share {f['serve_personalized_share']}"),
        ("serve_degraded", str(f["serve_degraded"]), zero, f"fallback; reason={Reason.PROFILE_UNAVAILABLE}"),
        ("errors_5xx", str(f["errors_5xx"]), zero, "both apps, warm-up included"),
        ("errors_other", str(f["errors_other"]), zero, "non-2xx below 500 (statuses below)"),
        ("errors_transport", str(f["errors_transport"]), zero, f"no answer within {REQUEST_TIMEOUT_S:.0f} s"),
        ("events_accepted", f"{f['events_accepted']:,}", "", f"{f['visitors']:,} visitors, warm-up included"),
        ("events_lost", str(f["events_lost"]), zero, "shortfall of sum(profile.counts) per visitor"),
        ("events_duplicated", str(f["events_duplicated"]), zero, "excess of sum(profile.counts) per visitor"),
        (
            "events_missing_by_id",
            str(f["events_missing_by_id"]),
            zero,
            f"digest not in profile.event_ids; {f['events_checked_by_id']:,} checked",
        ),
        ("  accepted_not_in_stream", str(f["accepted_not_in_stream"]), zero, "acknowledged, not on the stream"),
        ("  in_stream_not_folded", str(f["in_stream_not_folded"]), zero, "on the stream, not in the profile"),
        ("visitors_mismatched", str(f["visitors_mismatched"]), zero, "per-type counts differ from accepted"),
        ("events_failed", str(f["events_failed"]), "", f"answered failed; {f['events_failed_but_written']} written"),
        ("events_rejected", str(f["events_rejected"]), zero, "the bench sends only valid events"),
        ("event_id_mismatches", str(f["event_id_mismatches"]), zero, "answered with another id than sent"),
        ("quarantined", str(f["quarantined"]), zero, "records ingest quarantined"),
        ("stream_records", f"{f['stream_records']:,}", "", f"sequence gaps {f['stream_sequence_gaps']}"),
        (
            "impressions_in_stream",
            f"{f['impressions_in_stream']:,}",
            f"{f['impressions_expected']:,}",
            "one per personal fragment served (either experiment arm)"
            + (f"; {impressions_missing} missing" if impressions_missing else ""),
        ),
        ("ingest_backlog_at_stop", f"{f['ingest_backlog_at_stop']:,}", "", "records not yet folded when load ended"),
        (
            "trending_freshness_p95_s",
            _num(f["trending_freshness_p95_s"]),
            f"<= {TRENDING_FRESHNESS_TARGET_S:.0f}",
            f"{f['trending_bursts']} bursts of purchases until top 3; max {_num(f['trending_freshness_max_s'])}",
        ),
        (
            "trending_wcu_per_batch",
            _num(f["trending_wcu_per_batch"]),
            "",
            f"{f['trending_writes']} writes to {f['trending_rows']} row(s), {f['trending_row_kb_max']} KB at most",
        ),
        ("drain_s", f"{f['drain_s']:.1f}", f"<= {DRAIN_TIMEOUT_S:.0f}", f"drained: {str(f['drained']).lower()}"),
        (
            "poller",
            f"{f['poller_invocations']} calls",
            "",
            f"errors {f['poller_errors']}, reported failures {f['poller_reported_failures']}, "
            f"given up {f['poller_given_up']}; batch {f['ingest_batch_size']}, window {f['ingest_window_s']} s",
        ),
        ("warmup_first_post_ms", _num(f["warmup_first_post_ms"]), "", "the collector's first request (cold)"),
        ("warmup_first_personalized_ms", _num(f["warmup_first_personalized_ms"]), "", "serve's first personal one"),
        (
            "warmup_event_to_personalized_s",
            _num(f["warmup_event_to_personalized_s"]),
            "",
            "first POST sent to first personal fragment",
        ),
        ("loadgen_loop_lag_p99_ms", _num(f["loadgen_loop_lag_p99_ms"]), "", "client-side latencies include this"),
    ]
    print(table(("figure", "value", "target", "note"), rows))

    print()
    status_rows = [
        (kind, "no answer" if status is None else str(status), note or "", n)
        for (kind, status, note), n in sorted(tables["statuses"].items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
    ]
    print(table(("app", "status", "error", "requests"), status_rows))
    print()
    print(table(("X-Personalization (2xx fragments under load)", "requests"), tables["modes"].most_common()))
    print()
    print(
        table(
            ("window", "collect rps", "serve rps", "serve p50 ms", "serve p99 ms", "non-2xx"),
            tables["timeline"],
        )
    )
    print()
    cpu_rows = [(name, "n/a" if cores is None else f"{cores:.2f}") for name, cores in f["cpu_cores"].items()]
    total = sum(cores for cores in f["cpu_cores"].values() if cores is not None)
    cpu_rows.append(("total", f"{total:.2f}"))
    print(table(("process (during the load)", "cores used"), cpu_rows))
    if tables["examples"]:
        print("\nvisitors whose profile counts differ from what was accepted (first few):")
        for line in tables["examples"]:
            print(f"  {line}")
    if f["accepted_not_in_stream"] and not f["in_stream_not_folded"]:
        print(
            f"\n{f['accepted_not_in_stream']} accepted event(s) never reached the stream, and everything on the stream "
            "was folded: the loss is between the collector's PutRecords and moto's shard, not in ingest."
        )
        if not f["stream_sequence_gaps"]:
            print(
                "  No sequence number is missing on any shard, so nothing stored was dropped afterwards: the lost "
                "records were never kept, as when two concurrent puts get the same number and the second replaces "
                "the first (moto's Shard.put_record takes max + 1 without a lock: 'not safe for concurrency')."
            )
        if impressions_missing > 0:
            print(
                f"  Serve's impressions, written by another process to the same stream, lack {impressions_missing} too."
            )
    met = {
        "errors_5xx": f["errors_5xx"] == 0,
        "events_lost": f["events_lost"] == 0,
        "events_duplicated": f["events_duplicated"] == 0,
        "drained": bool(f["drained"]),
        "trending_freshness_p95_s": f["trending_freshness_p95_s"] is not None
        and f["trending_freshness_p95_s"] <= TRENDING_FRESHNESS_TARGET_S,
    }
    print("\ntargets met: " + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in met.items()))


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="length of the load (default 60)")
    parser.add_argument(
        "--clients", type=int, default=DEFAULT_CLIENTS, help="concurrent clients of EACH kind, collector and serve"
    )
    parser.add_argument(
        "--events-per-post", type=int, default=DEFAULT_EVENTS_PER_POST, help="at most this many events per POST"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or not 1 <= args.events_per_post <= 500:
        parser.error("--seconds > 0, --clients >= 1 and 1 <= --events-per-post <= 500")
    figures = run(args.seconds, args.clients, args.events_per_post)
    report(figures)
    print_figures(figures)
    return 0


if __name__ == "__main__":
    # Through the module's own name: the load process (spawned) unpickles its plan as bench.load's classes, and
    # sends back bench.load's LoadResult; classes of __main__ would not resolve on the other side.
    from bench.load import main as module_main

    sys.exit(module_main())
