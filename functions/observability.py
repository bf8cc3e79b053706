"""Logger and metrics singletons shared by every handler (powertools reads service/namespace from env)."""

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
