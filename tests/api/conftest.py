"""In-process route tests: ``create_app(Settings(...), clock=FixedClock(...))`` driven by Starlette's TestClient.

The client is used as a context manager, so the app's lifespan runs (stores opened, alert delivery started) and
nothing listens on a socket. No test sleeps or reads the wall clock: the service's time is ``NOW`` and every cycle
is asked for with an explicit ``window_end``.

Fixtures
--------
- ``client``: an empty service in ``tmp_path`` (clock at ``NOW``), for validation and error paths.
- ``alerting``: ``client`` with the sick patient's three hours ingested and one cycle at ``T0``, which raises one
  alert (its id is the fixture's value). Function-scoped, so tests may acknowledge and resolve it.
- ``ward``: a stable and a sick patient, three hours each, scored at every window end: the read-only ward that
  the patient-route tests share (session-scoped; never mutate it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.clock import FixedClock
from app.main import create_app
from app.settings import Settings
from models.windows import WINDOW
from tests.support.synthetic_readings import HOURS, trajectory

#: The newest window end of the synthetic ward; the readings run over the three hours before it.
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
#: The service's (fixed) clock: one minute after T0, as a cycle runs just after its window end.
NOW = T0 + timedelta(minutes=1)
SICK, STABLE = "sick-1", "stable-1"
#: Every window end of the three hours, oldest first.
WINDOW_ENDS = tuple(T0 - timedelta(hours=HOURS) + WINDOW * (i + 1) for i in range(HOURS * 12))


def iso(ts: datetime) -> str:
    return ts.isoformat()


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def reading(patient_id: str = "bed-1", vital: str = "hr", value: Any = 80, ts: datetime | str = T0,
            **extra: Any) -> dict[str, Any]:
    return {"patient_id": patient_id, "vital": vital, "value": value,
            "ts": iso(ts) if isinstance(ts, datetime) else ts, **extra}


@contextmanager
def serve(data_dir: Path, clock: FixedClock | None = None, **settings: Any) -> Iterator[TestClient]:
    """The service on ``data_dir`` (embedded SQLite store), its lifespan running, no scheduler."""
    app = create_app(Settings(data_dir=data_dir, **settings), clock=clock or FixedClock(NOW), cycle_interval_s=None)
    with TestClient(app) as client:
        yield client


def post_readings(client: TestClient, readings: list[dict]) -> int:
    """Post in batches of at most 10,000; every batch must be accepted whole."""
    accepted = 0
    for i in range(0, len(readings), 10_000):
        response = client.post("/v1/readings", json={"readings": readings[i:i + 10_000]})
        assert response.status_code == 200, response.text
        accepted += response.json()["accepted"]
    return accepted


def run_cycle(client: TestClient, window_end: datetime) -> dict:
    response = client.post("/v1/cycle", params={"window_end": iso(window_end)})
    assert response.status_code == 200, response.text
    return response.json()


def assert_422(response: httpx.Response, loc: list) -> list[dict]:
    """A 422 in FastAPI's shape (``detail`` = list of ``{loc, msg, type}``) with an item at ``loc``."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    for item in detail:
        assert {"loc", "msg", "type"} <= set(item) and isinstance(item["msg"], str) and item["msg"]
    assert loc in [item["loc"] for item in detail], detail
    return detail


def assert_domain_error(response: httpx.Response, status: int, code: str) -> None:
    """A mapped domain error: the status and ``{"detail": message, "code": code}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and isinstance(body["detail"], str) and body["detail"]


@pytest.fixture(scope="session")
def sick_readings() -> list[dict]:
    return trajectory(SICK, T0, True, 2)


@pytest.fixture(scope="session")
def stable_readings() -> list[dict]:
    return trajectory(STABLE, T0, False, 1)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def client(tmp_path: Path, clock: FixedClock) -> Iterator[TestClient]:
    with serve(tmp_path, clock) as client:
        yield client


@pytest.fixture
def alerting(client: TestClient, sick_readings: list[dict]) -> str:
    """The sick patient ingested and scored at T0: one alert raised, not yet delivered (nobody listens)."""
    post_readings(client, sick_readings)
    assert run_cycle(client, T0)["alerts_raised"] == 1
    (alert,) = client.get("/v1/alerts").json()
    return alert["id"]


@dataclass(frozen=True)
class Ward:
    client: TestClient
    cycles: list[dict]  # the POST /v1/cycle answers, one per WINDOW_ENDS item


@pytest.fixture(scope="session")
def ward(tmp_path_factory: pytest.TempPathFactory, sick_readings: list[dict],
         stable_readings: list[dict]) -> Iterator[Ward]:
    with serve(tmp_path_factory.mktemp("ward")) as client:
        assert post_readings(client, stable_readings + sick_readings) == len(stable_readings) + len(sick_readings)
        yield Ward(client, [run_cycle(client, end) for end in WINDOW_ENDS])
