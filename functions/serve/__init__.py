"""The serve function: fragments for the CDN path (FastAPI under Mangum)."""

from serve import pydantic_v1

# Before any serve module declares a FastAPI route (why: serve/pydantic_v1.py).
pydantic_v1.install()
