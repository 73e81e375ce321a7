"""``wardtwin store accept-database``: adopt the InfluxDB database as it is now (hazard H25).

``/healthz`` says not ok while the database's identity marker is missing or not the one this service recorded (the
database was dropped and recreated empty, swapped, or restored from elsewhere: ``app.storage.identity``). After
checking what was lost, an operator runs this with the service's own settings (``WARDTWIN_*``, ``--data-dir``): it
adopts the database's marker (or writes a new one), updates the record in ``DATA_DIR/influx-spool.db`` and logs who
did it. Safe while the service runs: it opens no spool drainer, and the service reads the record at each check."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

from app.errors import StoreUnavailableError
from app.settings import Settings


def accept_database(*, data_dir: Path | None) -> int:
    """0 after adopting; 2 when no InfluxDB is configured, 1 when it cannot be reached."""
    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))
    if settings.influx_url is None:
        print("no InfluxDB configured (WARDTWIN_INFLUX_URL is unset): the embedded store has no marker")  # noqa: T201
        return 2
    from app.main import make_store
    from app.storage.influx import InfluxStore

    store = make_store(settings)
    assert isinstance(store, InfluxStore)
    try:
        previous, adopted = asyncio.run(store.accept_database(operator=getpass.getuser()))
    except StoreUnavailableError as exc:
        print(f"not accepted: {exc}")  # noqa: T201 (the CLI's output)
        return 1
    print(f"accepted InfluxDB database {settings.influx_database!r}: marker {adopted.store_id} (created "  # noqa: T201
          f"{adopted.created_at}), was {previous.store_id if previous else 'none recorded'}")
    return 0
