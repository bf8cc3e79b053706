"""`make demo`: the whole slice on loopback, on real data.

Starts the local stack from template.yaml, trains and publishes a model version from the bundled REES46
events, replays the events into the Kinesis stream time-shifted so the last lands now (gaps kept), lets the
real ingest handler fold them through a Lambda-shaped event source, starts the serve app under uvicorn, and
prints a personalized and an anonymous fragment with their headers. Everything it starts, it stops.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EVENTS = ROOT.parent / "shared" / "datasets" / "rees46_multicategory_2019oct_head" / "events.csv"
SAMPLE_EVENTS = ROOT / "tests" / "data" / "rees46_head2000.csv"
# The demo's output is for people: handler logs at warning level, metrics (EMF lines) off the console.
QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}


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
    for name in ("X-Personalization", "X-Segment", "X-Model-Version", "Cache-Control", "Set-Cookie", "ETag"):
        if name.lower() in lowered:
            print(f"{name}: {lowered[name.lower()]}")
    print(body.strip())


def run(events_path: Path) -> int:
    # Imported here so `--help` answers instantly.
    from infra.local.poller import KinesisPoller
    from infra.local.producer import put_events
    from infra.local.serve_process import ServeProcess
    from infra.local.stack import LocalStack
    from model_export.__main__ import load_any, train_version
    from model_export.canonical import to_events
    from personalization.features import FEATURE_NAMES, feature_vector
    from personalization.identity import pseudonymize, sign_token
    from personalization.profile import FoldSettings, affinities_at
    from store.artifacts import ArtifactStore
    from store.profiles import ProfileStore, TableSettings

    timings = Timings()
    with timings.step("start the loopback stack (moto_server) from template.yaml"):
        stack = LocalStack().start()
        print(f"    {stack.endpoint_url}: {', '.join(sorted(stack.physical_names.values()))}")
    serve: ServeProcess | None = None
    try:
        os.environ.update(stack.aws_env())
        ingest_env = {**stack.function_env("IngestFunction"), **QUIET}
        serve_env = {**stack.function_env("ServeFunction"), **QUIET}
        ssm = stack.client("ssm")
        pepper = ssm.get_parameter(Name=ingest_env["PEPPER_PARAMETER"], WithDecryption=True)["Parameter"]["Value"]
        identity_key = ssm.get_parameter(Name=serve_env["IDENTITY_KEY_PARAMETER"], WithDecryption=True)["Parameter"][
            "Value"
        ]

        with timings.step(f"read {events_path.name} and convert it to canonical events"):
            frame = load_any(events_path)
            shift = datetime.now(UTC) - frame["timestamp"].max().to_pydatetime()
            print(
                f"    {len(frame):,} events, {frame['user_id'].nunique():,} users,"
                f" {frame['item_id'].nunique():,} items; shifted {shift.days} days so the last lands now"
            )

        with timings.step("train a model version and publish it to the artifact bucket"):
            with tempfile.TemporaryDirectory() as models:
                folder = train_version(frame, Path(models))
                version = ArtifactStore(serve_env["ARTIFACT_BUCKET"], stack.region).publish(folder)
            print(f"    published {version}")

        with timings.step("publish the events to the Kinesis stream (put_records)"):
            stream = stack.physical_names["EventStream"]
            with tqdm(total=len(frame), unit="event", file=sys.stdout) as bar:
                put_events(stack.client("kinesis"), stream, to_events(frame, shift), pepper.encode(), bar.update)

        with timings.step("fold them into profiles through the real ingest handler"):
            os.environ.update(ingest_env)
            from ingest.handler import lambda_handler

            batch_size = int(stack.template.parameter_default("IngestBatchSize"))
            with tqdm(total=len(frame), unit="record", file=sys.stdout) as bar:
                stats = KinesisPoller(
                    stack.client("kinesis"), stream, lambda_handler, batch_size, on_batch=bar.update
                ).drain()
            print(f"    {stats.records:,} records in {stats.invocations} invocations of up to {batch_size}")

        with timings.step("start the serve app (uvicorn) on loopback"):
            serve = ServeProcess(serve_env).start()
            print(f"    {serve.url}")

        with timings.step("request fragments over HTTP"):
            raw_user = str(frame["user_id"].value_counts().idxmax())
            pseudonym = pseudonymize(pepper.encode(), raw_user)
            stored = ProfileStore(TableSettings(serve_env["PROFILES_TABLE"], stack.region)).get(pseudonym)
            assert stored is not None, "the most active user has no profile"
            now_ms = int(time.time() * 1000)
            top = sorted(affinities_at(stored.profile, now_ms, FoldSettings()).items(), key=lambda kv: -kv[1])[:3]
            print(
                f"    user {raw_user} (pseudonym {pseudonym[:12]}...): {sum(stored.profile.counts.values())} events,"
                f" top categories {', '.join(f'{c} ({s:.1f})' for c, s in top)}"
            )
            vector = dict(zip(FEATURE_NAMES, feature_vector(stored.profile, now_ms), strict=True))
            print(f"    features: {', '.join(f'{k}={v:.2f}' for k, v in list(vector.items())[:8])}, ...")
            token = sign_token(identity_key.encode(), pseudonym, int(time.time()) + 3600)
            personal = fetch(f"{serve.url}/v1/fragments/for-you?format=html&k=5", {"Cookie": f"pz_id={token}"})
            show("personalized fragment (signed identity cookie)", *personal)
            segment_cookie = _cookie(personal[1], "pz_seg")
            if segment_cookie:
                show(
                    "segment fragment (only the signed segment cookie serve set: cacheable per segment)",
                    *fetch(f"{serve.url}/v1/fragments/segment-banner?format=html&k=3", {"Cookie": segment_cookie}),
                )
            show("anonymous fragment (no token)", *fetch(f"{serve.url}/v1/fragments/for-you?format=html&k=5", {}))
    finally:
        if serve is not None:
            serve.stop()
        stack.stop()
    print("\n" + timings.table())
    print("\nstopped everything the demo started (serve and moto_server, by pid)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.demo", description=__doc__)
    parser.add_argument(
        "--events",
        type=Path,
        default=DEFAULT_EVENTS if DEFAULT_EVENTS.exists() else SAMPLE_EVENTS,
        help="a canonical event file or a known dataset's CSV (default: the bundled REES46 slice)",
    )
    args = parser.parse_args(argv)
    return run(args.events)


if __name__ == "__main__":
    sys.exit(main())
