"""Two fleet instances in process on one vital store and one PostgreSQL control store (``app.fleet``): each window
of each patient scored by exactly one of them, the scores equal to a single instance's on the same readings (late
readings included: each instance's kept ward grid learns of windows the other re-aggregated, hazard H16), each
instance serving every patient's newest score (its view reloaded when the other finishes a window), and after one
instance stops, the other holds every bucket and scores every patient. The real-process version, with kill -9,
is ``tests/integration/test_fleet.py``."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.clock import FixedClock
from app.fleet.leases import Claims
from app.fleet.partition import BUCKETS, bucket_of
from app.main import create_app
from app.pipeline.scheduler import CycleScheduler
from app.settings import Settings
from app.storage.sqlite import SqliteStore
from models.windows import WINDOW
from tests.support.server import AUTH, SERVICE_KEY
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)
PATIENTS = [f"fleet-{i:02d}" for i in range(30)]
#: The cycles: the last hour's window ends. Readings before the first are loaded up front.
ENDS = [T0 - WINDOW * k for k in range(11, -1, -1)]


def minute_readings(patient: str, start: datetime, end: datetime, rng: np.random.Generator) -> list[dict]:
    out = []
    ts = start
    while ts < end:
        for vital, mean, sd in (("hr", 85, 9), ("spo2", 95, 1.5), ("rr", 18, 3)):
            out.append({"patient_id": patient, "vital": vital, "ts": ts.isoformat(),
                        "value": min(100.0, round(float(rng.normal(mean, sd)), 1))})
        ts += timedelta(minutes=1)
    return out


def late_readings(k: int, end: datetime) -> list[dict]:
    """A few patients' readings at second 17 of a window four windows back: late data re-aggregating old windows."""
    at = end - 4 * WINDOW + timedelta(seconds=17 + k)
    return [{"patient_id": p, "vital": "hr", "ts": at.isoformat(), "value": 120.0 + k}
            for p in PATIENTS[k % 5::5]]


def post(client: TestClient, readings: list[dict]) -> None:
    for i in range(0, len(readings), 10_000):
        response = client.post("/v1/readings", json={"readings": readings[i:i + 10_000]})
        assert response.status_code == 200 and not response.json().get("rejected"), response.text[:500]


@contextmanager
def service(data_dir: Path, store_path: Path, **extra: object) -> Iterator[TestClient]:
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.explicit(data_dir=data_dir, demo_key=SERVICE_KEY, challenger_enabled=False, **extra)
    app = create_app(settings, FixedClock(NOW), cycle_interval_s=None, store=SqliteStore(store_path))
    with TestClient(app, headers=AUTH) as client:
        yield client


def cycle(client: TestClient, end: datetime) -> dict:
    response = client.post("/v1/cycle", params={"window_end": end.isoformat()})
    assert response.status_code == 200, response.text
    return response.json()


def latest_end(client: TestClient, patient: str) -> datetime | None:
    response = client.get(f"/v1/patients/{patient}/risk")
    return datetime.fromisoformat(response.json()["window_end"]) if response.status_code == 200 else None


def scores_of(store_path: Path) -> dict[tuple[str, datetime], tuple[float, int | None]]:
    async def read() -> dict[tuple[str, datetime], tuple[float, int | None]]:
        store = SqliteStore(store_path)
        await store.open()
        try:
            out = {}
            for p in PATIENTS:
                for s in await store.score_history(p, ENDS[0], ENDS[-1] + WINDOW):
                    out[(p, s.window_end)] = (s.risk, s.news2.total if s.news2 else None)
            return out
        finally:
            await store.close()
    return asyncio.run(read())


def test_two_instances_score_each_window_once_and_as_one_instance_would(tmp_path: Path, postgres_dsn: str) -> None:
    rng = np.random.default_rng(24)
    first = [r for p in PATIENTS for r in minute_readings(p, T0 - timedelta(hours=3), ENDS[0] - WINDOW, rng)]
    per_window = {end: [r for p in PATIENTS for r in minute_readings(p, end - WINDOW, end, rng)] for end in ENDS}
    fleet = {"control_db": postgres_dsn, "fleet_lease_s": 2.0, "fleet_renew_s": 0.25}
    reference, shared = tmp_path / "reference.db", tmp_path / "shared.db"
    runs: list[dict] = []
    with ExitStack() as stack:
        single = stack.enter_context(service(tmp_path / "single", reference))
        a = stack.enter_context(service(tmp_path / "a", shared, instance_id="a", **fleet))
        b_stack = stack.enter_context(ExitStack())  # closed early when b leaves; closing again is a no-op
        b = b_stack.enter_context(service(tmp_path / "b", shared, instance_id="b", **fleet))
        wait_until(lambda: all(c.get("/healthz").json()["fleet"]["fleet"]["unowned_buckets"] == 0
                               and c.get("/healthz").json()["fleet"]["held_count"] == BUCKETS // 2 for c in (a, b)),
                   "the two instances to split the buckets")
        post(single, first)
        post(a, first[: len(first) // 2])
        post(b, first[len(first) // 2:])
        for k, end in enumerate(ENDS):
            batch = per_window[end] + (late_readings(k, end) if k else [])
            post(single, batch)
            post(a if k % 2 or k > 6 else b, batch)
            assert cycle(single, end)["scored"] == len(PATIENTS)
            if k == 6:  # b leaves (a clean stop hands its buckets back); a takes them at its next renewal
                b_stack.close()
                started = time.monotonic()
                wait_until(lambda: a.get("/healthz").json()["fleet"]["held_count"] == BUCKETS, "a to hold every bucket")
                assert time.monotonic() - started < 2.0 + 0.25 + 30  # lease + renew (+ a loaded machine's slack)
            for client in ((a, b) if k % 2 else (b, a)) if k < 6 else (a,):
                runs.extend(cycle(client, end)["fleet"]["runs"])
            if k == 5:  # each instance answers for every patient: the other's scores reach its view (NOTIFY, reload)
                wait_until(lambda end=end: all(latest_end(c, p) == end for c in (a, b) for p in PATIENTS),
                           "both instances to serve every patient's newest score")
    scored: Counter[tuple[str, int]] = Counter()
    for run in runs:
        for bucket, n in run["per_bucket"].items():
            scored[(run["window_end"], int(bucket))] += 1
            expected = sum(1 for p in PATIENTS if bucket_of(p) == int(bucket))
            assert n == expected, (run, expected)
    # every window of every bucket (those without patients too: claimed, 0 scored), so of every patient ...
    assert set(scored) == {(end.isoformat(), b) for end in ENDS for b in range(BUCKETS)}
    assert set(scored.values()) == {1}  # ... scored by exactly one instance
    assert {run["window_end"] for run in runs if run is not None} == {end.isoformat() for end in ENDS}
    fleet_scores, single_scores = scores_of(shared), scores_of(reference)
    assert len(single_scores) == len(PATIENTS) * len(ENDS)
    assert fleet_scores == single_scores  # late readings and all: the same scores as one instance


def test_the_scheduler_drives_each_instance_for_its_own_buckets(tmp_path: Path, postgres_dsn: str) -> None:
    """APScheduler's tick (``CycleScheduler.tick``, called directly: no wall clock) runs a fleet instance's cycle:
    each due window end once, each instance claiming and scoring only the buckets it leases."""
    rng = np.random.default_rng(7)
    fleet = {"control_db": postgres_dsn, "fleet_lease_s": 30.0, "fleet_renew_s": 0.25}
    shared = tmp_path / "shared.db"
    with service(tmp_path / "a", shared, instance_id="a", **fleet) as a, \
            service(tmp_path / "b", shared, instance_id="b", **fleet) as b:
        wait_until(lambda: all(c.get("/healthz").json()["fleet"]["held_count"] == BUCKETS // 2 for c in (a, b)),
                   "the two instances to split the buckets")
        ticks: list[int] = []
        schedulers: dict[int, CycleScheduler] = {}
        for k, since in ((0, T0 - timedelta(hours=1)), (2, T0)):  # the window end due at NOW; then the two since
            for client in (a, b):
                client.app.state.wardtwin.clock.set(NOW + k * WINDOW)
            post(b, [r for p in PATIENTS for r in minute_readings(p, since, T0 + k * WINDOW, rng)])
            for client in (a, b):
                wt = client.app.state.wardtwin
                scheduler = schedulers.setdefault(id(client), CycleScheduler(wt.fleet, wt.clock, grace_s=30.0,
                                                                             interval_s=300.0))
                ticks.append(client.portal.call(scheduler.tick))
        held = {name: set(c.get("/healthz").json()["fleet"]["held"]) for name, c in (("a", a), ("b", b))}
    assert ticks == [1, 1, 2, 2]
    claims = asyncio.run(finished_claims(postgres_dsn))
    assert {end for end, _, _, _ in claims} == {T0, T0 + WINDOW, T0 + 2 * WINDOW}
    for end in (T0, T0 + WINDOW, T0 + 2 * WINDOW):
        at = [(bucket, owner, n) for e, bucket, owner, n in claims if e == end]
        assert sorted(bucket for bucket, _, _ in at) == list(range(BUCKETS))  # every bucket once
        assert all(bucket in held[owner] for bucket, owner, _ in at)  # by its lease holder
        assert sum(n for _, _, n in at) == len(PATIENTS)


async def finished_claims(dsn: str) -> list[tuple[datetime, int, str, int]]:
    claims = Claims(dsn, "reader")
    await claims.connect()
    try:
        return [(e, b, o, n) for e, b, o, n in await claims.scored_by_window()]  # type: ignore[misc]
    finally:
        await claims.close()
