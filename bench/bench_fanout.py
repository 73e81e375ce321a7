"""Alert fan-out to 10, 200 and 1,000 WebSocket clients against a bare broadcast ceiling, in one run (issue 14).

For each client count N:

service  a real ``uvicorn app.main:app_from_env --factory`` process (SQLite store in a temporary directory,
         scheduler off, system clock) with N reading clients on ``/v1/ws/alerts`` (each acknowledges every
         event with ``{"type": "ack", "seq": N}``, as the dashboard does) plus ``--stalled`` clients that never
         read. ``--patients`` sick patients are ingested and one ``POST /v1/cycle`` raises their alerts (the
         *cycle* burst); then every alert is acknowledged and resolved in turn through the API, one event at a
         time, each waited for at every client (the *single* events).
bare     a Starlette app with one WebSocket route and ``POST /broadcast``, which encodes one JSON text of the
         size of the service's single events once and sends it to every client with ``asyncio.gather`` (the
         idiomatic broadcast, no acks, cursors, flow control or database); the same clients (they ack too, the
         bare server reads and drops the acks); no stalled client. As many broadcasts as the service's single
         events.

Latency of one receipt = the client's ``time.time()`` when the frame's bytes arrive (in ``data_received``) minus
the server-side stamp of the event: for the service the transition's own time in the event
(``alert.raised_at`` for the cycle burst, stamped when the cycle's alert rules start, i.e. before the cycle
ends, so the figure is an upper bound of "from the cycle's end"; ``acknowledged_at`` / ``resolved_at``,
stamped when the request is handled, before its database transaction); for the bare server ``time.time()``
just before it encodes. ``time.time()`` is one system-wide clock (CLOCK_REALTIME) for every process.

Clients run in ``--procs`` worker processes on a minimal asyncio protocol over websockets' sans-I/O client
(permessage-deflate offered, as browsers do), so the measuring side stays light; they still share the two cores
with the server, and the bare run pays the same client cost. ``--profile DIR`` records the service (and the bare
server) with ``py-spy record`` during the 1,000-client measurement.

``--before DIR`` first runs the service from another source tree (the commit before this work) the same way.
Prints the JSON of every run, then the Markdown table.

    git archive 2647409 | tar -x -C /tmp/wardtwin-before   # the commit before issue 14's fan-out work
    PYTHONPATH=. python bench/bench_fanout.py --clients 10 200 1000 --stalled 1 --patients 5 \
        --before /tmp/wardtwin-before --profile /tmp/fanout-profiles
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import queue
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.storage.influxd_local import free_port
from models.windows import align
from tests.support.server import AUTH, ROOT, SERVICE_KEY, terminate, wait_until_ok
from tests.support.synthetic_readings import post_all, trajectory

#: The stamp of each service event: the alert field holding the transition's time.
STAMP_FIELD = {"raised": "raised_at", "acknowledged": "acknowledged_at", "resolved": "resolved_at",
               "delivered": "delivered_at"}


# -- the bare ceiling -----------------------------------------------------------------------------------------
def bare_app() -> Any:
    """The ceiling: a Starlette app broadcasting one pre-encoded JSON text to every connected client."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    clients: set[WebSocket] = set()

    async def socket(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(json.dumps({"type": "replay", "through": 0, "more": False}))
        clients.add(ws)
        try:
            while True:
                await ws.receive_text()  # acks, dropped
        except WebSocketDisconnect:
            pass
        finally:
            clients.discard(ws)

    async def broadcast(request: Request) -> JSONResponse:
        size, seq = int(request.query_params["size"]), int(request.query_params["seq"])
        at = time.time()
        head = json.dumps({"type": "event", "seq": seq, "event": "bare", "at": at, "pad": ""})
        text = head[:-2] + "x" * max(0, size - len(head)) + '"}'  # one encoding, the service event's size
        await asyncio.gather(*(ws.send_text(text) for ws in list(clients)), return_exceptions=True)
        return JSONResponse({"clients": len(clients), "bytes": len(text)})

    async def count(request: Request) -> JSONResponse:
        return JSONResponse({"clients": len(clients)})

    return Starlette(routes=[WebSocketRoute("/ws", socket), Route("/broadcast", broadcast, methods=["POST"]),
                             Route("/healthz", count)])


# -- the clients (worker processes) ---------------------------------------------------------------------------
def _stamp(message: dict[str, Any]) -> tuple[str, float]:
    """(key, server stamp) of an event message: ``alert_id/event`` for the service, ``bare/seq`` for bare."""
    if message.get("event") == "bare":
        return f"bare/{message['seq']}", message["at"]
    alert, event = message["alert"], message["event"]
    stamp = alert.get(STAMP_FIELD.get(event, "updated_at")) or alert["updated_at"]
    return f"{alert['id']}/{event}", datetime.fromisoformat(stamp).timestamp()


def client_worker(url: str, n: int, stalled: int, deflate: bool, ready: Any, done: Any, stop: Any,
                  results: Any) -> None:
    """Open ``n`` reading and ``stalled`` never-reading clients on ``url``; report ``ready`` once every reader is
    live, each key on ``done`` once all ``n`` readers have it; on ``stop`` put (client, key, stamp, received, size)
    rows on ``results``."""
    from websockets.client import ClientProtocol
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    from websockets.frames import Opcode
    from websockets.http11 import Response
    from websockets.uri import parse_uri

    with contextlib.suppress(ImportError):
        import uvloop
        uvloop.install()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uri = parse_uri(url)
    rows: list[tuple[int, str, float, float, int]] = []
    counts: Counter[str] = Counter()
    live = [0]

    class Light(asyncio.Protocol):
        def __init__(self, index: int, reads: bool, all_live: asyncio.Event) -> None:
            self.index, self.reads, self.all_live = index, reads, all_live
            extensions = [ClientPerMessageDeflateFactory()] if deflate else None
            self.proto = ClientProtocol(uri, extensions=extensions, max_size=None)
            self.transport: asyncio.Transport | None = None
            self.closed = asyncio.get_running_loop().create_future()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]
            request = self.proto.connect()
            request.headers["Authorization"] = AUTH["Authorization"]
            self.proto.send_request(request)
            self.flush()

        def flush(self) -> None:
            for chunk in self.proto.data_to_send():
                if chunk:
                    self.transport.write(chunk)  # type: ignore[union-attr]
                else:
                    self.transport.close()  # type: ignore[union-attr]

        def data_received(self, data: bytes) -> None:
            received = time.time()
            self.proto.receive_data(data)
            for event in self.proto.events_received():
                if isinstance(event, Response):
                    if event.status_code != 101:
                        raise RuntimeError(f"handshake refused: {event.status_code}")
                    if not self.reads:
                        self.transport.pause_reading()  # type: ignore[union-attr]  # never reads again
                elif event.opcode is Opcode.TEXT:
                    self.on_text(event.data, received)
            self.flush()

        def on_text(self, data: bytes, received: float) -> None:
            message = json.loads(data)
            kind = message.get("type")
            if kind in ("event", "events"):
                events = message["events"] if kind == "events" else [message]
                self.proto.send_text(b'{"type": "ack", "seq": %d}' % events[-1]["seq"])
                for event in events:
                    key, stamp = _stamp(event)
                    rows.append((self.index, key, stamp, received, len(data)))
                    counts[key] += 1
                    if counts[key] == n:
                        done.put(key)
            elif kind == "ward":
                key = f"ward/{message['window_end']}"
                rows.append((self.index, key, datetime.fromisoformat(message["published_at"]).timestamp(),
                             received, len(data)))
                counts[key] += 1
                if counts[key] == n:
                    done.put(key)
            elif kind == "replay" and not message["more"]:
                live[0] += 1
                if live[0] == n:
                    self.all_live.set()

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.closed.done():
                self.closed.set_result(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        all_live = asyncio.Event()
        if n == 0:
            all_live.set()
        protocols: list[Light] = []
        for i in range(stalled + n):
            reads = i >= stalled
            _, protocol = await loop.create_connection(lambda i=i, reads=reads: Light(i, reads, all_live),
                                                       uri.host, uri.port)
            protocols.append(protocol)
        await all_live.wait()
        ready.put(os.getpid())
        await loop.run_in_executor(None, stop.wait)
        for protocol in protocols:
            protocol.transport.abort()  # type: ignore[union-attr]

    asyncio.run(main())
    results.put(rows)


class Clients:
    """``n`` clients spread over ``procs`` worker processes (the first also holds the stalled ones)."""

    def __init__(self, url: str, n: int, stalled: int, procs: int, deflate: bool) -> None:
        ctx = mp.get_context("spawn")
        self.ready, self.done, self.results, self.stop = ctx.Queue(), ctx.Queue(), ctx.Queue(), ctx.Event()
        shares = [n // procs + (1 if i < n % procs else 0) for i in range(min(procs, n))]
        self.workers = [ctx.Process(target=client_worker, args=(url, share, stalled if i == 0 else 0, deflate,
                                                                self.ready, self.done, self.stop, self.results))
                        for i, share in enumerate(shares)]
        self.completed: Counter[str] = Counter()
        for worker in self.workers:
            worker.start()

    def wait_ready(self, timeout: float = 600) -> None:
        for _ in self.workers:
            self.ready.get(timeout=timeout)

    def wait_for(self, keys: list[str], timeout: float = 120) -> None:
        """Block until every worker reported each key (all its readers received that event)."""
        deadline = time.monotonic() + timeout
        while any(self.completed[k] < len(self.workers) for k in keys):
            with contextlib.suppress(queue.Empty):
                self.completed[self.done.get(timeout=max(0.01, deadline - time.monotonic()))] += 1
            if time.monotonic() > deadline:
                missing = [k for k in keys if self.completed[k] < len(self.workers)]
                raise TimeoutError(f"not every client received {missing[:3]}")

    def finish(self) -> list[tuple[int, str, float, float, int]]:
        self.stop.set()
        rows: list = []
        for worker in self.workers:
            rows += [(worker.pid * 100_000 + r[0], *r[1:]) for r in self.results.get(timeout=120)]
        for worker in self.workers:
            worker.join(timeout=30)
        return rows


# -- servers --------------------------------------------------------------------------------------------------
def uvicorn_cmd(target: str, port: int, factory: bool, ws: str, deflate: bool) -> list[str]:
    cmd = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port), "--log-level",
           "warning", "--ws", ws, "--ws-per-message-deflate", str(deflate).lower()]
    return [*cmd, "--factory"] if factory else cmd


class Profiler:
    """``py-spy record`` on a process while the 1,000-client measurement runs (``--profile DIR``)."""

    def __init__(self, pid: int, out: Path | None) -> None:
        self.proc: subprocess.Popen | None = None
        if out is not None and shutil.which("py-spy"):
            out.parent.mkdir(parents=True, exist_ok=True)
            self.proc = subprocess.Popen(["py-spy", "record", "-p", str(pid), "-r", "250", "-f", "raw", "-o",
                                          str(out), "--nonblocking"], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            time.sleep(1.0)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)  # SIGINT: py-spy writes the profile and exits
            self.proc.wait(timeout=60)


def run_service(n: int, args: argparse.Namespace, profile: Path | None, tree: Path = ROOT,
                deflate: bool | None = None, ward: bool | None = None, batch: bool | None = None) -> dict[str, Any]:
    """One service run with ``n`` clients, from the source ``tree`` (the ``--before`` copy or this one)."""
    deflate = args.server_deflate if deflate is None else deflate
    ward = args.ward if ward is None else ward
    batch = args.batch if batch is None else batch
    data_dir = Path(tempfile.mkdtemp(prefix="wt-fanout-"))
    port = free_port()
    env = {**os.environ, "WARDTWIN_DATA_DIR": str(data_dir), "WARDTWIN_SCHEDULER_ENABLED": "false",
           "WARDTWIN_DEMO_KEY": SERVICE_KEY, "WARDTWIN_RATE_LIMIT_BURST": "100000", "PYTHONPATH": str(tree),
           **({"WARDTWIN_CONTROL_DB": args.control_db} if args.control_db else {})}
    proc = subprocess.Popen(uvicorn_cmd("app.main:app_from_env", port, True, args.ws, deflate), cwd=tree, env=env)
    base = f"http://127.0.0.1:{port}"
    clients = None
    try:
        wait_until_ok(f"{base}/healthz", proc=proc)
        url = f"ws://127.0.0.1:{port}/v1/ws/alerts?ward={int(ward)}&batch={int(batch)}"
        clients = Clients(url, n, args.stalled, args.procs, args.client_deflate)
        clients.wait_ready()
        with httpx.Client(base_url=base, headers=AUTH, timeout=None) as http:
            end = align(datetime.fromisoformat(http.get("/healthz").json()["now"])).to_pydatetime()
            readings = [r for i in range(args.patients) for r in trajectory(f"sick-{i}", end, True, i + 2)]
            post_all(http, readings)
            for k in (2, 1):  # the twin raises on risk sustained over three windows (issue 20): the last is timed
                http.post("/v1/cycle", params={"window_end": (end - k * timedelta(minutes=5)).isoformat()}
                          ).raise_for_status()
            profiler = Profiler(proc.pid, profile)
            cycle_sent = time.time()
            cycle = http.post("/v1/cycle", params={"window_end": end.isoformat()})
            cycle_returned = time.time()
            cycle.raise_for_status()
            alerts = http.get("/v1/alerts").json()
            wards = [f"ward/{end.isoformat()}"] if ward else []
            clients.wait_for([f"{a['id']}/raised" for a in alerts] + [f"{a['id']}/delivered" for a in alerts] + wards)
            singles = []
            for alert in alerts:
                for action, event in (("acknowledge", "acknowledged"), ("resolve", "resolved")):
                    http.post(f"/v1/alerts/{alert['id']}/{action}").raise_for_status()
                    clients.wait_for([f"{alert['id']}/{event}"])
                    singles.append(f"{alert['id']}/{event}")
            profiler.stop()
            health = http.get("/healthz").json()
        rows = clients.finish()
        clients = None
    finally:
        if clients is not None:
            clients.stop.set()
        terminate(proc)
        shutil.rmtree(data_dir, ignore_errors=True)
    burst = [f"{a['id']}/raised" for a in alerts]
    # the burst against the cycle's end (the ward update's published_at, stamped as the cycle's rules finish)
    cycle_end = next((r[2] for r in rows if wards and r[1] == wards[0]), None)
    after_end = [1000 * (r[3] - cycle_end) for r in rows if cycle_end is not None and r[1] in set(burst)]
    return {"cycle": stats(rows, burst), "single": stats(rows, singles), "ward": stats(rows, wards) if wards else None,
            "burst_last_after_cycle_end_ms": max(after_end) if after_end else None,
            "cycle_request_ms": 1000 * (cycle_returned - cycle_sent), "alerts": len(alerts),
            "size": int(statistics.median(r[4] for r in rows if r[1] in set(singles))),
            "burst_size": int(statistics.median(r[4] for r in rows if r[1] in set(burst))),
            "websocket_clients_at_end": health["websocket_clients"]}


def run_bare(n: int, args: argparse.Namespace, size: int, rounds: int, profile: Path | None,
             burst_size: int) -> dict[str, Any]:
    """The bare ceiling: ``rounds`` broadcasts of ``size`` bytes, then 3 of ``burst_size`` (the cycle burst's
    frame)."""
    port = free_port()
    proc = subprocess.Popen(uvicorn_cmd("bench.bench_fanout:bare_app", port, True, args.ws, args.server_deflate),
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    clients = None
    try:
        wait_until_ok(f"{base}/healthz", proc=proc)
        clients = Clients(f"ws://127.0.0.1:{port}/ws", n, 0, args.procs, args.client_deflate)
        clients.wait_ready()
        profiler = Profiler(proc.pid, profile)
        with httpx.Client(base_url=base, timeout=None) as http:
            for seq in range(1, rounds + 1):
                http.post("/broadcast", params={"size": size, "seq": seq}).raise_for_status()
                clients.wait_for([f"bare/{seq}"])
            for seq in range(10_001, 10_004):
                http.post("/broadcast", params={"size": burst_size, "seq": seq}).raise_for_status()
                clients.wait_for([f"bare/{seq}"])
        profiler.stop()
        rows = clients.finish()
        clients = None
    finally:
        if clients is not None:
            clients.stop.set()
        terminate(proc)
    return {"single": stats(rows, [f"bare/{s}" for s in range(1, rounds + 1)]),
            "burst": stats(rows, [f"bare/{s}" for s in range(10_001, 10_004)]), "burst_size": burst_size}


def stats(rows: list[tuple[int, str, float, float, int]], keys: list[str]) -> dict[str, float]:
    """p50 and p99 over every receipt of ``keys``; ``last``: per event the last client's latency, median and max
    over the events."""
    wanted = set(keys)
    per_key: dict[str, list[float]] = defaultdict(list)
    for _, key, stamp, received, _ in rows:
        if key in wanted:
            per_key[key].append(1000 * (received - stamp))
    every = sorted(x for values in per_key.values() for x in values)
    lasts = [max(values) for values in per_key.values()]
    return {"receipts": len(every), "events": len(per_key), "p50_ms": statistics.median(every),
            "p99_ms": every[int(0.99 * (len(every) - 1))], "last_median_ms": statistics.median(lasts),
            "last_max_ms": max(lasts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 200, 1000])
    parser.add_argument("--stalled", type=int, default=1)
    parser.add_argument("--patients", type=int, default=5)
    parser.add_argument("--procs", type=int, default=4, help="client worker processes")
    parser.add_argument("--ws", default="auto", help="uvicorn --ws implementation, for both servers")
    parser.add_argument("--server-deflate", action=argparse.BooleanOptionalAction, default=False,
                        help="uvicorn --ws-per-message-deflate for both servers (default: off, as `wardtwin serve`)")
    parser.add_argument("--client-deflate", action=argparse.BooleanOptionalAction, default=True,
                        help="clients offer permessage-deflate, as browsers do")
    parser.add_argument("--profile", type=Path, default=None, help="directory for py-spy profiles at the most clients")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--control-db", default=None,
                        help="the service's WARDTWIN_CONTROL_DB (a fresh PostgreSQL database; default: SQLite files)")
    parser.add_argument("--before", type=Path, default=None,
                        help="a source tree to run first as 'before' (e.g. `git archive HEAD | tar -x -C DIR`), with "
                             "permessage-deflate on (uvicorn's default, which `wardtwin serve` used) and plain frames")
    parser.add_argument("--batch", action=argparse.BooleanOptionalAction, default=True,
                        help="clients take batched frames (?batch=1)")
    parser.add_argument("--ward", action=argparse.BooleanOptionalAction, default=True,
                        help="clients subscribe to ward updates (?ward=1) and the cycle's one is timed")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out: dict[str, Any] = {"machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
                                      f"Python {platform.python_version()}", "ws": args.ws,
                           "server_deflate": args.server_deflate, "client_deflate": args.client_deflate,
                           "runs": []}
    top = max(args.clients)
    for n in args.clients:
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        profile_dir = args.profile if (args.profile is not None and n == top) else None
        before = None if args.before is None else run_service(
            n, args, profile_dir / "before.txt" if profile_dir else None, tree=args.before, deflate=True, ward=False,
            batch=False)
        service = run_service(n, args, profile_dir / "service.txt" if profile_dir else None)
        bare = None if args.skip_bare else run_bare(
            n, args, service["size"], service["single"]["events"], profile_dir / "bare.txt" if profile_dir else None,
            service["burst_size"])
        load_after = Path("/proc/loadavg").read_text().split()[:3]
        run = {"clients": n, "stalled": args.stalled, "before": before, "service": service, "bare": bare,
               "loadavg_before": " ".join(load_before), "loadavg_after": " ".join(load_after)}
        out["runs"].append(run)
        sys.stderr.write(json.dumps(run) + "\n")
    sys.stdout.write(json.dumps(out, indent=2) + "\n\n" + table(out) + "\n")


def table(out: dict[str, Any]) -> str:
    """The Markdown table: one row per client count; times in ms; "last" = the last client's receipt."""
    def three(x: dict[str, float] | None) -> str:
        return f"{x['p50_ms']:.1f} / {x['p99_ms']:.1f} / {x['last_median_ms']:.1f}, {x['last_max_ms']:.1f}" \
            if x else "—"

    lines = ["| clients | before: single event p50 / p99 / last (median, max) | before: cycle burst from `raised_at` "
             "| single event: p50 / p99 / last (median, max) | bare broadcast, same size: p50 / p99 / last "
             "(median, max) | ratio of last (median): service / bare | ward update: p50 / p99 / last | cycle burst "
             "from `raised_at`: p50 / p99 / last (median, max) | burst: last receipt after the cycle's end | "
             "bare broadcast of the burst's frame size: p50 / p99 / last (median, max) | "
             "load avg before → after |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in out["runs"]:
        service, bare = run["service"], (run["bare"] or {}).get("single")
        ratio = f"{service['single']['last_median_ms'] / bare['last_median_ms']:.2f}" if bare else "—"
        after = service.get("burst_last_after_cycle_end_ms")
        old = run.get("before") or {}
        lines.append(f"| {run['clients']} (+{run['stalled']} stalled) | {three(old.get('single'))} | "
                     f"{three(old.get('cycle'))} | {three(service['single'])} | {three(bare)} | "
                     f"{ratio} | {three(service.get('ward'))} | {three(service['cycle'])} | "
                     f"{'—' if after is None else f'{after:.1f}'} | {three((run['bare'] or {}).get('burst'))} | "
                     f"{run['loadavg_before']} → {run['loadavg_after']} |")
    return "\n".join(lines)

if __name__ == "__main__":
    main()
