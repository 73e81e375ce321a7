"""The hot reads' cost per request in process: the ASGI app called directly (no sockets, no uvicorn), 32 callers
at once on one event loop, against a bare FastAPI app sending the same bytes (``bare-bytes`` of
``bench/bench_reads.py``), counting the CPU time of the event loop's thread. Finds where the service's time goes
without wrk and without a loaded machine's noise between processes; ``--profile`` runs the service's calls under
cProfile and prints the top of the table.

    python bench/bench_reads_inproc.py                      # µs per request, service and bare, 3 rounds
    python bench/bench_reads_inproc.py --profile risk       # and cProfile of the /risk calls
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from fastapi import FastAPI, Response

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.clock import FixedClock  # noqa: E402
from app.main import create_app  # noqa: E402
from app.security.keys import new_token  # noqa: E402
from app.settings import Settings  # noqa: E402

VITALS = (("hr", 60, 40), ("spo2", 92, 7), ("rr", 12, 10), ("sbp", 100, 40), ("temp", 36.5, 2.0))


def bare_app(bodies: dict[str, bytes]) -> FastAPI:
    app = FastAPI()
    for name, body in bodies.items():
        async def endpoint(body: bytes = body) -> Response:
            return Response(body, media_type="application/json")
        app.add_api_route(f"/{name}.raw", endpoint, methods=["GET"])
    return app


def scope_for(path: str, token: str | None) -> dict:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}


async def hammer(app, path: str, token: str | None, total: int, callers: int) -> float:
    """CPU seconds of the event loop's thread (what a loaded machine steals from it is not counted) for
    ``total`` requests, ``callers`` at a time; every answer must be 200."""
    template = scope_for(path, token)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def caller(n: int) -> None:
        status: list[int] = []

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        for _ in range(n):
            await app(dict(template), receive, send)
        assert status == [200] * n, (path, set(status))

    t0 = time.thread_time()
    await asyncio.gather(*(caller(total // callers) for _ in range(callers)))
    return time.thread_time() - t0


async def run(args: argparse.Namespace) -> None:
    admin = new_token()
    with tempfile.TemporaryDirectory(prefix="bench-inproc-") as tmp:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        window_end = now.replace(minute=now.minute - now.minute % 5)
        settings = Settings(_env_file=None, data_dir=Path(tmp), demo_key=admin, rate_limit_per_s=1e9,
                            rate_limit_burst=10**9, max_batch_readings=10_000)
        app = create_app(settings, clock=FixedClock(window_end + timedelta(minutes=1)), cycle_interval_s=None)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                         headers={"authorization": f"Bearer {admin}"}) as client:
                items = []
                for p in range(args.patients):
                    for m in range(30):
                        ts = (window_end - timedelta(minutes=30 - m)).isoformat()
                        for k, (vital, lo, span) in enumerate(VITALS):
                            items.append({"patient_id": f"bed-{p:04d}", "vital": vital, "ts": ts,
                                          "value": round(lo + span * (((p * 7 + m * 3 + k * 5) % 11) / 10), 1)})
                (await client.post("/v1/readings", content=orjson.dumps({"readings": items}),
                                   headers={"content-type": "application/json"})).raise_for_status()
                (await client.post("/v1/cycle", params={"window_end": window_end.isoformat()})).raise_for_status()
                key = (await client.post("/v1/keys", json={"name": "bench", "role": "clinician"})).json()["token"]
                auth = {"authorization": f"Bearer {key}"}
                bodies = {"risk": (await client.get("/v1/patients/bed-0000/risk", headers=auth)).content,
                          "board": (await client.get("/v1/patients", headers=auth)).content}
            bare = bare_app(bodies)
            paths = {"risk": "/v1/patients/bed-0000/risk", "board": "/v1/patients"}
            await hammer(bare, "/risk.raw", None, 2000, args.callers)  # warm both
            for path in paths.values():
                await hammer(app, path, key, 2000, args.callers)
            per: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.rounds):
                for route, path in paths.items():
                    per.setdefault((route, "bare-bytes"), []).append(
                        await hammer(bare, f"/{route}.raw", None, args.requests, args.callers) / args.requests)
                    per.setdefault((route, "service"), []).append(
                        await hammer(app, path, key, args.requests, args.callers) / args.requests)
            print(f"{args.requests} requests x {args.rounds} rounds, {args.callers} callers, median loop-thread CPU "
                  "µs/request; "
                  f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            for route in paths:
                b, s = statistics.median(per[(route, "bare-bytes")]), statistics.median(per[(route, "service")])
                print(f"{route:6} bare-bytes {b * 1e6:6.1f}  service {s * 1e6:6.1f}  bare/service {b / s:.2f}")
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await hammer(app, paths[args.profile], key, args.requests, args.callers)
                profiler.disable()
                pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", choices=["risk", "board"], default=None)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
