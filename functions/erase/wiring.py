"""Wiring for the erase function and CLI: config, the eraser and the pepper, built once per container."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

from erase.config import EraseConfig
from store.erasure import Eraser, connect_eraser
from store.parameters import get_secret


@dataclass(frozen=True)
class EraseDeps:
    eraser: Eraser
    # Read through the powertools cache on each call, so a rotated pepper is picked up within its TTL.
    pepper: Callable[[], bytes]


@lru_cache(maxsize=1)
def erase_deps() -> EraseDeps:
    config = EraseConfig.from_env()
    return EraseDeps(eraser=connect_eraser(config), pepper=partial(get_secret, config.pepper_parameter))
