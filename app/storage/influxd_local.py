"""Start a throwaway local ``influxd`` (Debian's 1.x): for the tests and the benchmarks, never the service.

``ManagedInfluxd`` runs ``influxd`` with its own generated config, meta/data/WAL directories under ``root`` and free
loopback ports, and can stop, kill, pause and restart it on the same port and directories (the fault tests need
that). It lives in the product package so ``tests/`` and ``bench/`` can both import it without importing each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedInfluxd:
    """One ``influxd`` process on 127.0.0.1 with its own config and directories under ``root``."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = Path(root)
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = self.root / "influxdb.conf"
        self.log = self.root / "influxd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        for sub in ("meta", "data", "wal"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{self.root / 'meta'}"

[data]
  dir = "{self.root / 'data'}"
  wal-dir = "{self.root / 'wal'}"
  query-log-enabled = false
  trace-logging-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0

[logging]
  level = "warn"

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 30.0) -> None:
        if self.running:
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "-config", str(self.config)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"influxd exited with {self._proc.returncode}; see {self.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ping", timeout=1.0).status_code == 204:  # 1.x: /ping → 204, no /health
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"influxd did not answer /ping within {timeout_s}s; see {self.log}")

    def stop(self, timeout_s: float = 15.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # in case it was paused
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def kill(self) -> None:
        """Hard stop (SIGKILL): what a crash looks like; the WAL must still hold every acknowledged write."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def pause(self) -> None:
        """SIGSTOP: influxd still accepts TCP connections (the kernel does) but answers nothing — a hung server."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def query(self, q: str, database: str | None = None, params: dict | None = None) -> dict:
        data = {"q": q, "epoch": "ms"}
        if database:
            data["db"] = database
        if params:
            data["params"] = json.dumps(params)
        response = httpx.post(f"{self.url}/query", data=data, timeout=30.0)
        response.raise_for_status()
        return response.json()

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')
