"""The archive purge: a scheduled function that rewrites archived events without erased people's."""
