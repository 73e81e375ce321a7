"""Issue 21, finding 11: ``/healthz`` said ok with the InfluxDB database gone (dropped under the running service: the
next write recreates it empty, the history lost). A real ``influxd``; the database dropped through its own API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.storage.influx import InfluxStore
from app.storage.influxd_local import ManagedInfluxd
from tests.support.api import T0, reading, serve
from tests.support.ids import unique

pytestmark = pytest.mark.influx


def test_healthz_is_not_ok_naming_a_dropped_database(influxd: ManagedInfluxd, tmp_path: Path) -> None:
    database = unique("health")
    with serve(tmp_path, influx_url=influxd.url, influx_database=database) as client:
        assert isinstance(client.app.state.wardtwin.store.inner, InfluxStore)  # type: ignore[attr-defined]
        assert client.post("/v1/readings", json={"readings": [reading("h-1", "hr", 80, T0)]}).status_code == 200
        health = client.get("/healthz").json()
        assert health["ok"] and health["store"]["ok"], health
        dropped = httpx.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{database}"'})
        assert dropped.status_code == 200, dropped.text
        health = client.get("/healthz").json()
        assert not health["ok"] and not health["store"]["ok"], health  # today's main: ok (only /ping was asked)
        assert database in health["store"]["error"] and "does not exist" in health["store"]["error"]
