"""A real PostgreSQL for the tests (Debian's ``postgresql``, installed by ``.ci/run``; launcher in
``app.storage.postgres_local``): one cluster per session, a fresh database per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.storage.postgres_local import ManagedPostgres, find_pg_bin
from tests.support.ids import unique


def find_postgres() -> Path:
    """PostgreSQL's bin directory; without one the calling test fails under ``CI`` and is skipped otherwise."""
    found = find_pg_bin()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL missing in CI (.ci/run installs Debian's postgresql package)")
        pytest.skip("PostgreSQL not installed (apt-get install postgresql)")
    return found


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ManagedPostgres]:
    """One PostgreSQL cluster for the session; tests take fresh databases from ``postgres_dsn``."""
    server = ManagedPostgres(find_postgres())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: ManagedPostgres) -> str:
    """A fresh, empty database on the session's cluster."""
    return postgres_server.create_database(unique("t").replace("-", "_").lower())
