"""Issue 21, finding 11: the service's data files (readings, scores, alerts, key hashes, the audit, the InfluxDB
spool) were world-readable. The data directory the service creates is 0700, every SQLite file (with its ``-wal``
and ``-shm``) 0600, whatever the umask; an existing file loses its group and other permissions."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.storage.spool import Spool
from tests.support.api import T0, reading, serve


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets everyone read what is created (the service must not rely on the operator's)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_directory_and_every_file_are_private(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "new" / "data"
    with serve(data) as client:
        assert client.post("/v1/readings", json={"readings": [reading("m-1", "hr", 80, T0)]}).status_code == 200
        assert client.get("/v1/audit").status_code == 200  # an audited read: access.db written
        files = sorted(p for p in data.iterdir() if p.is_file())
        names = {p.name for p in files}
        assert {"wardtwin.db", "alerts.db", "access.db"} <= names and any(n.endswith("-wal") for n in names), names
        assert mode(data) == 0o700  # today's main: 0o755
        assert {p.name: oct(mode(p)) for p in files} == {p.name: oct(0o600) for p in files}  # today's main: 0o644


def test_an_existing_world_readable_file_is_made_private(tmp_path: Path, open_umask: None) -> None:
    with serve(tmp_path):
        pass
    for name in ("wardtwin.db", "alerts.db", "access.db"):
        os.chmod(tmp_path / name, 0o644)
    with serve(tmp_path):
        assert {n: oct(mode(tmp_path / n)) for n in ("wardtwin.db", "alerts.db", "access.db")} == \
            {n: oct(0o600) for n in ("wardtwin.db", "alerts.db", "access.db")}


def test_the_influx_spool_is_private(tmp_path: Path, open_umask: None) -> None:
    spool = Spool(tmp_path / "spool" / "influx-spool.db")

    async def use() -> None:
        await spool.open()
        await spool.append(b"vitals,patient_id=x hr=1 1", 1)
        await spool.close()

    asyncio.run(use())
    assert mode(tmp_path / "spool") == 0o700
    assert all(mode(p) == 0o600 for p in (tmp_path / "spool").iterdir()), list((tmp_path / "spool").iterdir())
