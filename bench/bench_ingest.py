"""Ingest throughput into InfluxDB: the service (HTTP JSON → validation → InfluxStore) versus raw line protocol.

In one run, on one influxd, the same points are written
  (a) raw:     ``writers`` threads POST pre-encoded line protocol, ``batch`` points per request, to ``/write``;
  (b) adapter: ``InfluxStore.write_readings`` in-process (encoding + HTTP, no API, no validation);
  (c) service: ``writers`` threads POST pre-serialised JSON batches to ``/v1/readings`` of a real uvicorn
               process running ``app.main:app_from_env`` with ``WARDTWIN_INFLUX_URL`` set.
Each goes to its own fresh database; the points are counted back afterwards. Reports points/s and the
service/raw ratio (target ≥ 0.80).

    python bench/bench_ingest.py                       # starts its own influxd (Debian's, as the tests do)
    python bench/bench_ingest.py --points 1000000 --writers 2 --batch 5000
    python bench/bench_ingest.py --influx-url http://127.0.0.1:8086   # an influxd you started
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.domain import Reading  # noqa: E402
from app.security.keys import new_token  # noqa: E402
from app.storage.influx import InfluxStore  # noqa: E402
from app.storage.influxd_local import free_port  # noqa: E402
from bench.influxd_for_bench import influxd_url  # noqa: E402
from models.line_protocol import ReadingEncoder  # noqa: E402

SERVICE_KEY = new_token()  # the benchmarked service's key with every role (WARDTWIN_DEMO_KEY)


def make_readings(points: int, patients: int) -> list[Reading]:
    """1 Hz HR and SpO2 for ``patients`` beds ending about now (the service refuses future timestamps)."""
    seconds = -(-points // (2 * patients))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=seconds + 600)
    out: list[Reading] = []
    for s in range(seconds):
        ts = start + timedelta(seconds=s)
        for p in range(patients):
            out.append(Reading(f"bed-{p:04d}", "hr", ts, 60.0 + (s * 7 + p) % 61 + 0.5))
            out.append(Reading(f"bed-{p:04d}", "spo2", ts, 90.0 + (s + p) % 10))
    return out[:points]


def run_threads(url: str, bodies: list[bytes], writers: int, headers: dict[str, str], params: dict | None,
                expect: int) -> float:
    """POST ``bodies`` from ``writers`` threads (each takes the next body); returns wall seconds."""
    lock, index, errors = threading.Lock(), [0], []

    def work() -> None:
        with httpx.Client(timeout=120.0, headers=headers) as client:
            while True:
                with lock:
                    i = index[0]
                    index[0] += 1
                if i >= len(bodies):
                    return
                response = client.post(url, params=params, content=bodies[i])
                if response.status_code != expect:
                    errors.append(f"{response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=work) for _ in range(writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    return elapsed


def cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc); 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by influxd, the service and this process over a phase (where the time goes)."""

    def __init__(self, **pids: int | None) -> None:
        self.pids = {"bench": os.getpid(), **pids}
        self.start = {name: cpu_s(pid) for name, pid in self.pids.items()}

    def report(self, wall_s: float) -> str:
        used = {name: cpu_s(pid) - self.start[name] for name, pid in self.pids.items()}
        return "cpu " + " ".join(f"{name}={sec:.2f}s({sec / wall_s:.0%})" for name, sec in used.items())


def count(server_url: str, database: str) -> int:
    response = httpx.post(f"{server_url}/query", data={"q": "SELECT count(value) FROM vitals", "db": database},
                          timeout=120)
    series = response.json()["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def create_database(server_url: str, database: str) -> None:
    httpx.post(f"{server_url}/query", data={"q": f'CREATE DATABASE "{database}"'}, timeout=30).raise_for_status()


async def adapter_run(server_url: str, database: str, readings: list[Reading], writers: int, batch: int,
                      spool: Path) -> float:
    store = InfluxStore(server_url, database, spool_path=spool, batch_size=batch, timeout_s=60)
    await store.open()
    chunks = [readings[i : i + batch] for i in range(0, len(readings), batch)]
    queue: asyncio.Queue[list[Reading]] = asyncio.Queue()
    for c in chunks:
        queue.put_nowait(c)

    async def work() -> None:
        while not queue.empty():
            await store.write_readings(queue.get_nowait())

    t0 = time.perf_counter()
    await asyncio.gather(*(work() for _ in range(writers)))
    elapsed = time.perf_counter() - t0
    assert store.backlog == 0 and store.rejected == 0
    await store.close()
    return elapsed


def start_service(source: Path, data_dir: Path, influx: tuple[str, str] | None) -> tuple[subprocess.Popen, str]:
    """A real ``uvicorn`` service of the tree ``source`` on ``data_dir`` (InfluxDB at ``influx = (url, database)``,
    else SQLite), scheduler off, no rate limit, the bench's key; returns once ``/healthz`` answers."""
    port = free_port()
    env = {**os.environ, "WARDTWIN_DATA_DIR": str(data_dir), "WARDTWIN_SCHEDULER_ENABLED": "false",
           "WARDTWIN_MAX_BATCH_READINGS": "10000", "WARDTWIN_DEMO_KEY": SERVICE_KEY, "PYTHONPATH": str(source),
           "WARDTWIN_RATE_LIMIT_PER_S": "1000000", "WARDTWIN_RATE_LIMIT_BURST": "1000000"}
    if influx is not None:
        env.update({"WARDTWIN_INFLUX_URL": influx[0], "WARDTWIN_INFLUX_DATABASE": influx[1]})
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app_from_env", "--factory", "--host", "127.0.0.1", "--port",
         str(port), "--log-level", "warning", "--no-access-log"],
        cwd=source, env=env, stdout=(data_dir / "uvicorn.log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited; see {data_dir / 'uvicorn.log'}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("service did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=600_000)
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--influx-url", default=None, help="use this influxd instead of starting one")
    parser.add_argument("--skip-service", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        with influxd_url(args.influx_url, work) as (url, influxd_pid):
            version = httpx.get(f"{url}/ping", timeout=5).headers.get("X-Influxdb-Version")
            print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
                  f"python={platform.python_version()} influxd={version}")
            readings = make_readings(args.points, args.patients)
            n = len(readings)
            print(f"points={n} patients={args.patients} writers={args.writers} batch={args.batch}")
            run = f"{int(time.time())}"

            # (a) raw line protocol, pre-encoded (encoding time excluded: this is influxd's ceiling)
            encoder = ReadingEncoder()
            t0 = time.perf_counter()
            bodies = [encoder.encode(readings[i : i + args.batch]) for i in range(0, n, args.batch)]
            encode_s = time.perf_counter() - t0
            print(f"encode: {n / encode_s:,.0f} points/s single-threaded ({encode_s:.2f} s)")
            db_raw = f"bench_raw_{run}"
            create_database(url, db_raw)
            meter = CpuMeter(influxd=influxd_pid)
            raw_s = run_threads(f"{url}/write", bodies, args.writers, {}, {"db": db_raw, "precision": "ms"}, 204)
            raw_rate = n / raw_s
            print(f"raw line protocol: {raw_rate:,.0f} points/s ({raw_s:.2f} s), counted {count(url, db_raw):,}; "
                  f"{meter.report(raw_s)}")

            # (b) the adapter in-process
            db_adapter = f"bench_adapter_{run}"
            meter = CpuMeter(influxd=influxd_pid)
            adapter_s = asyncio.run(adapter_run(url, db_adapter, readings, args.writers, args.batch, work / "spool.db"))
            adapter_rate = n / adapter_s
            print(f"InfluxStore.write_readings: {adapter_rate:,.0f} points/s ({adapter_s:.2f} s), "
                  f"counted {count(url, db_adapter):,}, ratio to raw {adapter_rate / raw_rate:.2f}; "
                  f"{meter.report(adapter_s)}")

            if not args.skip_service:
                # (c) through the service: JSON over HTTP → validate → InfluxStore → influxd
                db_service = f"bench_service_{run}"
                data_dir = work / "service"
                data_dir.mkdir()
                proc, base = start_service(ROOT, data_dir, (url, db_service))
                try:
                    payloads = [
                        json.dumps({"readings": [
                            {"patient_id": r.patient_id, "vital": r.vital, "value": r.value,
                             "ts": r.ts.isoformat().replace("+00:00", "Z")}
                            for r in readings[i : i + args.batch]
                        ]}).encode()
                        for i in range(0, n, args.batch)
                    ]
                    meter = CpuMeter(influxd=influxd_pid, service=proc.pid)
                    service_s = run_threads(f"{base}/v1/readings", payloads, args.writers,
                                            {"content-type": "application/json",
                                             "authorization": f"Bearer {SERVICE_KEY}"}, None, 200)
                    cpu = meter.report(service_s)
                    health = httpx.get(f"{base}/healthz", timeout=10).json()["store"]
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                service_rate = n / service_s
                print(f"service POST /v1/readings: {service_rate:,.0f} points/s ({service_s:.2f} s), "
                      f"counted {count(url, db_service):,}, backlog {health.get('backlog')}, "
                      f"ratio to raw {service_rate / raw_rate:.2f} (target >= 0.80); {cpu}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
