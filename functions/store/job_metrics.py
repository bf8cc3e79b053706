"""Metrics of the scheduled jobs (the retraining job), put straight to CloudWatch.

Lambda functions emit metrics as embedded-metric-format log lines (powertools); a Glue job's logs are not read
for EMF, so a job puts its few figures per run with PutMetricData, which alarms then watch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import botocore.session


class CloudWatchMetrics:
    def __init__(self, namespace: str, region: str, dimensions: Mapping[str, str] | None = None) -> None:
        self.namespace = namespace
        self._dimensions = [{"Name": name, "Value": value} for name, value in (dimensions or {}).items()]
        self._cloudwatch: Any = botocore.session.get_session().create_client("cloudwatch", region_name=region)

    def put(self, values: Mapping[str, float]) -> None:
        """One data point per metric, no dimensions (the alarms watch the metric as named)."""
        if values:
            self._cloudwatch.put_metric_data(
                Namespace=self.namespace,
                MetricData=[
                    {"MetricName": name, "Value": float(value), "Unit": "None"} for name, value in values.items()
                ],
            )
