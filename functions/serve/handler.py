"""Lambda entry point: the FastAPI app under Mangum (Function URL events, payload v2)."""

from mangum import Mangum

from observability import metrics
from serve.app import app
from serve.wiring import serve_state

# Loaded at init, so SnapStart snapshots a container whose models and catalog are already in memory.
serve_state()

# log_metrics flushes the request's metrics as one EMF line when the invocation ends.
handler = metrics.log_metrics(Mangum(app, lifespan="off"))
