"""Which AWS region the code runs in, read the way the SDKs read it."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_REGION = "us-east-1"


def region_from(env: Mapping[str, str]) -> str:
    # Lambda sets AWS_REGION; a developer's shell or the local stack usually sets AWS_DEFAULT_REGION.
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
