"""How long ``GET /healthz`` waits while a 1,000-patient cycle runs: event-loop blocking by the cycle (issue 9).

The app is built with ``create_app(Settings(data_dir=tmp), clock=FixedClock(t), cycle_interval_s=None)``, its
lifespan is run, and it is driven in process through ``httpx.ASGITransport``. In-process ASGI runs the server in
the **same event loop** as this client, so a ``/healthz`` request can only be answered when the loop is free: its
latency directly measures how long the cycle keeps the loop busy (plus any wait on the SQLite store's lock, which
``/healthz`` takes for ``SELECT 1`` while the cycle's own queries hold it in a worker thread). No sockets, no
uvicorn, nothing imported from ``tests/``.

Population (not timed against anything): ``--patients`` beds of the live-ward simulator (``simulator.ward.Ward``,
at most 99 beds a ward, so several wards with ids ``wNN-bed-MM``) for ``--hours`` hours, posted as JSON through
``POST /v1/readings`` in batches of 10,000 (the public ingest path, not the store directly).

Then, in one run:

  baseline   ``/healthz`` polled for ``--baseline-s`` seconds with no cycle running
  first      ``POST /v1/cycle`` for window end W0 = end of data - ``--repeat`` x 5 min; it also aggregates the
             whole ingested backlog (reported apart: it is not a steady-state cycle)
  cycle k    ``POST /v1/cycle`` for W0 + k x 5 min, k = 1..``--repeat`` (the newest 3 windows re-aggregated)

While a cycle runs as a task, a poller in the same loop sends ``/healthz`` every ``--interval-ms`` (0: back to back)
until the cycle answers, recording each request's latency (send to answer). Two more figures per phase:
``sched p99`` is the latency measured from when the request was *due* on the poller's fixed schedule (a request
that could not even be sent because the loop was blocked counts its wait; this corrects the coordinated omission
of a closed-loop poller) and ``lag max`` is the largest lateness of a 5 ms ``asyncio.sleep`` ticker (pure loop
blocking, no store lock involved).

    PYTHONPATH=. python bench/bench_loop_latency.py
    PYTHONPATH=. python bench/bench_loop_latency.py --patients 1000 --hours 3 --repeat 3 --seed 1 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import app  # noqa: E402
from app.clock import FixedClock  # noqa: E402
from app.main import create_app  # noqa: E402
from app.security.keys import new_token  # noqa: E402
from app.settings import Settings  # noqa: E402
from simulator.ward import Ward  # noqa: E402

START = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
BATCH = 10_000
MAX_BEDS_PER_WARD = 99
LAG_TICK_S = 0.005


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)  # send → answer
    scheduled_ms: list[float] = field(default_factory=list)  # due on the poller's schedule → answer
    lag_ms: list[float] = field(default_factory=list)  # lateness of a 5 ms sleep ticker
    wall_s: float = 0.0
    cycle: dict | None = None
    store_s: dict[str, float] = field(default_factory=dict)  # awaited in the store's methods, by method

    def summary(self) -> dict:
        return {
            "phase": self.name,
            "wall_s": round(self.wall_s, 3),
            "requests": len(self.latencies_ms),
            "p50_ms": round(percentile(self.latencies_ms, 50), 2),
            "p99_ms": round(percentile(self.latencies_ms, 99), 2),
            "max_ms": round(max(self.latencies_ms, default=math.nan), 2),
            "sched_p50_ms": round(percentile(self.scheduled_ms, 50), 2),
            "sched_p99_ms": round(percentile(self.scheduled_ms, 99), 2),
            "lag_max_ms": round(max(self.lag_ms, default=math.nan), 2),
            "store_s": {k: round(v, 3) for k, v in self.store_s.items()},
            "cycle": self.cycle,
        }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 50 samples is the largest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def ward_sizes(patients: int) -> list[int]:
    wards = math.ceil(patients / MAX_BEDS_PER_WARD)
    return [patients // wards + (1 if w < patients % wards else 0) for w in range(wards)]


async def populate(client: httpx.AsyncClient, patients: int, hours: float, seed: int, end: datetime) -> dict:
    generated = posted = rejected = 0
    sim_s = post_s = 0.0
    for w, beds in enumerate(ward_sizes(patients)):
        t0 = time.perf_counter()
        readings = Ward(beds, seed * 1000 + w, pd.Timestamp(end - timedelta(hours=hours))).advance(pd.Timestamp(end))
        prefix = f"w{w:02d}-"
        for r in readings:
            r["patient_id"] = prefix + r["patient_id"]
        sim_s += time.perf_counter() - t0
        generated += len(readings)
        t0 = time.perf_counter()
        for i in range(0, len(readings), BATCH):
            body = orjson.dumps({"readings": readings[i : i + BATCH]})
            resp = await client.post("/v1/readings", content=body, headers={"content-type": "application/json"})
            if resp.status_code == 200:
                posted += resp.json()["accepted"]
            elif resp.status_code == 422 and "accepted" in resp.json():
                posted += resp.json()["accepted"]
                rejected += len(readings[i : i + BATCH]) - resp.json()["accepted"]
            else:
                raise RuntimeError(f"POST /v1/readings answered {resp.status_code}: {resp.text[:300]}")
        post_s += time.perf_counter() - t0
        del readings
    return {"generated": generated, "accepted": posted, "rejected": rejected,
            "simulate_s": round(sim_s, 1), "post_s": round(post_s, 1)}


async def ticker(lag_ms: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        due = time.perf_counter() + LAG_TICK_S
        await asyncio.sleep(LAG_TICK_S)
        lag_ms.append(max(0.0, (time.perf_counter() - due) * 1000))


async def poll(client: httpx.AsyncClient, phase: Phase, interval_s: float, until: asyncio.Future | float) -> None:
    """``/healthz`` on a fixed schedule (back to back when ``interval_s`` is 0) until ``until`` is done
    (a future) or reached (a ``perf_counter`` deadline)."""
    t0 = time.perf_counter()
    k = 0

    def finished() -> bool:
        return until.done() if isinstance(until, asyncio.Future) else time.perf_counter() >= until

    while not finished():
        due = t0 + k * interval_s
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
            if finished():
                break
        sent = time.perf_counter()
        resp = await client.get("/healthz")
        done = time.perf_counter()
        if resp.status_code != 200 or not resp.json().get("ok"):
            raise RuntimeError(f"/healthz answered {resp.status_code}: {resp.text[:300]}")
        phase.latencies_ms.append((done - sent) * 1000)
        if interval_s == 0:
            phase.scheduled_ms.append((done - sent) * 1000)
            continue
        # every tick that fell due before the answer counts from its due time (HdrHistogram's correction)
        k_next = max(k + 1, math.floor((done - t0) / interval_s) + 1)
        phase.scheduled_ms += [(done - (t0 + j * interval_s)) * 1000 for j in range(k, k_next)]
        k = k_next


STORE_METHODS = ("materialize_windows", "patient_ids", "windows", "save_scores")


def time_store_calls(store: object, phase: list[Phase]) -> None:
    """Wrap the store's cycle-facing methods (on the instance) to add their awaited time to ``phase[0]``.
    The SQLite store runs each in a worker thread under one lock that ``/healthz`` also takes; a cycle that
    calls the store from another process or loop is not seen (its ``store s`` then reads 0)."""
    for name in STORE_METHODS:
        fn = getattr(store, name, None)
        if fn is None:
            continue

        async def timed(*a, _fn=fn, _name=name, **kw):
            t0 = time.perf_counter()
            try:
                return await _fn(*a, **kw)
            finally:
                if phase:
                    spent = phase[0].store_s
                    spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - t0

        setattr(store, name, timed)


async def measure(client: httpx.AsyncClient, name: str, interval_s: float, *, window_end: datetime | None = None,
                  seconds: float = 0.0, current: list[Phase] | None = None) -> Phase:
    phase = Phase(name)
    if current is not None:
        current[:] = [phase]
    stop = asyncio.Event()
    lag = asyncio.create_task(ticker(phase.lag_ms, stop))
    t0 = time.perf_counter()
    if window_end is None:
        await poll(client, phase, interval_s, t0 + seconds)
    else:
        cycle = asyncio.ensure_future(client.post("/v1/cycle", params={"window_end": window_end.isoformat()},
                                                  timeout=None))
        await poll(client, phase, interval_s, cycle)
        resp = await cycle
        if resp.status_code != 200:
            raise RuntimeError(f"POST /v1/cycle answered {resp.status_code}: {resp.text[:300]}")
        phase.cycle = resp.json()
    phase.wall_s = time.perf_counter() - t0
    stop.set()
    await lag
    return phase


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"


async def run(args: argparse.Namespace, data_dir: Path) -> dict:
    end = START + timedelta(hours=args.hours)
    end = end - (end - START) % STEP  # a window boundary
    first = end - args.repeat * STEP
    clock = FixedClock(end + timedelta(seconds=30))  # after every delivery, like the scheduler's grace
    key = new_token()  # the bench's key with every role
    application = create_app(Settings(data_dir=data_dir, demo_key=key), clock=clock, cycle_interval_s=None)
    interval_s = args.interval_ms / 1000
    phases: list[Phase] = []
    current: list[Phase] = []  # the phase store calls are charted to (none during population)
    store = getattr(getattr(application.state, "wardtwin", None), "store", None)
    if store is not None:
        time_store_calls(store, current)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=None,
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            t0 = time.perf_counter()
            population = await populate(client, args.patients, args.hours, args.seed, end)
            population["total_s"] = round(time.perf_counter() - t0, 1)
            print(f"populated: {population['accepted']:,} readings accepted ({population['rejected']:,} rejected) "
                  f"for {args.patients} patients x {args.hours} h in {population['total_s']} s "
                  f"(simulator {population['simulate_s']} s, POST /v1/readings {population['post_s']} s)",
                  flush=True)
            phases.append(await measure(client, "baseline", interval_s, seconds=args.baseline_s))
            phases.append(await measure(client, "first", interval_s, window_end=first, current=current))
            for k in range(1, args.repeat + 1):
                phases.append(await measure(client, f"cycle {k}", interval_s, window_end=first + k * STEP,
                                            current=current))
            current.clear()
            phases.append(await measure(client, "baseline after", interval_s, seconds=args.baseline_s))
    return {"population": population, "phases": [p.summary() for p in phases],
            "steady": pooled([p for p in phases if p.name.startswith("cycle ")]),
            "baseline_pooled": pooled([p for p in phases if p.name.startswith("baseline")])}


def pooled(phases: list[Phase]) -> dict:
    merged = Phase("pooled")
    for p in phases:
        merged.latencies_ms += p.latencies_ms
        merged.scheduled_ms += p.scheduled_ms
        merged.lag_ms += p.lag_ms
        merged.wall_s += p.wall_s
    return merged.summary()


def print_table(result: dict) -> None:
    head = (f"{'phase':<15}{'cycle s':>8}{'store s':>8}{'scored':>7}{'healthz n':>10}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'max ms':>9}{'sched p50':>10}{'sched p99':>10}{'lag max':>9}")
    print(head)
    print("-" * len(head))
    rows = [*result["phases"], {**result["steady"], "phase": "cycles 1..n"}]
    for r in rows:
        cycle = r.get("cycle") or {}
        took = f"{cycle['took_ms'] / 1000:.2f}" if cycle else "-"
        store = f"{sum(r['store_s'].values()):.2f}" if cycle else "-"
        print(f"{r['phase']:<15}{took:>8}{store:>8}{cycle.get('scored', '-')!s:>7}{r['requests']:>10}"
              f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}{r['sched_p50_ms']:>10.1f}"
              f"{r['sched_p99_ms']:>10.1f}{r['lag_max_ms']:>9.1f}")
    base, steady = result["baseline_pooled"], result["steady"]
    ratios = {k: steady[k] / base[k] if base[k] > 0 else math.inf for k in ("p50_ms", "p99_ms", "max_ms")}
    result["ratio_cycle_to_baseline"] = {k: round(v, 1) for k, v in ratios.items()}
    print(f"cycles 1..n versus baseline (both baselines pooled, p50 {base['p50_ms']:.2f} ms, p99 "
          f"{base['p99_ms']:.2f} ms): p50 x{ratios['p50_ms']:.1f}, p99 x{ratios['p99_ms']:.1f}, "
          f"max x{ratios['max_ms']:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3, help="steady-state cycles after the first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval-ms", type=float, default=10.0, help="/healthz schedule; 0: back to back")
    parser.add_argument("--baseline-s", type=float, default=3.0, help="seconds of /healthz with no cycle")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if args.hours * 60 < (args.repeat + 4) * STEP.total_seconds() / 60:
        parser.error("--hours too short for --repeat cycles of 5 minutes")
    print(f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
          f"commit={git_commit()} app={Path(app.__file__).parent}; patients={args.patients} hours={args.hours} "
          f"repeat={args.repeat} seed={args.seed} interval_ms={args.interval_ms} "
          f"loadavg={' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    try:
        result = asyncio.run(run(args, data_dir))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print_table(result)
    if args.json is not None:
        meta = {"argv": sys.argv, "machine": platform.machine(), "cpus": os.cpu_count(),
                "python": platform.python_version(), "commit": git_commit(), "app": str(Path(app.__file__).parent),
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
        args.json.write_text(json.dumps({**meta, "args": {k: str(v) for k, v in vars(args).items()}, **result},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
