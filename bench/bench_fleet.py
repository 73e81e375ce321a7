"""The five-minute cycle for one ward on one instance versus split over a fleet of two and three (issue 24).

Same machine, same run: a template SQLite vital store is seeded once (``--patients`` patients, ``--hours`` of stored
windows, then the readings of ``--cycles`` + 1 windows as monitors send them, as ``bench/bench_cycle.py`` does) and
copied for each configuration:

- ``single``: one instance, no fleet (the SQLite control store; every patient), the reference;
- ``fleet ×1``, ``×2``, ``×3``: that many instances, each a process of its own through the service's own wiring
  (``create_app``, fixed clock, scheduler off) on the copied store and one PostgreSQL control store (a throwaway
  local cluster, ``app.storage.postgres_local``), each scoring the buckets it leases.

Each instance waits until the fleet has settled (every bucket leased, each instance within its share), then the
instances start each cycle together (a barrier in PostgreSQL): a first (cold) cycle reads the span whole, then
``--cycles`` steady cycles each aggregate one new window. A fleet's cycle time is from the first instance's start
to the last one's end. Every configuration must score every patient once per cycle (checked).

    python bench/bench_fleet.py                                 # 10,000 patients, 6 h, 3 steady cycles (~10 min)
    python bench/bench_fleet.py --patients 2000 --cycles 2      # quicker
    python bench/bench_fleet.py --fanout                        # alert fan-out: PostgreSQL against SQLite

``--fanout`` runs ``bench/bench_fanout.py`` (a real service process, WebSocket clients acknowledging every event, a
cycle raising the sick patients' alerts, then each acknowledged and resolved in turn) twice in one run: on the
embedded SQLite control store and on a fresh PostgreSQL database (``WARDTWIN_CONTROL_DB``), and compares the
receipt latencies (single events, the cycle's burst) and the cycle's alert stage.

On a 2-core machine three instances share two cores with each other and with the store: what a split can show here
is which stages divide among instances (read, score, save, alert rules: each instance's own patients) and which
do not (the aggregation of a window's readings is done once for everyone, by whichever instance takes the fleet's
aggregation lock first: the store's work, influxd's CPU in production); the wall-clock gain is bounded by the cores,
not by the number of instances.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.clock import FixedClock  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.storage.sqlite import SqliteStore  # noqa: E402
from bench.bench_cycle import FIRST_END, STEP, history_rows, seed_history, write_window  # noqa: E402

KEY = "wt_bench-fleet-every-role-0123456789"


async def seed(path: Path, patients: int, hours: float, cycles: int, hr_period_s: int) -> int:
    store = SqliteStore(path)
    await store.open()
    try:
        wrapped = SimpleNamespace(inner=store, write_readings=store.write_readings)
        await seed_history(wrapped, history_rows(patients, hours, FIRST_END - STEP))
        n = 0
        for c in range(cycles + 1):
            n = await write_window(wrapped, patients, FIRST_END - STEP + c * STEP, hr_period_s)
        return n
    finally:
        await store.close()


async def barrier(conn, step: str, instance: str, n: int) -> None:
    await conn.execute("INSERT INTO bench_barrier VALUES (%s, %s) ON CONFLICT DO NOTHING", (step, instance))
    while (await (await conn.execute("SELECT count(*) FROM bench_barrier WHERE step = %s", (step,))).fetchone())[0] < n:
        await asyncio.sleep(0.01)


async def worker(args: argparse.Namespace) -> dict:
    import psycopg

    fleet = args.dsn is not None
    work = Path(args.work)
    settings = Settings.explicit(data_dir=work, demo_key=KEY, scheduler_enabled=False,
                                 **({"control_db": args.dsn, "instance_id": args.instance, "fleet_lease_s": 60.0,
                                     "fleet_renew_s": 0.5} if fleet else {}))
    clock = FixedClock(FIRST_END + timedelta(seconds=30))
    app = create_app(settings, clock, cycle_interval_s=None, store=SqliteStore(Path(args.store)))
    wt = app.state.wardtwin
    runs = []
    async with app.router.lifespan_context(app):
        conn = await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) if fleet else None
        if fleet:
            share = -(-64 // args.n)
            while True:  # settled: every bucket leased by the n instances, this one within its share
                h = wt.fleet.health()
                if h["fleet"]["instances_alive"] == args.n and h["fleet"]["unowned_buckets"] == 0 \
                        and 0 < h["held_count"] <= share:
                    break
                await asyncio.sleep(0.05)
            await barrier(conn, "settled", args.instance, args.n)
        for c in range(args.cycles + 1):
            end = FIRST_END + c * STEP
            clock.set(end + timedelta(seconds=30))
            if conn is not None:
                await barrier(conn, f"cycle-{c}", args.instance, args.n)
            started = time.time()
            result = await wt.run_cycle(end)
            runs.append({"cycle": c, "start": started, "end": time.time(), "took_ms": result.took_ms,
                         "stages": result.stages, "scored": result.scored,
                         "held": (result.fleet or {}).get("held")})
            print(f"    [{args.instance}] cycle {c}: {result.took_ms:,.0f} ms {result.stages} scored={result.scored}",
                  file=sys.stderr, flush=True)
        if conn is not None:
            await barrier(conn, "done", args.instance, args.n)  # nobody hands buckets back while others still run
            await conn.close()
    return {"instance": args.instance, "runs": runs}


def run_config(label: str, n: int, template: Path, work: Path, dsn: str | None, args: argparse.Namespace) -> dict:
    store = work / f"{label}.db"
    shutil.copy(template, store)
    procs = []
    for i in range(n):
        cmd = [sys.executable, __file__, "--worker", "--instance", f"i{i}", "--n", str(n), "--store", str(store),
               "--work", str(work / f"{label}-i{i}"), "--cycles", str(args.cycles),
               *(["--dsn", dsn] if dsn else [])]
        (work / f"{label}-i{i}").mkdir()
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs), label
    cycles = []
    for c in range(args.cycles + 1):
        runs = [o["runs"][c] for o in outs]
        scored = sum(r["scored"] for r in runs)
        assert scored == args.patients, f"{label} cycle {c}: {scored} scored, not {args.patients}"
        cycles.append({"wall_ms": (max(r["end"] for r in runs) - min(r["start"] for r in runs)) * 1000,
                       "stages_max": {k: max(r["stages"].get(k, 0.0) for r in runs) for k in runs[0]["stages"]},
                       "held": [r["held"] for r in runs]})
    steady = cycles[1:]
    return {"config": label, "instances": n, "cold_ms": cycles[0]["wall_ms"],
            "steady_ms": statistics.median(c["wall_ms"] for c in steady),
            "steady_all_ms": [round(c["wall_ms"]) for c in steady],
            "stages_max": {k: statistics.median(c["stages_max"][k] for c in steady) for k in steady[0]["stages_max"]},
            "held": steady[-1]["held"]}


def fanout(args: argparse.Namespace) -> int:
    """``bench/bench_fanout.py`` on each control-store engine, same run; a table and (``--json``) the results."""
    from app.storage.postgres_local import ManagedPostgres, find_pg_bin

    pg_bin = find_pg_bin()
    if pg_bin is None:
        sys.exit("PostgreSQL not installed (apt-get install postgresql)")
    server = ManagedPostgres(pg_bin)
    runs = {}
    try:
        server.start()
        for engine in ("sqlite", "postgresql"):
            cmd = [sys.executable, str(ROOT / "bench" / "bench_fanout.py"), "--clients", str(args.clients),
                   "--patients", str(args.sick), "--skip-bare", "--procs", "2",
                   *(["--control-db", server.create_database("fanout")] if engine == "postgresql" else [])]
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
            runs[engine] = json.loads(out.split("\n\n| clients")[0])["runs"][0]
            service = runs[engine]["service"]
            print(f"  {engine}: single {service['single']}, cycle burst {service['cycle']}", flush=True)
    finally:
        server.stop()
    print("| control store | single event p50 / p99 / last (median) | cycle burst from `raised_at`: p50 / p99 / last "
          "(median) | load avg before → after |")
    print("|---|---|---|---|")
    for engine, run in runs.items():
        single, burst = run["service"]["single"], run["service"]["cycle"]
        print(f"| {engine} | {single['p50_ms']:.1f} / {single['p99_ms']:.1f} / {single['last_median_ms']:.1f} ms | "
              f"{burst['p50_ms']:.1f} / {burst['p99_ms']:.1f} / {burst['last_median_ms']:.1f} ms | "
              f"{run['loadavg_before']} → {run['loadavg_after']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"clients": args.clients, "sick": args.sick, "cpus": os.cpu_count(),
                                         "runs": runs}, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=10_000, help="patients on the ward (default 10,000)")
    parser.add_argument("--hours", type=float, default=6.0, help="hours of stored windows per patient (default 6)")
    parser.add_argument("--cycles", type=int, default=3, help="steady cycles after the cold one (default 3)")
    parser.add_argument("--hr-period", type=int, default=1, help="seconds between heart-rate readings (default 1)")
    parser.add_argument("--fleets", default="1,2,3", help="fleet sizes run after the single instance (default 1,2,3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--fanout", action="store_true",
                        help="instead: alert fan-out (bench/bench_fanout.py) on SQLite and on PostgreSQL")
    parser.add_argument("--clients", type=int, default=200, help="with --fanout: WebSocket clients (default 200)")
    parser.add_argument("--sick", type=int, default=20, help="with --fanout: sick patients raising alerts (default 20)")
    parser.add_argument("--worker", action="store_true", help="internal: run one instance")
    parser.add_argument("--instance", default="i0", help="internal: the worker's instance id")
    parser.add_argument("--n", type=int, default=1, help="internal: instances in the worker's fleet")
    parser.add_argument("--store", default=None, help="internal: the worker's SQLite vital store")
    parser.add_argument("--work", default=None, help="internal: the worker's data directory")
    parser.add_argument("--dsn", default=None, help="internal: the fleet's PostgreSQL (absent: a single instance)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(worker(args))))
        return 0
    if args.fanout:
        return fanout(args)

    from app.storage.postgres_local import ManagedPostgres, find_pg_bin

    pg_bin = find_pg_bin()
    if pg_bin is None:
        sys.exit("PostgreSQL not installed (apt-get install postgresql)")
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    server = ManagedPostgres(pg_bin)
    results = []
    try:
        server.start()
        print(f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
              f"loadavg={Path('/proc/loadavg').read_text().split()[:3]}; {args.patients:,} patients, "
              f"{args.hours:g} h, HR every {args.hr_period} s", flush=True)
        template = work / "template.db"
        t0 = time.perf_counter()
        per_window = asyncio.run(seed(template, args.patients, args.hours, args.cycles, args.hr_period))
        print(f"  seeded in {time.perf_counter() - t0:.0f} s ({per_window:,} readings per window)", flush=True)
        results.append(run_config("single", 1, template, work, None, args))
        for n in (int(x) for x in args.fleets.split(",")):
            dsn = server.create_database(f"fleet{n}")
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE TABLE bench_barrier (step TEXT, instance TEXT, PRIMARY KEY (step, instance))")
            results.append(run_config(f"fleet x{n}", n, template, work, dsn, args))
        for r in results:
            print(f"  {r['config']:>9}: steady {r['steady_ms']:,.0f} ms {r['steady_all_ms']}, cold "
                  f"{r['cold_ms']:,.0f} ms, buckets {r['held']}, slowest instance's stages {r['stages_max']}",
                  flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nloadavg after: {load_after}")
    base = results[0]["steady_ms"]
    print("| configuration | instances | steady cycle (median, wall) | vs one instance | aggregate | read | score "
          "| save | alerts | cold cycle |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r["stages_max"]
        print(f"| {r['config']} | {r['instances']} | {r['steady_ms'] / 1000:.2f} s | {base / r['steady_ms']:.2f}× | "
              f"{s['aggregate']:,.0f} ms | {s['read']:,.0f} ms | {s['score']:,.0f} ms | {s['save']:,.0f} ms | "
              f"{s['alerts']:,.0f} ms | {r['cold_ms'] / 1000:.2f} s |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"patients": args.patients, "hours": args.hours, "cycles": args.cycles,
                                         "hr_period_s": args.hr_period, "readings_per_window": per_window,
                                         "cpus": os.cpu_count(), "loadavg_after": load_after,
                                         "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
