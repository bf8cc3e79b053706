"""Offline evaluation and its report: the protocols' metrics, the baselines, per-segment figures, report.md."""
