"""A restarted service scores exactly as an uninterrupted one: which windows need re-aggregation (late and
backfilled readings) is recorded durably in the store, not in the memory of the process that took them.

Three runs of the same ward, each in process through ``create_app`` on real store files (and a real influxd):
``steady`` never stops; ``restarted`` is stopped right after a gateway delivered readings 45–60 minutes late
(before any cycle aggregated them) and a new app is built on the same data; ``never_late`` never receives
them. ``restarted`` must equal ``steady`` byte for byte, and differ from ``never_late`` (else the late
readings would not matter and the test could not fail).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI

from app.clock import FixedClock
from app.main import create_app
from app.settings import Settings
from models.windows import WINDOW
from simulator.ward import Ward
from tests.support.server import AUTH, SERVICE_KEY

START = datetime(2026, 1, 5, tzinfo=UTC)
HOURS = 3
LATE_FROM, LATE_TO = START + timedelta(minutes=75), START + timedelta(minutes=90)  # withheld readings' time span
DELIVERED_LATE_AT = START + timedelta(minutes=135)  # window end at which the gateway delivers them
BEDS, SEED = 6, 3


def ward_batches() -> tuple[dict[datetime, list[dict]], list[dict]]:
    """Readings due at each window end (as the simulated ward delivers them), and the withheld late ones."""
    ward = Ward(BEDS, SEED, pd.Timestamp(START))
    due: dict[datetime, list[dict]] = {}
    late: list[dict] = []
    window_end = START + WINDOW
    while window_end <= START + timedelta(hours=HOURS):
        items = ward.advance(pd.Timestamp(window_end))
        withheld = [r for r in items if r["patient_id"] == "bed-02"
                    and LATE_FROM <= datetime.fromisoformat(r["ts"]) < LATE_TO]
        late += withheld
        due[window_end] = [r for r in items if not (r["patient_id"] == "bed-02"
                                                    and LATE_FROM <= datetime.fromisoformat(r["ts"]) < LATE_TO)]
        window_end += WINDOW
    return due, late


class Service:
    """One service instance, in process, entered and left like a process start and stop."""

    def __init__(self, settings: Settings, clock: FixedClock) -> None:
        self.app: FastAPI = create_app(settings, clock, cycle_interval_s=None)
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://wardtwin",
                                        headers=AUTH)

    async def __aenter__(self) -> Service:
        await self._lifespan.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self._lifespan.__aexit__(None, None, None)

    async def post(self, readings: list[dict]) -> None:
        for i in range(0, len(readings), 10_000):
            response = await self.client.post("/v1/readings", json={"readings": readings[i:i + 10_000]})
            assert response.status_code == 200, response.text[:300]

    async def cycle(self, window_end: datetime) -> None:
        response = await self.client.post("/v1/cycle", params={"window_end": window_end.isoformat()})
        assert response.status_code == 200, response.text[:300]

    async def scores(self, since: datetime) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for bed in range(1, BEDS + 1):
            response = await self.client.get(f"/v1/patients/bed-{bed:02d}/risk/history", params={
                "since": since.isoformat(), "until": (START + timedelta(hours=HOURS)).isoformat()})
            assert response.status_code == 200, response.text[:300]
            out += response.json()
        return out


async def run_ward(settings: Callable[[], Settings], *, restart: bool, late_delivered: bool) -> list[dict]:
    due, late = ward_batches()
    clock = FixedClock(START)
    service = await Service(settings(), clock).__aenter__()
    try:
        for window_end, readings in due.items():
            clock.set(window_end)
            await service.post(readings)
            if window_end == DELIVERED_LATE_AT and late_delivered:
                await service.post(late)
                if restart:  # stopped with the late readings stored but not yet aggregated
                    await service.__aexit__(None, None, None)
                    service = await Service(settings(), clock).__aenter__()
            await service.cycle(window_end)
        return await service.scores(since=DELIVERED_LATE_AT)
    finally:
        await service.__aexit__(None, None, None)


@pytest.fixture(params=["sqlite", pytest.param("influx", marks=pytest.mark.influx)])
def settings_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Callable[[], Settings]]:
    """``factory(run)`` → a settings maker for one run's store (the same store on every call: a restart)."""

    def factory(run: str) -> Callable[[], Settings]:
        data_dir = tmp_path / run
        if request.param == "sqlite":
            return lambda: Settings(data_dir=data_dir, demo_key=SERVICE_KEY)
        server = request.getfixturevalue("influxd")
        database = f"restart_{run}_{uuid.uuid4().hex[:8]}"
        return lambda: Settings(data_dir=data_dir, influx_url=server.url, influx_database=database,
                                demo_key=SERVICE_KEY)

    return factory


async def test_restart_with_late_readings_pending_scores_as_an_uninterrupted_run(settings_factory) -> None:
    steady = await run_ward(settings_factory("steady"), restart=False, late_delivered=True)
    restarted = await run_ward(settings_factory("restarted"), restart=True, late_delivered=True)
    never_late = await run_ward(settings_factory("never_late"), restart=False, late_delivered=False)

    window_ends = (timedelta(hours=HOURS) - (DELIVERED_LATE_AT - START)) // WINDOW + 1
    assert len(steady) == BEDS * window_ends  # one score per patient per window end
    assert restarted == steady  # byte-identical JSON after the restart
    assert never_late != steady  # the late readings change the scores: without them the runs differ
    changed = {s["patient_id"] for s, n in zip(steady, never_late, strict=True) if s != n}
    assert changed == {"bed-02"}
