"""Helpers for the in-process route tests (``tests/api``): the fixed times, reading builders, the service under
TestClient, and assertions on the error shape (RFC 9457 problem details). Fixtures live in ``tests/api/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from app.clock import FixedClock
from app.main import create_app
from app.settings import Settings
from models.windows import WINDOW
from tests.support.server import SERVICE_KEY
from tests.support.synthetic_readings import HOURS, post_all

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


#: The tests' key with every role (the service's ``demo_key``); ``serve`` gives its client this credential.
EVERY_ROLE_KEY = SERVICE_KEY


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def serve(data_dir: Path, clock: FixedClock | None = None, **settings: Any) -> Iterator[TestClient]:
    """The service on ``data_dir`` (embedded SQLite store), its lifespan running, no scheduler. The client holds
    ``EVERY_ROLE_KEY`` (a key with every role); ``client_as`` builds clients with one role or none."""
    settings.setdefault("demo_key", EVERY_ROLE_KEY)
    app = create_app(Settings(data_dir=data_dir, **settings), clock=clock or FixedClock(NOW), cycle_interval_s=None)
    with TestClient(app, headers=bearer(EVERY_ROLE_KEY)) as client:
        yield client


def create_key(client: TestClient, role: str, name: str | None = None) -> str:
    """A new stored key of ``role`` on ``client``'s service (the service must be running); its token."""
    access = client.app.state.access  # type: ignore[attr-defined]
    _, token = access.keys.create(name or f"test {role}", role, NOW)
    return token


def client_as(client: TestClient, role: str | None, name: str | None = None) -> TestClient:
    """Another client on the same running service: with a new key of ``role`` (named ``name``), or with no
    credential when ``role`` is None. Not a context manager: the service's lifespan is ``client``'s."""
    headers = bearer(create_key(client, role, name)) if role else {}
    return TestClient(client.app, headers=headers)


#: Post in batches of at most 10,000; every batch must be accepted whole.
post_readings = post_all


def run_cycle(client: TestClient, window_end: datetime) -> dict:
    response = client.post("/v1/cycle", params={"window_end": iso(window_end)})
    assert response.status_code == 200, response.text
    return response.json()


#: A nurse's full set for the sick patient at T0: NEWS2 10 (RR 26: 3, SpO2 92: 2, SBP 95: 2, pulse 125: 2, 38.5 °C: 1),
#: an emergency response (issue 20: NEWS2 alerts come from charted sets).
SICK_SET = {"patient_id": SICK, "ts": T0.isoformat(), "rr": 26, "spo2": 92, "o2": False, "sbp": 95, "hr": 125,
            "acvpu": "A", "temp": 38.5, "by": "Nurse Ada"}
#: What ``raise_alerts`` raises for the sick patient: the twin's alert (sustained over the three windows to T0), then
#: the charted set's news2 alert (raised at once, whatever is open). No criteria alert: the sick trajectory meets no
#: criterion of the issue-20 label (pulse reaches 130 only at T0, SBP is below 90 for eleven minutes); no obs_due:
#: three windows are shorter than its hour. In this order the shipped fold (``Settings.alert_fold``: a twin rule
#: holding during an open news2 alert is recorded on it, not raised) leaves two alerts for the lifecycle tests.
ALERTING_KINDS = ("twin", "news2")


def raise_alerts(client: TestClient) -> int:
    """Run the cycles of the three windows ending at T0 (the twin's sustained rule), then chart ``SICK_SET``: the
    alerts of ``ALERTING_KINDS``, in that order in the outbox. Returns how many were raised."""
    raised = sum(run_cycle(client, T0 - WINDOW * k)["alerts_raised"] for k in (2, 1, 0))
    response = client.post("/v1/observations", json=SICK_SET)
    assert response.status_code == 201, response.text
    return raised + int(response.json()["alert"]["event"] == "raised")


PROBLEM_MEDIA_TYPE = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    """An RFC 9457 problem (``application/problem+json``): ``type`` (a URI), ``title``, ``status``, a human
    ``detail`` and the domain ``code``. Returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_MEDIA_TYPE, response.headers
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert isinstance(body["title"], str) and body["title"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert body["type"] == "about:blank" or body["type"].startswith("https://"), body
    return body


def assert_422(response: httpx.Response, loc: list) -> list[dict]:
    """A 422 problem whose ``errors`` (a list of ``{loc, msg, type}``) has an item at ``loc``. Returns the items."""
    assert response.status_code == 422, response.text
    errors = assert_problem(response, 422, response.json()["code"])["errors"]
    assert isinstance(errors, list) and errors
    for item in errors:
        assert {"loc", "msg", "type"} <= set(item) and isinstance(item["msg"], str) and item["msg"]
    assert loc in [item["loc"] for item in errors], errors
    return errors


def assert_domain_error(response: httpx.Response, status: int, code: str) -> None:
    """A mapped domain error: the status, as a problem with the domain ``code``."""
    assert_problem(response, status, code)


@dataclass(frozen=True)
class Ward:
    client: TestClient
    cycles: list[dict]  # the POST /v1/cycle answers, one per WINDOW_ENDS item
