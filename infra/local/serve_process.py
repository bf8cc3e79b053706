"""The serve app (or another ASGI app of ours) under uvicorn as a child process on a free loopback port, stopped
by pid."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    def __init__(
        self,
        env: dict[str, str],
        port: int | None = None,
        *,
        app: str = "serve.app:app",
        factory: bool = False,
        ready_path: str = "/v1/health",
    ) -> None:
        """`app` is uvicorn's "module:attribute" (a function building the app with `factory`); the process
        is up once GET `ready_path` answers 200."""
        self.app = app
        self._factory = factory
        self._ready_path = ready_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **env}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> ServeProcess:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                self.app,
                *(["--factory"] if self._factory else []),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.app} exited early: {self._stderr()}")
            try:
                with urllib.request.urlopen(f"{self.url}{self._ready_path}", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.app} did not answer within {timeout_s} s: {self._stderr()}")

    def _stderr(self) -> str:
        if self._process is None or self._process.stderr is None or self._process.poll() is None:
            return ""
        return self._process.stderr.read().decode(errors="replace")[-2000:]

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
