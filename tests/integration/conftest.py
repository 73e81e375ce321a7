"""Integration fixtures: a real ``influxd`` (Debian's 1.6.7, installed by ``.ci/run``) and the store contract fixture.

``ManagedInfluxd`` starts ``influxd`` with its own generated config, temporary meta/data/WAL directories and free
loopback ports, and can stop and restart it on the same port and directories (the fault test needs that). Nothing is
installed here: without ``influxd`` the influx tests fail under ``CI`` and are skipped otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.storage.influx import InfluxStore


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


def find_influxd() -> str:
    binary = shutil.which("influxd")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("influxd missing in CI (.ci/run installs Debian's influxdb package)")
        pytest.skip("influxd not installed (apt-get install influxdb)")
    return binary


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedInfluxd]:
    """One influxd for the session; tests use fresh databases and fresh patient ids."""
    server = ManagedInfluxd(find_influxd(), tmp_path_factory.mktemp("influxd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def patient_prefix() -> str:
    """A fresh patient-id prefix per test, so tests never see each other's patients."""
    return unique("p")


@pytest.fixture(params=["sqlite", pytest.param("influx", marks=pytest.mark.influx)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator:
    """The ``VitalStore`` contract fixture: the embedded SQLite store and the InfluxDB store, each fresh."""
    if request.param == "sqlite":
        from app.storage.sqlite import SqliteStore

        adapter = SqliteStore(tmp_path / "wardtwin.db")
    else:
        server: ManagedInfluxd = request.getfixturevalue("influxd")
        adapter = InfluxStore(
            server.url, unique("contract"), spool_path=tmp_path / "influx-spool.db", batch_size=5000, timeout_s=10.0
        )
    await adapter.open()
    try:
        yield adapter
    finally:
        await adapter.close()
