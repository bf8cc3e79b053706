"""Lambda entry point: the FastAPI app under Mangum (Function URL events, payload v2)."""

from mangum import Mangum

from observability import metrics
from serve.app import app
from serve.wiring import serve_state

# Loaded at init, so SnapStart snapshots a container whose models and catalog are already in memory.
serve_state()

asgi = Mangum(app, lifespan="off")
# One health check through the whole stack at init: what a first request would otherwise pay once (anyio's
# asyncio backend imported, the threadpool started, the routing warmed) is paid before the snapshot instead.
asgi(
    {
        "version": "2.0",
        "rawPath": "/v1/health",
        "rawQueryString": "",
        "headers": {"host": "init"},
        "requestContext": {"http": {"method": "GET", "path": "/v1/health", "sourceIp": "127.0.0.1"}},
        "isBase64Encoded": False,
    },
    None,  # type: ignore[arg-type]  # not an invocation: nothing reads the context
)

# log_metrics flushes the request's metrics as one EMF line when the invocation ends.
handler = metrics.log_metrics(asgi)
