"""Lambda entry point: the collector app under Mangum (Function URL events, payload v2)."""

from mangum import Mangum

from collect.app import app
from observability import metrics

# log_metrics flushes the request's metrics as one EMF line when the invocation ends.
handler = metrics.log_metrics(Mangum(app, lifespan="off"))
