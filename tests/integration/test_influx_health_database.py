"""Issue 21, finding 11: ``/healthz`` said ok with the InfluxDB database gone (dropped under the running service: the
next write recreates it empty, the history lost). A real ``influxd``; the database dropped through its own API.

Hazard H25's residual: once the store's next write had recreated the database, ``/healthz`` said ok again. The
identity marker (``app.storage.identity``) keeps it not ok, across writes and restarts, until an operator runs
``wardtwin store accept-database``; and raises no alarm on a new database or a reopened one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.storage.identity import Identity, marker_line
from app.storage.influx import InfluxStore
from app.storage.influxd_local import ManagedInfluxd
from lab import cli
from tests.support.api import T0, reading, serve
from tests.support.ids import unique
from tests.support.wait import wait_until

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


def _drop(influxd: ManagedInfluxd, database: str) -> None:
    dropped = httpx.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{database}"'})
    assert dropped.status_code == 200 and "error" not in dropped.text, dropped.text


def test_a_recreated_database_stays_flagged_until_an_operator_accepts_it(
    influxd: ManagedInfluxd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = unique("recreated")
    settings = {"influx_url": influxd.url, "influx_database": database}
    with serve(tmp_path, **settings) as client:
        assert client.post("/v1/readings", json={"readings": [reading("r-1", "hr", 80, T0)]}).status_code == 200
        before = client.get("/healthz").json()["store"]
        assert before["ok"], before
        _drop(influxd, database)
        # the next write is refused (404), spooled, and its replay recreates the database empty
        assert client.post("/v1/readings", json={"readings": [reading("r-2", "hr", 81, T0)]}).status_code == 200

        def replayed() -> dict | None:
            store = client.get("/healthz").json()["store"]
            return store if store["backlog"] == 0 and "does not exist" not in store.get("error", "") else None

        store = wait_until(replayed, "the spool's replay recreating the database")
        assert not store["ok"], store  # earlier main: ok again, the history before the drop gone unnoticed
        assert store["identity"] == "missing" and "recreated or replaced" in store["error"], store
        assert database in store["error"], store
        assert "accept-database" in store["error"]
    with serve(tmp_path, **settings) as client:  # a restart: the record is durable, the marker still missing
        store = client.get("/healthz").json()["store"]
        assert not store["ok"] and store["identity"] == "missing", store
        monkeypatch.setenv("WARDTWIN_INFLUX_URL", influxd.url)
        monkeypatch.setenv("WARDTWIN_INFLUX_DATABASE", database)
        assert cli.main(["store", "accept-database", "--data-dir", str(tmp_path)]) == 0  # service running
        store = client.get("/healthz").json()["store"]
        assert store["ok"] and store["identity"] == "ok" and store["store_id"] != before.get("store_id"), store
    with serve(tmp_path, **settings) as client:
        store = client.get("/healthz").json()["store"]
        assert store["ok"] and store["identity"] == "ok", store


async def test_a_new_database_and_its_reopening_raise_no_alarm(influxd: ManagedInfluxd, tmp_path: Path) -> None:
    database = unique("fresh")
    ids = []
    for _ in range(2):  # a fresh data directory on a new database, then the same pair again
        store = InfluxStore(influxd.url, database, spool_path=tmp_path / "influx-spool.db")
        await store.open()
        try:
            health = await store.health()
        finally:
            await store.close()
        assert health["ok"] and health["identity"] == "ok", health
        ids.append(health["store_id"])
    assert ids[0] == ids[1]
    # a second instance (its own data directory) on the same database adopts its marker
    other = InfluxStore(influxd.url, database, spool_path=tmp_path / "other" / "influx-spool.db")
    await other.open()
    try:
        health = await other.health()
    finally:
        await other.close()
    assert health["ok"] and health["store_id"] == ids[0], health


async def test_a_database_marked_by_another_store_is_flagged_as_replaced(
    influxd: ManagedInfluxd, tmp_path: Path
) -> None:
    database = unique("swapped")
    ours = InfluxStore(influxd.url, database, spool_path=tmp_path / "ours" / "influx-spool.db")
    await ours.open()
    try:
        _drop(influxd, database)  # then another service marks a database of that name (a restore from elsewhere)
        theirs = InfluxStore(influxd.url, database, spool_path=tmp_path / "theirs" / "influx-spool.db")
        await theirs.open()
        await theirs.close()
        health = await ours.health()
        assert not health["ok"], health
        assert health["identity"] == "replaced" and "expected" in health["error"], health
        previous, adopted = await ours.accept_database(operator="test")  # the operator's acknowledgement
        health = await ours.health()
        assert health["ok"] and health["store_id"] == adopted.store_id != (previous and previous.store_id), health
    finally:
        await ours.close()


async def test_two_instances_marking_a_new_database_at_once_both_stay_ok(
    influxd: ManagedInfluxd, tmp_path: Path
) -> None:
    """InfluxDB has no compare-and-set: instance one marks a new database and records it, then instance two marks it
    too (no record yet, its read came first). Neither is a lost history, so neither is flagged."""
    database = unique("race")
    one = InfluxStore(influxd.url, database, spool_path=tmp_path / "one" / "influx-spool.db")
    await one.open()
    try:
        other = Identity("00", "2000-01-01T00:00:00Z")  # older than any: the marker a later instance adopts
        body = marker_line(other, 1_772_452_800_000)
        httpx.post(f"{influxd.url}/write", params={"db": database, "precision": "ms"}, content=body).raise_for_status()
        health = await one.health()
        assert health["ok"] and health["identity"] == "ok", health
        two = InfluxStore(influxd.url, database, spool_path=tmp_path / "two" / "influx-spool.db")
        await two.open()
        try:
            assert (await two.health())["store_id"] == other.store_id
        finally:
            await two.close()
    finally:
        await one.close()
