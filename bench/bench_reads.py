"""Read path: ``GET /v1/patients/{id}/risk`` and ``GET /v1/patients`` of a real ``wardtwin`` service versus a bare
FastAPI endpoint returning a body of the same size, measured with wrk in the same run (issue 14).

Three uvicorn processes, started alike (``--no-access-log``, uvloop/httptools as installed, one worker):

  service  ``app.main:app_from_env`` on the embedded SQLite store, scheduler off, the rate limit out of the way;
           ``--patients`` beds (ids ``bed-NNNN``) with ``--minutes`` of 1-a-minute vitals each, posted through
           ``POST /v1/readings``, scored by one ``POST /v1/cycle``; requests carry a **stored clinician key**
           (checked on every request, revocation included; every read audited, as in production)
  bare     a FastAPI app with no middleware whose ``GET /risk`` and ``GET /board`` return a dict that FastAPI
           encodes per request (``bare-json``; the issue's ceiling) and ``GET /risk.raw``, ``GET /board.raw`` the
           same bytes pre-encoded (``bare-bytes``); each body is the service's own answer for that route
  before   optional (``--before DIR``): the service from another source tree, e.g. the commit before the view
           (``git archive HEAD | tar -x -C DIR``), on a copy of the same data directory
  before_answer  optional (``--audit-before-answer``): this tree with ``WARDTWIN_AUDIT_COMMIT=before_answer`` (each
           audited answer held until its audit row commits), on a copy of the same data directory; ``service``
           runs ``after_answer``. Printed with its rate and CPU per request over ``service``'s, same round

For each route and server, in turns (``--rounds``): wrk ``-t1 -c{--connections} -d{--seconds}s --latency``
(saturated), then each again (bare-bytes aside) at half the throughput it just reached (a wrk Lua ``delay``
paces each connection) for p99 at half load; bare-json's p99 at half load is the machine's own floor.
Prints the table, the ratios service / bare of the same round, the machine and its load average. Each saturated
run also reads the server's CPU time (``/proc/PID/stat``, all threads) and prints CPU µs per request, and
bare-bytes' CPU per request over the service's: on a machine loaded by other work the rates swing from run to run,
the CPU each answer costs much less.

    python bench/bench_reads.py                                   # 24 beds
    python bench/bench_reads.py --patients 500 --seconds 10 --rounds 2
    python bench/bench_reads.py --before /tmp/wardtwin-before
    python bench/bench_reads.py --audit-before-answer --seconds 5 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.security.keys import new_token  # noqa: E402
from app.storage.influxd_local import free_port  # noqa: E402

ADMIN_KEY = new_token()  # the service's demo key: only to populate it and create the clinician key

BARE_APP = textwrap.dedent('''
    """A bare FastAPI app: the ceiling. Bodies from BARE_BODIES (a JSON file: route -> the service's answer)."""
    import json, os
    from fastapi import FastAPI, Response
    BODIES = json.load(open(os.environ["BARE_BODIES"]))
    RAW = {k: json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode() for k, v in BODIES.items()}
    app = FastAPI()

    @app.get("/risk")
    async def risk() -> dict:
        return BODIES["risk"]

    @app.get("/board")
    async def board() -> list:
        return BODIES["board"]

    @app.get("/risk.raw")
    async def risk_raw() -> Response:
        return Response(RAW["risk"], media_type="application/json")

    @app.get("/board.raw")
    async def board_raw() -> Response:
        return Response(RAW["board"], media_type="application/json")
''')

PACED_LUA = textwrap.dedent('''
    local delay_ms = tonumber(os.getenv("WRK_DELAY_MS"))
    function delay() return delay_ms end
''')

VITALS = (("hr", 60, 40), ("spo2", 92, 7), ("rr", 12, 10), ("sbp", 100, 40), ("temp", 36.5, 2.0))


def machine() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return (f"machine: {platform.machine()} {model}, cpus={os.cpu_count()}, python={platform.python_version()}, "
            f"load average {load}")


def start(cmd: list[str], env: dict[str, str], cwd: Path, log: Path, probe: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd} exited; see {log}")
        try:
            if httpx.get(probe, timeout=2).status_code < 500:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{cmd} did not start; see {log}")


def uvicorn(target: str, port: int, factory: bool) -> list[str]:
    return [sys.executable, "-m", "uvicorn", target, *(["--factory"] if factory else []), "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--no-access-log"]


def service_env(data_dir: Path, source: Path, audit_commit: str = "after_answer") -> dict[str, str]:
    return {**os.environ, "WARDTWIN_DATA_DIR": str(data_dir), "WARDTWIN_SCHEDULER_ENABLED": "false",
            "WARDTWIN_DEMO_KEY": ADMIN_KEY, "WARDTWIN_RATE_LIMIT_PER_S": "1000000000",
            "WARDTWIN_RATE_LIMIT_BURST": "1000000000", "WARDTWIN_MAX_BATCH_READINGS": "10000",
            "WARDTWIN_AUDIT_COMMIT": audit_commit, "PYTHONPATH": str(source)}


def populate(base: str, patients: int, minutes: int) -> datetime:
    """``minutes`` of vitals a minute for each bed, ending a minute ago; one cycle at the last window end."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    window_end = now.replace(minute=now.minute - now.minute % 5)
    items = []
    for p in range(patients):
        for m in range(minutes):
            ts = (window_end - timedelta(minutes=minutes - m)).isoformat().replace("+00:00", "Z")
            for k, (vital, lo, span) in enumerate(VITALS):
                value = lo + span * (((p * 7 + m * 3 + k * 5) % 11) / 10)
                items.append({"patient_id": f"bed-{p:04d}", "vital": vital, "value": round(value, 1), "ts": ts})
    headers = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
    with httpx.Client(timeout=300, headers=headers) as client:
        for i in range(0, len(items), 10_000):
            response = client.post(f"{base}/v1/readings", content=orjson.dumps({"readings": items[i:i + 10_000]}))
            response.raise_for_status()
        client.post(f"{base}/v1/cycle", params={"window_end": window_end.isoformat()}).raise_for_status()
    return window_end


def clinician_key(base: str) -> str:
    response = httpx.post(f"{base}/v1/keys", json={"name": "bench board", "role": "clinician"},
                          headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    response.raise_for_status()
    return response.json()["token"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, all its threads (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, key: str | None, connections: int, seconds: int, delay_ms: float | None, lua: Path,
        pid: int | None = None) -> dict:
    """wrk's rate, p50 and p99; with ``pid``, also the server's CPU µs per request over the run (user + system,
    all threads), which other processes' load on the machine does not inflate as it does the rate."""
    cpu0 = cpu_seconds(pid) if pid is not None else 0.0
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", url]
    if key:
        cmd[1:1] = ["-H", f"Authorization: Bearer {key}"]
    env = dict(os.environ)
    if delay_ms is not None:
        cmd[1:1] = ["-s", str(lua)]
        env["WRK_DELAY_MS"] = f"{delay_ms:.3f}"
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx answers\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    cpu_us = 1e6 * (cpu_seconds(pid) - cpu0) / requests if pid is not None and requests else float("nan")
    return {"rps": rate, "p50": pct("50"), "p99": pct("99"), "cpu_us": cpu_us}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--minutes", type=int, default=30, help="minutes of vitals per bed before the cycle")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--before", type=Path, default=None, help="source tree of the service before the change")
    parser.add_argument("--audit-before-answer", action="store_true",
                        help="also this tree with WARDTWIN_AUDIT_COMMIT=before_answer, on a copy of the data")
    parser.add_argument("--json", type=Path, default=None, help="also write the medians and ratios here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found (apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    procs: list[subprocess.Popen] = []
    try:
        print(machine())
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        procs.append(start(uvicorn("app.main:app_from_env", port, True), service_env(work / "data", ROOT), ROOT,
                           work / "service.log", f"{base}/healthz"))
        t0 = time.perf_counter()
        populate(base, args.patients, args.minutes)
        key = clinician_key(base)
        auth = {"authorization": f"Bearer {key}"}
        risk_body = httpx.get(f"{base}/v1/patients/bed-0000/risk", headers=auth).content
        board_body = httpx.get(f"{base}/v1/patients", headers=auth).content
        print(f"populated {args.patients} beds in {time.perf_counter() - t0:.1f} s; body sizes: risk "
              f"{len(risk_body):,} B, board {len(board_body):,} B")

        servers = {"service": base}
        pids = {"service": procs[0].pid}
        others = {}  # name: (source tree, WARDTWIN_AUDIT_COMMIT), each on a copy of the same data (keys, scores)
        if args.before is not None:  # the old tree
            others["before"] = (args.before.resolve(), "after_answer")
        if args.audit_before_answer:
            others["before_answer"] = (ROOT, "before_answer")
        if others:
            procs[0].terminate()
            procs[0].wait(timeout=30)
            for name, (source, audit_commit) in others.items():
                shutil.copytree(work / "data", work / f"data-{name}")
                other_port = free_port()
                procs.append(start(uvicorn("app.main:app_from_env", other_port, True),
                                   service_env(work / f"data-{name}", source, audit_commit), source,
                                   work / f"{name}.log", f"http://127.0.0.1:{other_port}/healthz"))
                servers[name] = f"http://127.0.0.1:{other_port}"
                pids[name] = procs[-1].pid
            procs.append(start(uvicorn("app.main:app_from_env", port, True), service_env(work / "data", ROOT),
                               ROOT, work / "service2.log", f"{base}/healthz"))
            pids["service"] = procs[-1].pid
            for name in servers:
                got = httpx.get(f"{servers[name]}/v1/patients/bed-0000/risk", headers=auth).content
                assert got == risk_body, f"{name} answers a different risk body"

        bodies = work / "bodies.json"
        bodies.write_bytes(orjson.dumps({"risk": orjson.loads(risk_body), "board": orjson.loads(board_body)}))
        (work / "bare_app.py").write_text(BARE_APP)
        bare_port = free_port()
        procs.append(start(uvicorn("bare_app:app", bare_port, False), {**os.environ, "BARE_BODIES": str(bodies)},
                           work, work / "bare.log", f"http://127.0.0.1:{bare_port}/risk"))
        bare = f"http://127.0.0.1:{bare_port}"
        pids["bare-json"] = pids["bare-bytes"] = procs[-1].pid
        assert orjson.loads(httpx.get(f"{bare}/board").content) == orjson.loads(board_body)
        lua = work / "paced.lua"
        lua.write_text(PACED_LUA)

        routes = {"risk": ("/v1/patients/bed-0000/risk", "/risk"), "board": ("/v1/patients", "/board")}
        results: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.rounds):
            for route, (path, bare_path) in routes.items():
                runs = {"bare-json": (f"{bare}{bare_path}", None), "bare-bytes": (f"{bare}{bare_path}.raw", None)}
                runs.update({name: (f"{url}{path}", key) for name, url in servers.items()})
                for name, (url, run_key) in runs.items():
                    results.setdefault((route, name), []).append(
                        wrk(url, run_key, args.connections, args.seconds, None, lua, pids[name]))
                for name, (url, run_key) in runs.items():  # half the throughput just reached, paced
                    if name == "bare-bytes":
                        continue
                    delay_ms = 1000 * args.connections / (results[(route, name)][-1]["rps"] / 2)
                    results.setdefault((route, f"{name} @ half"), []).append(
                        wrk(url, run_key, args.connections, args.seconds, delay_ms, lua))

        summary: dict[str, dict] = {"command": "PYTHONPATH=. python bench/bench_reads.py " + " ".join(sys.argv[1:]),
                                    "machine": machine(), "medians": {}, "before_answer_over_after_answer": {}}
        for (route, name), runs in results.items():
            summary["medians"].setdefault(route, {})[name] = {
                k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99", "cpu_us")}
        print(f"\nwrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} round(s), median; "
              f"{args.patients} beds; {machine().split(', ', 1)[1]}")
        print(f"{'route':6} {'server':20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>10}  ratios (same "
              "round; cpu: bare-bytes CPU per request / the server's)")
        for route in routes:
            for name in ["bare-json", "bare-bytes", *servers, *(f"{s} @ half" for s in ["bare-json", *servers])]:
                runs = results[(route, name)]
                rps = statistics.median(r["rps"] for r in runs)
                cpu = statistics.median(r["cpu_us"] for r in runs) if "@" not in name else float("nan")
                line = (f"{route:6} {name:20} {rps:9,.0f} {statistics.median(r['p50'] for r in runs):8.2f} "
                        f"{statistics.median(r['p99'] for r in runs):8.2f} {cpu:10.1f}")
                if name in servers:
                    for ceiling in ("bare-json", "bare-bytes"):
                        ratios = [s["rps"] / c["rps"] for s, c in zip(runs, results[(route, ceiling)], strict=True)]
                        line += f"  /{ceiling} {statistics.median(ratios):.2f}"
                    cpu_ratios = [c["cpu_us"] / s["cpu_us"]
                                  for s, c in zip(runs, results[(route, "bare-bytes")], strict=True)]
                    line += f"  cpu {statistics.median(cpu_ratios):.2f}"
                print(line)
        if "before_answer" in servers:  # the strict audit's cost: same-round ratios, one server against the other
            print("\nbefore_answer / service (after_answer), same round, median: req/s ratio, CPU µs/req ratio")
            for route in routes:
                pairs = list(zip(results[(route, "before_answer")], results[(route, "service")], strict=True))
                rps = statistics.median(held["rps"] / fast["rps"] for held, fast in pairs)
                cpu = statistics.median(held["cpu_us"] / fast["cpu_us"] for held, fast in pairs)
                print(f"{route:6} req/s {rps:.2f}  CPU µs/req {cpu:.2f}")
                summary["before_answer_over_after_answer"][route] = {"rps": rps, "cpu_us": cpu}
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
