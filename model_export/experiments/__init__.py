"""Experiment analysis from a dump of the event stream: attribution per variant, statistics, the report."""
