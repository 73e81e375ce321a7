"""Ingest: the service's CPU per reading and throughput, against raw writes into the same store, in one run.

The same readings (1 Hz HR and SpO2 for ``--patients`` beds, ending about now) are written, each phase into a
fresh database of the chosen store:

  raw        SQLite: ``executemany`` of pre-built rows into the store's own schema (``app.storage.sqlite``; WAL,
             ``synchronous=FULL``, one transaction per batch). InfluxDB: pre-encoded line protocol POSTed to
             influxd's ``/write`` (``app.storage.influxd_local`` starts it)
  json       ``POST /v1/readings`` of a real uvicorn process (``app.main:app_from_env``), ``--writers`` threads,
             ``--batch`` readings a request, bodies pre-serialised
  lines      ``POST /v1/write`` of the same process, the same readings as line protocol (``precision=ms``)
  before     optional (``--before DIR``): ``POST /v1/readings`` of the service built from another source tree
             (e.g. ``git archive HEAD | tar -x -C DIR`` before the change)

For each: readings/s (wall), the ratio to raw, and the service's CPU per reading (user + system seconds of the
uvicorn process over the phase / readings; /proc). The store's own CPU is influxd's (InfluxDB) or, for SQLite,
inside the service process (the store is embedded), so for SQLite the service CPU includes the writes.

    python bench/bench_ingest_cpu.py --store sqlite --points 400000
    python bench/bench_ingest_cpu.py --store influx --points 400000 --before /tmp/wardtwin-before
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.storage.codec import to_ms  # noqa: E402
from app.storage.sqlite import _SCHEMA  # noqa: E402
from bench.bench_ingest import (  # noqa: E402
    SERVICE_KEY,
    CpuMeter,
    count,
    cpu_s,
    create_database,
    make_readings,
    run_threads,
    start_service,
)
from bench.influxd_for_bench import influxd_url  # noqa: E402
from models.line_protocol import ReadingEncoder  # noqa: E402


def raw_sqlite(path: Path, rows: list[tuple], batch: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(_SCHEMA)
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR REPLACE INTO readings VALUES (?, ?, ?, ?, ?)", rows[i:i + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == len(rows)
    conn.close()
    return elapsed


def sqlite_count(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "wardtwin.db") as conn:
        return conn.execute("SELECT count(*) FROM readings").fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("sqlite", "influx"), default="sqlite")
    parser.add_argument("--points", type=int, default=400_000)
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--before", type=Path, default=None)
    parser.add_argument("--influx-url", default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-cpu-"))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
          f"load average {load}")
    readings = make_readings(args.points, args.patients)
    n = len(readings)
    chunks = [readings[i:i + args.batch] for i in range(0, n, args.batch)]
    json_bodies = [orjson.dumps({"readings": [
        {"patient_id": r.patient_id, "vital": r.vital, "value": r.value,
         "ts": r.ts.isoformat().replace("+00:00", "Z")} for r in chunk]}) for chunk in chunks]
    encoder = ReadingEncoder()
    line_bodies = [encoder.encode(chunk) for chunk in chunks]
    print(f"store={args.store} readings={n:,} patients={args.patients} writers={args.writers} batch={args.batch}")
    headers = {"authorization": f"Bearer {SERVICE_KEY}"}
    results: dict[str, tuple[float, float | None]] = {}  # phase -> (readings/s, service CPU µs per reading)
    try:
        with influxd_url(args.influx_url, work) if args.store == "influx" else _nothing() as influx:
            url, influxd_pid = influx if influx else (None, None)
            stamp = int(time.time())

            if url is None:
                rows = [(r.patient_id, r.vital, to_ms(r.ts), float(r.value), r.quality) for r in readings]
                raw_s = raw_sqlite(work / "raw.db", rows, args.batch)
                print(f"raw executemany: {n / raw_s:,.0f} readings/s ({raw_s:.2f} s)")
            else:
                db = f"raw_{stamp}"
                create_database(url, db)
                meter = CpuMeter(influxd=influxd_pid)
                raw_s = run_threads(f"{url}/write", line_bodies, args.writers, {}, {"db": db, "precision": "ms"},
                                    204)
                print(f"raw line protocol: {n / raw_s:,.0f} readings/s ({raw_s:.2f} s), counted {count(url, db):,}; "
                      f"{meter.report(raw_s)}")
            results["raw"] = (n / raw_s, None)

            phases = [("json", ROOT, "/v1/readings", json_bodies, "application/json", 200),
                      ("lines", ROOT, "/v1/write", line_bodies, "text/plain", 204)]
            if args.before is not None:
                phases.append(("before", args.before.resolve(), "/v1/readings", json_bodies, "application/json", 200))
            for name, source, path, bodies, media, expect in phases:
                data_dir = work / name
                database = f"{name}_{stamp}"
                proc, base = start_service(source, data_dir, (url, database) if url else None)
                try:
                    cpu0 = cpu_s(proc.pid)
                    meter = CpuMeter(influxd=influxd_pid, service=proc.pid)
                    params = {"precision": "ms"} if path == "/v1/write" else None
                    wall = run_threads(f"{base}{path}", bodies, args.writers, {**headers, "content-type": media},
                                       params, expect)
                    cpu = cpu_s(proc.pid) - cpu0
                    report = meter.report(wall)
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
                stored = count(url, database) if url else sqlite_count(data_dir)
                assert stored == n, f"{name}: {stored} stored of {n}"
                results[name] = (n / wall, cpu / n * 1e6)
                print(f"service {name:6} POST {path}: {n / wall:,.0f} readings/s ({wall:.2f} s), ratio to raw "
                      f"{(n / wall) / results['raw'][0]:.2f}, service CPU {cpu / n * 1e6:.2f} µs/reading; {report}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n| phase | readings/s | ratio to raw | service CPU µs/reading |  ({args.store}, load average {load})")
    for name, (rate, cpu_us) in results.items():
        print(f"| {name} | {rate:,.0f} | {rate / results['raw'][0]:.2f} | "
              f"{'—' if cpu_us is None else f'{cpu_us:.2f}'} |")
    return 0


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
