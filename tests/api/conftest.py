"""In-process route tests: ``create_app(Settings(...), clock=FixedClock(...))`` driven by Starlette's TestClient.

The client is used as a context manager, so the app's lifespan runs (stores opened, alert delivery started) and
nothing listens on a socket. No test sleeps or reads the wall clock: the service's time is ``NOW`` and every cycle
is asked for with an explicit ``window_end``.

Fixtures
--------
- ``client``: an empty service in ``tmp_path`` (clock at ``NOW``), for validation and error paths.
- ``alerting``: ``client`` with the sick patient's three hours ingested, a nurse's set charted at ``T0`` (a news2
  alert at once) and the cycles of the three windows to ``T0`` (the twin's sustained alert): the alerts of
  ``ALERTING_KINDS``; the twin alert's id is the fixture's value. Function-scoped, so tests may acknowledge and
  resolve them.
- ``ward``: a stable and a sick patient, three hours each, scored at every window end: the read-only ward that
  the patient-route tests share (session-scoped; never mutate it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.clock import FixedClock
from tests.support.api import (
    ALERTING_KINDS,
    NOW,
    SICK,
    STABLE,
    T0,
    WINDOW_ENDS,
    Ward,
    post_readings,
    raise_alerts,
    run_cycle,
    serve,
)
from tests.support.synthetic_readings import trajectory


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
    """The sick patient ingested, charted and scored to T0: the alerts of ``ALERTING_KINDS`` raised, not yet
    delivered (nobody listens). Returns the twin alert's id."""
    post_readings(client, sick_readings)
    assert raise_alerts(client) == len(ALERTING_KINDS)
    assert sorted(a["kind"] for a in client.get("/v1/alerts").json()) == sorted(ALERTING_KINDS)
    (alert,) = client.get("/v1/alerts", params={"kind": "twin"}).json()
    return alert["id"]


@pytest.fixture(scope="session")
def ward(tmp_path_factory: pytest.TempPathFactory, sick_readings: list[dict],
         stable_readings: list[dict]) -> Iterator[Ward]:
    with serve(tmp_path_factory.mktemp("ward")) as client:
        assert post_readings(client, stable_readings + sick_readings) == len(stable_readings) + len(sick_readings)
        yield Ward(client, [run_cycle(client, end) for end in WINDOW_ENDS])
