"""Logger and metrics singletons shared by every handler (powertools reads service/namespace from env)."""

import threading

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

logger = Logger()
metrics = Metrics()

# Metrics with a dimension of their own go out as their own EMF line, at once: the shared `metrics` flushes
# one dimension set per invocation, and a per-request value (a segment) would relabel every metric in it.
_dimensioned = EphemeralMetrics()
_dimensioned_lock = threading.Lock()


def count(name: str, value: int = 1, dimension: tuple[str, str] | None = None) -> None:
    """Count `name`, guarded: a request never fails over a metric (powertools may flush, and raise, on any add).

    `dimension` (name, value) must come from a bounded set (segments: at most K values), never from a request.
    """
    try:
        if dimension is None:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
            return
        with _dimensioned_lock:
            try:
                _dimensioned.add_dimension(name=dimension[0], value=dimension[1])
                _dimensioned.add_metric(name=name, unit=MetricUnit.Count, value=value)
                _dimensioned.flush_metrics()  # prints nothing when POWERTOOLS_METRICS_DISABLED
            finally:
                _dimensioned.clear_metrics()
    except Exception:
        logger.exception("could not record a metric", extra={"metric": name})
