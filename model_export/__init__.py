"""Offline side, one room per idea: data/ (canonical events, adapters, catalog, archive), training/, recommenders/,
evaluation/, experiments/, publishing/ (versions, gate, retraining); `python -m model_export` runs cli.py."""
