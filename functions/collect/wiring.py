"""Wiring for the collect function: config, the stream and the identity key, built once per container."""

from __future__ import annotations

from functools import lru_cache, partial

from collect.config import CollectConfig
from collect.usecase import CollectDeps
from store.parameters import get_secret
from store.stream import EventStream


@lru_cache(maxsize=1)
def collect_deps() -> CollectDeps:
    config = CollectConfig.from_env()
    return CollectDeps(
        config, EventStream.connect(config.stream_settings), partial(get_secret, config.identity_key_parameter)
    )
