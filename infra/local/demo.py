"""`make demo`: the whole slice on loopback, on real data.

Starts the local stack from template.yaml, trains and publishes a model version from the bundled REES46
events (all but the latest: what the shop had before them), publishes the example rules document, replays the
events into the Kinesis stream time-shifted so the last lands now (gaps kept), lets the real ingest handler fold
them through a Lambda-shaped event source (archiving every accepted event through Firehose), starts the serve app
under uvicorn, and prints the featured person's fragment (the most active one the model answers, beside their
top categories) and an anonymous fragment with their headers. It then runs the retraining
job from the archive (a candidate on the whole window without its latest events, scored with the live version on
them), prints the gate's decision with both versions' metrics, and shows the running serve switching to a promoted
version without a restart. Then it starts the live loop (the ingest poller in the background, the event
collector, and the local edge serving the storefront), clicks through the shop as a new visitor and prints how
the `for-you` fragment changes, then buys one quiet item a dozen times and shows it climbing the `trending`
slot. With --keep-running the storefront stays up until Ctrl-C. Everything it
starts, it stops.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from names import (
    EXPERIMENT_VARIANT_HEADER,
    IDENTITY_COOKIE,
    MODEL_VERSION_HEADER,
    PERSONALIZATION_HEADER,
    SEGMENT_COOKIE,
    SEGMENT_HEADER,
)

if TYPE_CHECKING:
    import pandas as pd

    from infra.local.scenario import LocalProduct
    from infra.local.serve_process import ServeProcess
    from infra.local.visitor import ScriptedVisitor

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EVENTS = ROOT.parent / "shared" / "datasets" / "rees46_multicategory_2019oct_head" / "events.csv"
SAMPLE_EVENTS = ROOT / "tests" / "data" / "rees46_head2000.csv"


class Timings:
    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"\n==> {name}", flush=True)
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        self.steps.append((name, elapsed))
        print(f"    done in {elapsed:.1f} s", flush=True)

    def table(self) -> str:
        width = max(len(name) for name, _ in self.steps)
        lines = [f"{'step'.ljust(width)}  seconds", f"{'-' * width}  -------"]
        lines += [f"{name.ljust(width)}  {seconds:7.1f}" for name, seconds in self.steps]
        lines.append(f"{'total'.ljust(width)}  {sum(s for _, s in self.steps):7.1f}")
        return "\n".join(lines)


def fetch(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 -- loopback URL built here
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.status, dict(response.headers), response.read().decode()


def _cookie(headers: dict[str, str], name: str) -> str | None:
    """`name=value` from a Set-Cookie header, as a browser would send it back."""
    for header, value in headers.items():
        if header.lower() == "set-cookie" and value.startswith(f"{name}="):
            return value.split(";", 1)[0]
    return None


def show(title: str, status: int, headers: dict[str, str], body: str) -> None:
    print(f"\n--- {title}: HTTP {status}")
    lowered = {name.lower(): value for name, value in headers.items()}
    for name in (
        PERSONALIZATION_HEADER,
        EXPERIMENT_VARIANT_HEADER,
        SEGMENT_HEADER,
        MODEL_VERSION_HEADER,
        "Cache-Control",
        "Set-Cookie",
        "ETag",
    ):
        if name.lower() in lowered:
            print(f"{name}: {lowered[name.lower()]}")
    print(body.strip())


def run(events_path: Path, keep_running: bool = False) -> int:
    # Imported here so `--help` answers instantly.
    from infra.local.featured import choose_featured, compare
    from infra.local.scenario import RULES_EXAMPLE, LocalProduct, before_latest, load_events
    from model_export.data.catalog import build_catalog
    from personalization.features import FEATURE_NAMES, feature_vector
    from personalization.identity import pseudonymize, sign_token
    from personalization.profile import FoldSettings, affinities_at
    from personalization.rules import parse_document
    from store.profiles import ProfileStore, TableSettings

    timings = Timings()
    product = LocalProduct()
    with timings.step("start the loopback stack (moto_server) from template.yaml"):
        stack = product.start_stack()
        print(f"    {stack.endpoint_url}: {', '.join(sorted(stack.physical_names.values()))}")
    try:
        serve_env = product.serve_env
        pepper, identity_key = product.pepper, product.identity_key

        with timings.step(f"read {events_path.name} and convert it to canonical events"):
            frame, shift = load_events(events_path)
            print(
                f"    {len(frame):,} events, {frame['user_id'].nunique():,} users,"
                f" {frame['item_id'].nunique():,} items; shifted {shift.days} days so the last lands now"
            )

        with timings.step("train a model version on the events before the latest ones and publish it"):
            earlier = before_latest(frame)
            print(f"    {len(earlier):,} events up to {(earlier['timestamp'].max() + shift):%H:%M} UTC (shifted)")
            print(f"    published {product.publish_model(earlier)}")

        if RULES_EXAMPLE.exists():
            with timings.step(f"publish the rules document {RULES_EXAMPLE.relative_to(ROOT)}"):
                print(f"    published rules {product.publish_rules(RULES_EXAMPLE)} (serve re-reads them every second)")

        with (
            timings.step("publish the events to the Kinesis stream (put_records)"),
            tqdm(total=len(frame), unit="event", file=sys.stdout) as bar,
        ):
            product.replay(frame, shift, bar.update)

        with timings.step("fold them into profiles through the real ingest handler"):
            batch_size = int(product.template_default("IngestBatchSize"))
            with tqdm(total=len(frame), unit="record", file=sys.stdout) as bar:
                stats = product.ingest_backlog(bar.update)
            print(f"    {stats.records:,} records in {stats.invocations} invocations of up to {batch_size}")

        with timings.step("start the serve app (uvicorn) on loopback"):
            serve = product.start_serve()
            print(f"    {serve.url}")

        with timings.step("request fragments over HTTP"):
            now_ms = int(time.time() * 1000)
            experiments = parse_document(RULES_EXAMPLE.read_bytes()).experiments if RULES_EXAMPLE.exists() else []
            featured = choose_featured(frame, lambda user: pseudonymize(pepper, user), experiments, now_ms)
            raw_user, pseudonym = featured.user_id, featured.pseudonym
            stored = ProfileStore(TableSettings(serve_env["PROFILES_TABLE"], stack.region)).get(pseudonym)
            assert stored is not None, "the featured person has no profile"
            affinities = affinities_at(stored.profile, now_ms, FoldSettings())
            top = sorted(affinities.items(), key=lambda kv: -kv[1])[:3]
            print(
                f"    featured: user {raw_user} (pseudonym {pseudonym[:12]}...), the most active person the model"
                f" answers (variant {featured.variant or 'none: no experiment'})"
                + (f"; {featured.note}" if featured.note else "")
            )
            print(
                f"    {sum(stored.profile.counts.values())} events,"
                f" top categories {', '.join(f'{c} ({s:.1f})' for c, s in top) or 'none (no categories)'}"
            )
            # The published version's catalog is built from the same frame: the prices serve compares with.
            catalog = build_catalog(frame)
            vector = dict(zip(FEATURE_NAMES, feature_vector(stored.profile, now_ms, catalog), strict=True))
            print(f"    features: {', '.join(f'{k}={v:.2f}' for k, v in list(vector.items())[:8])}, ...")
            token = sign_token(identity_key, pseudonym, int(time.time()) + 3600)
            personal = fetch(
                f"{serve.url}/v1/fragments/for-you?format=html&k=5", {"Cookie": f"{IDENTITY_COOKIE}={token}"}
            )
            show("the featured person's fragment (signed identity cookie)", *personal)
            # The same request as JSON names each item's category: what they did beside what was recommended.
            answer = json.loads(
                fetch(f"{serve.url}/v1/fragments/for-you?format=json&k=5", {"Cookie": f"{IDENTITY_COOKIE}={token}"})[2]
            )
            their_items = frame.loc[frame["user_id"].astype(str) == raw_user, "item_id"].astype(str)
            print("\n--- what the model learned, beside what they did")
            for line in compare(affinities, their_items, answer["items"]).lines():
                print(line)
            segment_cookie = _cookie(personal[1], SEGMENT_COOKIE)
            if segment_cookie:
                show(
                    "segment fragment (only the signed segment cookie serve set: cacheable per segment)",
                    *fetch(f"{serve.url}/v1/fragments/segment-banner?format=html&k=3", {"Cookie": segment_cookie}),
                )
            show("anonymous fragment (no token)", *fetch(f"{serve.url}/v1/fragments/for-you?format=html&k=5", {}))

        with timings.step("retrain from the event archive (the scheduled job's use case) and roll out"):
            retrain_and_roll_out(product, frame, shift, serve)

        with timings.step("start the live loop: ingest poller, collector and edge (uvicorn)"):
            live = product.start_live_ingest()
            print(f"    ingest: polling the stream, batches of up to {live.batch_size}, window {live.window_s:g} s")
            collector = product.start_collector()
            print(
                f"    collector: {collector.url}" if collector else "    collector: not built yet (functions/collect)"
            )
            edge = product.start_edge()
            print(f"    edge (shop, catalog, /v1/* proxied): {edge.url}")

        if collector is not None:
            with timings.step("storefront: a new visitor clicks through the edge"):
                visit_storefront(edge.url)

        if keep_running:
            wait_for_interrupt(f"{edge.url}/")
    finally:
        product.stop()
    print("\n" + timings.table())
    print("\nstopped everything the demo started (edge, collector, serve, live ingest and moto_server, by pid)")
    return 0


def retrain_and_roll_out(product: LocalProduct, frame: pd.DataFrame, shift: timedelta, serve: ServeProcess) -> None:
    """The gate's decision with both versions' metrics, then serve's X-Model-Version until it names the winner."""
    import tempfile

    from model_export.publishing.commands import retrain_table

    url = f"{serve.url}/v1/fragments/for-you?format=json&k=5"

    def version() -> str | None:
        headers = {name.lower(): value for name, value in fetch(url, {})[1].items()}
        return headers.get(MODEL_VERSION_HEADER.lower())

    before = version()
    with tempfile.TemporaryDirectory(prefix="demo-retrain-") as scratch:
        result = product.retrain(frame, shift, Path(scratch))
    promoted_at = time.monotonic()
    print("    " + retrain_table(result).replace("\n", "\n    "))
    if not result.decision.promote or result.candidate_version is None:
        print(f"    the live version stays: serve answers with {before}")
        return
    max_age = float(product.serve_env.get("MODEL_MAX_AGE_S", "60"))
    pid = serve.pid
    answered = version()
    while answered != result.candidate_version and time.monotonic() - promoted_at < max_age + 10:
        time.sleep(0.2)
        answered = version()
    waited = time.monotonic() - promoted_at
    if answered == result.candidate_version:
        print(
            f"    serve (pid {pid}, not restarted) answered with {before} before the run, and with {answered}"
            f" {waited:.1f} s after the job returned (it re-reads models/current.json every {max_age:g} s)"
        )
    else:
        print(f"    serve still answers with {answered} after {waited:.0f} s: it does not re-read models/current.json")


def visit_storefront(edge_url: str) -> None:
    """A few clicks as a new visitor, through the edge, and the `for-you` fragment before and after."""
    from infra.local.visitor import ScriptedVisitor

    visitor = ScriptedVisitor(edge_url)
    try:
        catalog = visitor.catalog()
        by_id = {item["id"]: item for item in catalog["items"]}
        # A dataset without categories lists none: the visitor then clicks the shop's first items.
        category = catalog["categories"][0] if catalog["categories"] else None
        listed = category["item_ids"] if category else list(by_id)
        clicked = [by_id[item_id] for item_id in listed[:3]]
        print(
            f"    GET /shop/catalog.json: {len(catalog['items'])} items in {len(catalog['categories'])} categories;"
            f" the visitor clicks {len(clicked)} items of {category['name'] if category else 'the shop'}"
            " and adds one to the cart"
        )
        before = visitor.fragment("for-you")
        print(f"    before, no cookie:  for-you {before.summary()}")
        events = [visitor.event("page_view")]
        events += [visitor.event("view_product", item, page=f"/product/{item['id']}") for item in clicked]
        events.append(visitor.event("add_to_cart", clicked[0], page=f"/product/{clicked[0]['id']}"))
        answer = visitor.send(events)
        identity = (
            f"Set-Cookie {IDENTITY_COOKIE}={visitor.identity[:14]}..." if visitor.identity else "no identity cookie"
        )
        print(f"    POST /v1/events ({len(events)} events): HTTP {answer.status_code}, {identity}")
        after, elapsed = visitor.wait_for("for-you", lambda seen: seen.personal, timeout_s=10)
        print(f"    after {elapsed:.1f} s:        for-you {after.summary()}")
        trending_climb(visitor, [item for item in catalog["items"] if item["id"] not in listed[:3]])
    finally:
        visitor.close()


TRENDING_BURST = 12
TRENDING_ROUNDS = 8


def trending_climb(visitor: ScriptedVisitor, items: list[dict[str, Any]]) -> None:
    """The visitor buys one quiet item, a dozen at a time; the trending slot (the same for everyone) shows it
    climbing as ingest folds each batch, until it is in the top 3 (or the rounds run out)."""
    shown = visitor.fragment("trending", k=50).ids
    item = next((i for i in reversed(items) if i["id"] not in shown[:10]), None)
    if item is None:
        return
    item_id = item["id"]
    rank = f"#{shown.index(item_id) + 1}" if item_id in shown else "not in the top 50"
    print(f"    trending now: item {item_id} is {rank}; the visitor buys it, {TRENDING_BURST} at a time")
    for round_number in range(1, TRENDING_ROUNDS + 1):
        visitor.send([visitor.event("purchase", item, page="/checkout") for _ in range(TRENDING_BURST)])
        seen, elapsed = visitor.wait_for("trending", lambda s: item_id in s.ids[:3], timeout_s=3, k=50)
        place = f"#{seen.ids.index(item_id) + 1}" if item_id in seen.ids else "not in the top 50"
        print(f"    after {round_number * TRENDING_BURST} bought (+{elapsed:.1f} s): {place} ({seen.personalization})")
        if item_id in seen.ids[:3]:
            return


def wait_for_interrupt(url: str) -> None:
    """Keep everything up until Ctrl-C (or SIGTERM); the caller stops it all."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    print(f"\n    the storefront is up at {url} (loopback only); Ctrl-C stops everything", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\n    stopping ...", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.demo", description=__doc__)
    parser.add_argument(
        "--events",
        type=Path,
        default=DEFAULT_EVENTS if DEFAULT_EVENTS.exists() else SAMPLE_EVENTS,
        help="a canonical event file or a known dataset's CSV (default: the bundled REES46 slice)",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the walk-through, keep the storefront (the local edge) up until Ctrl-C",
    )
    args = parser.parse_args(argv)
    return run(args.events, keep_running=args.keep_running)


if __name__ == "__main__":
    sys.exit(main())
