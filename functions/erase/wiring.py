"""Wiring for the erase function and CLI: config, the eraser and the pepper, built once per container."""

from __future__ import annotations

from functools import lru_cache, partial

from erase.config import EraseConfig
from erase.usecase import EraseDeps
from store.erasure import connect_eraser
from store.parameters import get_secret


@lru_cache(maxsize=1)
def erase_deps() -> EraseDeps:
    config = EraseConfig.from_env()
    return EraseDeps(eraser=connect_eraser(config), pepper=partial(get_secret, config.pepper_parameter))
