"""How long an alert event takes to reach every WebSocket client, with one stalled client among them (issue 13).

A real ``uvicorn app.main:app_from_env --factory`` process on a temporary data directory (SQLite store, scheduler
off, system clock). ``--clients`` clients connect to ``/v1/ws/alerts`` (each reads every event and acknowledges it
with ``{"type": "ack", "seq": N}``), plus ``--stalled`` clients that connect and never read (their TCP receive
window fills; the server's sends to them block). ``--patients`` sick patients are ingested (the hand-made
trajectories of ``tests/support/synthetic_readings.py``) and one cycle raises their alerts; then each alert is
acknowledged through ``POST /v1/alerts/{id}/acknowledge`` in turn, and for each acknowledgement the time from the
request being sent to each reading client receiving the ``acknowledged`` event is recorded.

    PYTHONPATH=. python bench/bench_ws_fanout.py --clients 199 --stalled 1 --patients 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from app.storage.influxd_local import free_port
from models.windows import align
from tests.support.server import AUTH, ROOT, SERVICE_KEY, terminate, wait_until_ok
from tests.support.synthetic_readings import post_all, trajectory


async def reader(url: str, received: dict[int, dict[str, float]], ready: asyncio.Event, counter: list[int],
                 n: int) -> None:
    async with connect(url, additional_headers=AUTH, open_timeout=None, max_size=None) as ws:
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "replay" and not message["more"]:
                counter[0] += 1
                if counter[0] == n:
                    ready.set()
            if message["type"] == "event":
                if message["event"] == "acknowledged":
                    received.setdefault(message["seq"], {})[id(ws)] = time.perf_counter()
                await ws.send(json.dumps({"type": "ack", "seq": message["seq"]}))


async def stalled(url: str, done: asyncio.Event) -> None:
    async with connect(url, additional_headers=AUTH, open_timeout=None, max_queue=1) as ws:
        await done.wait()  # never reads: frames pile up, then the TCP window closes
        ws.transport.abort()


async def run(args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="wt-fanout-"))
    port = free_port()
    env = {**os.environ, "WARDTWIN_DATA_DIR": str(data_dir), "WARDTWIN_SCHEDULER_ENABLED": "false",
           "WARDTWIN_DEMO_KEY": SERVICE_KEY, "WARDTWIN_RATE_LIMIT_BURST": "100000"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app_from_env", "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    base, url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/v1/ws/alerts"
    try:
        wait_until_ok(f"{base}/healthz", proc=proc)
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=None) as client:
            received: dict[int, dict[str, float]] = {}
            ready, done, counter = asyncio.Event(), asyncio.Event(), [0]
            tasks = [asyncio.create_task(stalled(url, done)) for _ in range(args.stalled)]
            tasks += [asyncio.create_task(reader(url, received, ready, counter, args.clients))
                      for _ in range(args.clients)]
            await ready.wait()
            end = align(datetime.fromisoformat((await client.get("/healthz")).json()["now"])).to_pydatetime()
            readings = [r for i in range(args.patients) for r in trajectory(f"sick-{i}", end, True, i + 2)]
            await asyncio.to_thread(post_all, httpx.Client(base_url=base, headers=AUTH, timeout=None), readings)
            (await client.post("/v1/cycle", params={"window_end": end.isoformat()})).raise_for_status()
            alerts = (await client.get("/v1/alerts")).json()
            latencies, per_ack = [], []
            for alert in alerts:
                sent = time.perf_counter()
                seq_before = set(received)
                (await client.post(f"/v1/alerts/{alert['id']}/acknowledge")).raise_for_status()
                while True:  # wait until every reading client has the new 'acknowledged' event
                    new = [s for s in received if s not in seq_before]
                    if new and len(received[new[0]]) == args.clients:
                        break
                    await asyncio.sleep(0.005)
                got = [t - sent for t in received[new[0]].values()]
                latencies += got
                per_ack.append(max(got))
            health = (await client.get("/healthz")).json()
            done.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        terminate(proc)
    latencies.sort()
    return {"clients": args.clients, "stalled": args.stalled, "acknowledgements": len(per_ack),
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
            "max_ms": 1000 * max(latencies), "websocket_clients_at_end": health["websocket_clients"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=199)
    parser.add_argument("--stalled", type=int, default=1)
    parser.add_argument("--patients", type=int, default=5)
    result = asyncio.run(run(parser.parse_args()))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
