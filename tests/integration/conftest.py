"""Integration fixtures: a real ``influxd`` (Debian's 1.6.7, installed by ``.ci/run``) and the store contract fixture.

The launcher is ``app.storage.influxd_local.ManagedInfluxd`` (the benchmarks use it too); nothing is installed here:
without ``influxd`` the influx tests fail under ``CI`` and are skipped otherwise (``tests.support.influx``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.storage.influx import InfluxStore
from app.storage.influxd_local import ManagedInfluxd
from tests.support.ids import unique
from tests.support.influx import find_influxd


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedInfluxd]:
    """One influxd for the session; tests use fresh databases and fresh patient ids."""
    server = ManagedInfluxd(find_influxd(), tmp_path_factory.mktemp("influxd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def patient_prefix() -> str:
    """A fresh patient-id prefix per test, so tests never see each other's patients."""
    return unique("p")


@pytest.fixture(params=["sqlite", pytest.param("influx", marks=pytest.mark.influx)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator:
    """The ``VitalStore`` contract fixture: the embedded SQLite store and the InfluxDB store, each fresh."""
    if request.param == "sqlite":
        from app.storage.sqlite import SqliteStore

        adapter = SqliteStore(tmp_path / "wardtwin.db")
    else:
        server: ManagedInfluxd = request.getfixturevalue("influxd")
        adapter = InfluxStore(
            server.url, unique("contract"), spool_path=tmp_path / "influx-spool.db", batch_size=5000, timeout_s=10.0
        )
    await adapter.open()
    try:
        yield adapter
    finally:
        await adapter.close()
