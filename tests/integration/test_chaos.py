"""Chaos (issue 21, "what it must show"): the service as a real uvicorn process on both stores survives a kill -9
mid-ingest, influxd killed and paused, and a full disk, with nothing it answered 2xx lost; a clock stepped forward
and back silences no alert.

Every test waits on conditions (``tests.support.wait``), never on a duration. Readings are read back from the
store files themselves (no read route returns raw readings): SQLite after the service stopped, InfluxDB after the
restarted service reported its spool empty.

The clock part runs in process (``create_app`` + ``FixedClock``): a real process takes only the system clock
(``app.main.app_from_env`` builds no offset or simulated clock; ``AcceleratedClock`` is the demo's, set in code), and
stepping the host's clock would disturb every other process on the machine.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.clock import FixedClock
from app.storage.influx import InfluxStore
from app.storage.influxd_local import ManagedInfluxd, free_port
from app.storage.sqlite import SqliteStore
from tests.support.api import NOW, SICK, SICK_SET, T0, WINDOW_ENDS, run_cycle, serve
from tests.support.influx import find_influxd
from tests.support.server import AUTH, ROOT, SERVICE_KEY, ServedProcess, wait_until_ok
from tests.support.wait import wait_until

PATIENTS = [f"chaos-{i:02d}" for i in range(10)]
Key = tuple[str, str, int]  # patient, vital, ts in ms


@dataclass
class Service(ServedProcess):
    """One real ``uvicorn app.main:app_from_env`` process on ``data_dir`` (started again with ``start``)."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Service:
        port = free_port()
        env = {**os.environ, "WARDTWIN_DATA_DIR": str(self.data_dir), "WARDTWIN_SCHEDULER_ENABLED": "false",
               "WARDTWIN_DEMO_KEY": SERVICE_KEY, **self.env}
        log = open(self.data_dir.parent / f"{self.data_dir.name}-uvicorn.log", "ab")  # noqa: SIM115 - child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app_from_env", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.base = f"http://127.0.0.1:{port}"
        wait_until_ok(f"{self.base}/healthz", proc=self.proc)
        return self



@contextmanager
def running(service: Service) -> Iterator[Service]:
    service.start()
    try:
        yield service
    finally:
        service.stop()


@dataclass
class Ledger:
    """What the client was told: readings of batches answered 2xx, and every status seen."""

    base: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3))
    accepted: dict[Key, float] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)
    batches: int = 0
    last_refusal: str = ""

    def next_batch(self, size: int = 10) -> list[dict]:
        """``size`` seconds of HR for every patient, at timestamps no earlier batch used."""
        start = self.batches * size
        self.batches += 1
        return [{"patient_id": p, "vital": "hr", "ts": (self.base + timedelta(seconds=start + s)).isoformat(),
                 "value": float(50 + (start + s + i) % 100)} for s in range(size) for i, p in enumerate(PATIENTS)]

    def post(self, client: httpx.Client, batch: list[dict]) -> httpx.Response:
        response = client.post("/v1/readings", json={"readings": batch})
        self.statuses.append(response.status_code)
        if response.is_success:
            for r in batch:
                self.accepted[(r["patient_id"], r["vital"], _ms(datetime.fromisoformat(r["ts"])))] = r["value"]
        else:
            assert response.status_code in (503, 507), response.text[:300]  # refused, never a 500
            self.last_refusal = f"{response.status_code} {response.text[:200]}"
            if response.status_code == 503:
                assert "retry-after" in response.headers, response.headers
        return response


def _ms(ts: Any) -> int:
    return int(ts.timestamp() * 1000)


def stored(store: SqliteStore | InfluxStore, ledger: Ledger) -> dict[Key, float]:
    async def read() -> dict[Key, float]:
        await store.open()
        try:
            frame = await store.readings(PATIENTS, ledger.base - timedelta(hours=1), ledger.base + timedelta(days=1))
        finally:
            await store.close()
        return {(p, v, _ms(ts)): value
                for p, v, ts, value in zip(frame["patient_id"], frame["vital"], frame["ts"], frame["value"],
                                           strict=True)}

    return asyncio.run(read())


def assert_nothing_lost(found: dict[Key, float], ledger: Ledger) -> None:
    missing = {k: v for k, v in ledger.accepted.items() if found.get(k) != v}
    print(f"accepted={len(ledger.accepted)} found={len(found)} missing={len(missing)} statuses={set(ledger.statuses)}")
    assert ledger.accepted, "nothing was accepted: the test proved nothing"
    assert not missing, f"{len(missing)} accepted readings not stored, e.g. {next(iter(missing.items()))}"


def influx_env(server: ManagedInfluxd, database: str) -> dict[str, str]:
    return {"WARDTWIN_INFLUX_URL": server.url, "WARDTWIN_INFLUX_DATABASE": database}


def wait_drained(service: Service) -> None:
    wait_until(lambda: service.health()["store"].get("backlog", 0) == 0, "the spool to drain", timeout=120, every=0.2)


# --- kill -9 mid-ingest ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("influx", marks=pytest.mark.influx)])
def test_kill_9_mid_ingest_loses_no_acknowledged_batch(backend: str, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env: dict[str, str] = {}
    server: ManagedInfluxd | None = None
    if backend == "influx":
        server = request.getfixturevalue("influxd")
        env = influx_env(server, f"chaos_{uuid.uuid4().hex[:8]}")
    service = Service(data_dir, env).start()
    ledger, stop = Ledger(), threading.Event()

    def client_loop() -> None:  # a gateway posting batches back to back until the service disappears
        with httpx.Client(base_url=service.base, headers=AUTH, timeout=30) as client:
            while not stop.is_set():
                try:
                    ledger.post(client, ledger.next_batch())
                except httpx.TransportError:
                    return

    writer = threading.Thread(target=client_loop)
    writer.start()
    try:
        wait_until(lambda: len(ledger.statuses) >= 8 or not writer.is_alive(), "eight batches answered")
        service.kill9()  # mid-ingest: the writer has a request in flight or about to be
    finally:
        stop.set()
        writer.join()
        service.stop()
    assert all(s == 200 for s in ledger.statuses), ledger.statuses
    with running(Service(data_dir, env)) as again:  # restart on the same data dir: recovery and spool replay
        assert again.health()["store"]["ok"] is True
        if server is not None:
            wait_drained(again)
    if server is None:
        found = stored(SqliteStore(data_dir / "wardtwin.db"), ledger)
    else:
        found = stored(InfluxStore(server.url, env["WARDTWIN_INFLUX_DATABASE"], spool_path=tmp_path / "reader.db"),
                       ledger)
    assert_nothing_lost(found, ledger)


# --- influxd killed, then paused ------------------------------------------------------------------------------------


@pytest.mark.influx
def test_influxd_killed_and_paused_the_service_rides_it_out_and_the_spool_drains(tmp_path: Path) -> None:
    server = ManagedInfluxd(find_influxd(), tmp_path / "influxd")  # its own: this test kills it
    server.start()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = influx_env(server, "chaos")
    ledger = Ledger()
    try:
        with running(Service(data_dir, env)) as service, \
                httpx.Client(base_url=service.base, headers=AUTH, timeout=60) as client:
            for _ in range(3):
                assert ledger.post(client, ledger.next_batch()).status_code == 200
            server.kill()  # SIGKILL
            for _ in range(5):
                ledger.post(client, ledger.next_batch())
            assert service.alive()
            health = service.health()
            assert health["store"]["ok"] is False, health  # says the store is down ...
            print("during the outage:", ledger.statuses[3:], ledger.last_refusal, health["store"])
            # each batch refused (503 + Retry-After, checked by ``post``) or held in the spool: the outage was met
            assert health["store"]["backlog"] > 0 or 503 in ledger.statuses[3:], (ledger.statuses, health)
            server.start()
            ledger.post(client, ledger.next_batch())
            wait_drained(service)

            server.pause()  # SIGSTOP: connections hang until the store's write timeout
            try:
                # the first post waits out the store's 10 s timeouts (its conflict read, then its write, into the
                # spool); the second's conflict read then fails at once (InfluxDB hangs: READ_BACKOFF_S) and its write
                # queues behind the spool: two posts cover both paths
                for _ in range(2):
                    ledger.post(client, ledger.next_batch())
                assert service.alive()
            finally:
                server.resume()
            ledger.post(client, ledger.next_batch())
            wait_drained(service)
            assert service.health()["store"]["ok"] is True
            assert service.alive()
        found = stored(InfluxStore(server.url, "chaos", spool_path=tmp_path / "reader.db"), ledger)
    finally:
        server.stop()
    assert_nothing_lost(found, ledger)


# --- the clock stepped forward and back (in process: see the module docstring) -------------------------------------


def test_a_clock_stepped_forward_and_back_silences_no_alert(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    with serve(tmp_path, clock) as client:
        for end in WINDOW_ENDS[-4:-1]:
            run_cycle(client, end)
        clock.advance(timedelta(days=1))  # the host clock jumps a day ahead ...
        assert run_cycle(client, T0 + timedelta(days=1))["alerts_evaluated"]
        clock.set(NOW)  # ... and is corrected

        charted = client.post("/v1/observations", json=SICK_SET)  # NEWS2 10: alerted within the request
        assert charted.status_code == 201, charted.text
        body = charted.json()
        assert body["news2"]["total"] >= 7, body
        assert body["alert"] is not None and body["alert"]["event"] == "raised", body

        result = run_cycle(client, T0)  # the cycle for the real window drives the alert rules
        assert result["alerts_evaluated"], result
        alerts = client.get("/v1/alerts", params={"patient_id": SICK}).json()
        assert [a["kind"] for a in alerts if a["state"] != "resolved"].count("news2") == 1, alerts
        health = client.get("/healthz").json()
        assert health["window_ends_ahead_of_clock"] == {}, health


# --- the disk full --------------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 2 MiB tmpfs here ({done.stderr.strip() or done.returncode}): needs root "
                    "with CAP_SYS_ADMIN")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(service: Service, ledger: Ledger) -> None:
    """Post batches until the disk is full and the service has refused three in a row's worth."""
    with httpx.Client(base_url=service.base, headers=AUTH, timeout=60) as client:
        refused = 0
        for _ in range(2000):  # a guard: 2 MiB holds far fewer batches of 500 readings
            if not ledger.post(client, ledger.next_batch(size=50)).is_success:
                refused += 1
                if refused == 3:  # refused, and refused again: it does not die on the first
                    break
    assert refused == 3, f"the disk never filled: {len(ledger.accepted)} readings accepted"
    print("last refusal:", ledger.last_refusal)


def test_a_full_disk_is_refused_with_503_or_507_and_nothing_accepted_is_lost(small_disk: Path, tmp_path: Path) -> None:
    data_dir = small_disk / "data"
    data_dir.mkdir()
    ledger = Ledger()
    with running(Service(data_dir)) as service:
        fill(service, ledger)
        assert service.alive()
        assert httpx.get(f"{service.base}/healthz", timeout=30).status_code == 200
    copy = tmp_path / "copy"  # read from a roomy disk: opening a store may write (WAL, schema checks)
    copy.mkdir()
    for f in data_dir.glob("wardtwin.db*"):
        (copy / f.name).write_bytes(f.read_bytes())
    assert_nothing_lost(stored(SqliteStore(copy / "wardtwin.db"), ledger), ledger)


def test_healthz_is_not_ok_while_the_disk_is_full(small_disk: Path) -> None:
    data_dir = small_disk / "data"
    data_dir.mkdir()
    with running(Service(data_dir)) as service:
        fill(service, Ledger())
        health = service.health()
        assert health["ok"] is False and health["store"]["ok"] is False, health
