"""One botocore session per process, from which every plain botocore client of this package is made.

A session's loader caches what it reads from botocore's data files; each fresh session re-reads them, and
endpoints.json alone is 1.2 MB of JSON. serve makes its S3 (artifacts, rules) and Kinesis clients at init, so
sharing one session saves a cold start those repeated parses. botocore's client creation is not thread-safe on
a shared session, hence the lock (clients are made at init or rarely; using a client is thread-safe): serve makes
its clients on two threads at init, so every client of the shared session is made under `creating()`.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property, lru_cache
from typing import Any, overload

import botocore.loaders
import botocore.session
from botocore.config import Config

# Reentrant: client() holds it while session() takes it too.
_LOCK = threading.RLock()


@contextmanager
def creating() -> Iterator[None]:
    """Hold while a library (pynamodb) makes a client from the shared session."""
    with _LOCK:
        yield


def session() -> botocore.session.Session:
    with _LOCK:  # two threads asking first must not make two sessions
        return _session()


@lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    made = botocore.session.get_session()
    # In place of the loader the session would make on first use, with the same search path (botocore's own
    # data, then AWS_DATA_PATH's folders: create_loader's reading of it).
    data_path = made.get_config_variable("data_path")
    extra = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else None
    made.register_component("data_loader", DataLoader(extra_search_paths=extra))
    return made


class DataLoader(botocore.loaders.Loader):
    """botocore's data loader less two costs every client's making pays on a cold start (43 of the 112 ms the
    four clients of serve's init took, measured with shipped bytecode):

    - "Is this service known?" is answered by listing every service folder of botocore's data (some 420, and
      the files of each), once per kind of file asked for: 19 ms a kind, two kinds a client. Here the answer
      looks in the asked service's folders only; the full list is still made if someone reads it (the unknown
      service's error message does).
    - botocore parses each JSON file with an OrderedDict per object, a Python call per object of some 6 MB of
      JSON (the service models and endpoint rules). Plain dicts keep the same order since Python 3.7, and the
      C parser makes them 2.6 times as fast.

    Nothing else of the Loader changes: search paths, caching, extras, latest-version choice are its own.
    """

    def __init__(self, extra_search_paths: list[str] | None = None) -> None:
        super().__init__(extra_search_paths=extra_search_paths, file_loader=PlainJSONFileLoader())

    def list_available_services(self, type_name: str) -> Sequence[str]:  # type: ignore[override]
        return KnownServices(self, type_name)


class KnownServices(Sequence[str]):
    """The services whose data has a `type_name` file, as botocore's Loader lists them; `in` looks at one."""

    def __init__(self, loader: DataLoader, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name

    def __contains__(self, service: object) -> bool:
        if not isinstance(service, str) or not service or os.sep in service or service.startswith("."):
            return False
        for root in self._loader.search_paths:
            folder = os.path.join(root, service)
            if os.path.isdir(folder):
                for version in os.listdir(folder):
                    if self._loader.file_loader.exists(os.path.join(folder, version, self._type_name)):
                        return True
        return False

    @cached_property
    def _all(self) -> list[str]:
        listed: list[str] = botocore.loaders.Loader.list_available_services(self._loader, self._type_name)
        return listed

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._all[index]

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)


def _read(path: str) -> bytes:
    with open(path, "rb") as stored:
        return stored.read()


def _read_gzip(path: str) -> bytes:
    with gzip.open(path, "rb") as stored:
        return stored.read()


# How botocore's data files may be stored, in the order its JSONFileLoader tries them.
_READERS: tuple[tuple[str, Callable[[str], bytes]], ...] = ((".json", _read), (".json.gz", _read_gzip))


class PlainJSONFileLoader(botocore.loaders.JSONFileLoader):
    """botocore's JSON file loader, parsing to plain dicts (why: DataLoader)."""

    def load_file(self, file_path: str) -> Any:
        for extension, read in _READERS:
            path = file_path + extension
            if os.path.isfile(path):
                return json.loads(read(path))
        return None


def client(service: str, region: str, config: Config | None = None) -> Any:
    """A botocore client of `service` in `region` (callers cast it to their mypy_boto3 type)."""
    with _LOCK:
        return session().create_client(service, region_name=region, config=config)
