"""One control-store operation at a time, on each engine (issue 24): the latency of the alert store's transactions
(raise, acknowledge, a page of ``events_after``), a webhook claim and a key lookup, on the embedded SQLite files and
on a throwaway local PostgreSQL (``app.storage.postgres_local``: loopback, ``fsync=off``, so PostgreSQL's numbers
are its protocol and locking, not a disk's). Prints one JSON object: per engine and operation, the median and 90th
percentile in milliseconds.

    python bench/bench_control_ops.py              # 200 of each
    python bench/bench_control_ops.py --n 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.alerts.store import AlertStore  # noqa: E402
from app.alerts.webhooks import WebhookStore  # noqa: E402
from app.security.keys import KeyStore  # noqa: E402
from app.storage.postgres_local import ManagedPostgres, find_pg_bin  # noqa: E402

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 3), "p90_ms": round(ordered[int(0.9 * len(ordered))], 3)}


async def timed(n: int, op: Callable[[int], Awaitable[object]]) -> dict[str, float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        await op(i)
        samples.append((time.perf_counter() - t0) * 1000)
    return summary(samples)


async def measure(alerts_target: Path | str, access_target: Path | str, n: int) -> dict[str, dict[str, float]]:
    store = AlertStore(alerts_target)
    await store.open()
    hooks = WebhookStore(store.db, wall=lambda: 1_000.0)
    await hooks.open()
    keys = KeyStore(access_target)
    keys.open()
    try:
        await hooks.create("http://receiver/hook", SECRET, ["alert.raised"])
        ids: list[str] = []

        async def raise_(i: int) -> None:
            alert = await store.raise_alert(f"bed-{i}", T0, 0.8, ["bench"], T0, kind="twin")
            assert alert is not None
            ids.append(alert.id)

        out = {"raise_alert": await timed(n, raise_)}
        out["acknowledge"] = await timed(n, lambda i: store.acknowledge(ids[i], "nurse", T0 + timedelta(minutes=1)))
        out["events_after_page_100"] = await timed(n, lambda i: store.events_after(i, limit=100))
        await hooks.fan_out()
        out["claim_pending_1"] = await timed(n, lambda i: hooks.claim_pending("w", 1_000.0, limit=1))
        _, token = keys.create("bench", "clinician", T0)
        out["key_lookup"] = await timed(n, lambda i: asyncio.to_thread(keys.lookup, token))
        return out
    finally:
        keys.close()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="operations of each kind per engine")
    args = parser.parse_args()
    result: dict[str, object] = {"n": args.n}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = asyncio.run(measure(Path(tmp) / "alerts.db", Path(tmp) / "access.db", args.n))
    bin_dir = find_pg_bin()
    if bin_dir is None:
        result["postgresql"] = "not installed"
    else:
        server = ManagedPostgres(bin_dir)
        server.start()
        try:
            dsn = server.create_database("bench_control")
            result["postgresql"] = asyncio.run(measure(dsn, dsn, args.n))
        finally:
            server.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
