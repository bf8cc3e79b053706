"""The names a visitor's identity travels under. CloudFront's policies in template.yaml key on or forward them;
a test keeps the two in step. Kept apart from app.py so every router can read them without importing the app."""

from __future__ import annotations

IDENTITY_COOKIE = "pz_id"
IDENTITY_HEADER = "x-pz-token"
SEGMENT_COOKIE = "pz_seg"
