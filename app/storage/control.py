"""Which control database a target names: the one place the engine is chosen (``app.storage.control_db``)."""

from __future__ import annotations

from pathlib import Path

from app.storage.control_db import ControlDatabase
from app.storage.migrations import Schema


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def open_control_db(target: Path | str | ControlDatabase, schema: Schema) -> ControlDatabase:
    """The database behind ``target``: a ``ControlDatabase`` as given, a ``postgresql://`` URL, or a SQLite path
    (nothing is connected until its ``open``)."""
    if is_postgres_url(target):
        from app.storage.postgres_db import PostgresDatabase  # psycopg is imported only when PostgreSQL is chosen

        return PostgresDatabase(str(target), schema)
    if isinstance(target, str | Path):
        from app.storage.sqlite_db import SqliteDatabase

        return SqliteDatabase(Path(target), schema)
    return target
