"""A real uvicorn process running the service, for the smoke and end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.storage.influxd_local import free_port

#: The served process's key with every role (``WARDTWIN_DEMO_KEY``); ``AUTH`` is the header that carries it.
SERVICE_KEY = "wt_tests-every-role-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {SERVICE_KEY}"}

ROOT = Path(__file__).resolve().parents[2]


def wait_until_ok(url: str, timeout: float = 300.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers below 500; ``timeout`` only guards against a hang (a loaded machine is slow),
    and a ``proc`` that exits fails at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def terminate(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class ServedProcess:
    """A real service process a test starts (each test's ``start`` says how) and then kills, stops or asks."""

    proc: subprocess.Popen | None = field(default=None, kw_only=True)
    base: str = field(default="", kw_only=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.alive():
            terminate(self.proc, timeout=30)  # type: ignore[arg-type]

    def health(self) -> dict[str, Any]:
        return httpx.get(f"{self.base}/healthz", timeout=60).json()


@contextmanager
def uvicorn_service(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``uvicorn app.main:app_from_env --factory`` on a free port; yield its base URL. Requests need
    ``AUTH`` (the process's ``WARDTWIN_DEMO_KEY``, a key with every role)."""
    port = free_port()
    full_env = {**os.environ, "WARDTWIN_DATA_DIR": str(data_dir), "WARDTWIN_SCHEDULER_ENABLED": "false",
                "WARDTWIN_DEMO_KEY": SERVICE_KEY, **(env or {})}
    log = open(data_dir / "uvicorn.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app_from_env", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ok(f"{base}/healthz", proc=proc)
        yield base
    finally:
        terminate(proc, timeout=15)
        log.close()
