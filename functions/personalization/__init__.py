"""The personalization domain: plain Python that knows nothing of Lambda or AWS.

Handlers (ingest, serve) and the offline trainer (model_export) import these modules; these modules import
neither of them.
"""
