"""pynamodb model classes bound to a deployment's table names, region and client options.

pynamodb reads the table name and connection settings from a model's Meta class, and each class keeps its own
connection: so each (model, table, options) gets one subclass, made once and reused for every read and write.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar, cast

from pynamodb.models import Model

M = TypeVar("M", bound=Model)

_bound: dict[tuple[Any, ...], type[Model]] = {}
_lock = threading.Lock()


def bind(base: type[M], table_name: str, region: str, **options: float) -> type[M]:
    """`base` bound to `table_name` in `region`; `options` are further Meta settings (timeouts, pool size)."""
    key = (base, table_name, region, tuple(sorted(options.items())))
    with _lock:
        model = _bound.get(key)
        if model is None:
            meta = type("Meta", (), {"table_name": table_name, "region": region, **options})
            model = _bound[key] = type(f"{base.__name__}_{table_name}", (base,), {"Meta": meta})
    return cast(type[M], model)


def forget_bindings() -> None:
    """Drop every binding (each class holds its connection, endpoint included): for a process that moves from
    one local stack to another, never needed in a Lambda container."""
    with _lock:
        _bound.clear()
