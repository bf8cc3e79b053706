"""Lambda entry point: the FastAPI app under Mangum (Function URL events, payload v2)."""

import gc

# No garbage collection during init: imports and serve_state() only build what the container keeps, yet each
# time the heap grew by a quarter CPython walked all of it again (import serve.app 535 -> 477 ms CPU). At the end
# of init the heap is frozen (below). First, before any other import: Lambda imports serve.app through here.
gc.disable()

import os  # noqa: E402

from mangum import Mangum  # noqa: E402

from observability import metrics  # noqa: E402
from serve.app import app  # noqa: E402
from serve.wiring import primes_at_init, serve_state  # noqa: E402

# Loaded at init, so SnapStart snapshots a container whose models and catalog are already in memory.
serve_state()

asgi = Mangum(app, lifespan="off")


def _at_init(path: str, query: str = "") -> None:
    """One request through the whole stack at init: what a first request would otherwise pay once is paid
    before the snapshot instead."""
    asgi(
        {
            "version": "2.0",
            "rawPath": path,
            "rawQueryString": query,
            "headers": {"host": "init"},
            "requestContext": {"http": {"method": "GET", "path": path, "sourceIp": "127.0.0.1"}},
            "isBase64Encoded": False,
        },
        None,  # type: ignore[arg-type]  # not an invocation: nothing reads the context
    )


PRIMED = primes_at_init(os.environ)
if PRIMED:
    # anyio's asyncio backend imported, the routing warmed.
    _at_init("/v1/health")
    # The fragment route up to its parameters (k=0 is refused: a 422, so no fragment is made, counted or
    # logged): FastAPI reads a route's source position on its first call (inspect, ~0.7 ms), and the parameter
    # model's error path runs once.
    _at_init("/v1/fragments/init", "k=0")

# Everything init made is kept for the container's life: frozen, no collection ever walks it again (a full
# collection of it took 230-350 ms at load average 6-8, a pause a warm request would have met once the heap had
# grown by a quarter). Not collected first (that would cost the same at every cold start): the imports' cyclic
# garbage (~1,200 objects) stays in memory instead. A version the rollout replaces is still freed: its catalog
# and models hold no reference cycle, so reference counting frees them, frozen or not.
gc.freeze()
gc.enable()

# log_metrics flushes the request's metrics as one EMF line when the invocation ends.
handler = metrics.log_metrics(asgi)
