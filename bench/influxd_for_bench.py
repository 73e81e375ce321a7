"""The InfluxDB a benchmark writes to: one given by URL, or Debian's influxd started in a temp dir."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.storage.influxd_local import ManagedInfluxd


@contextmanager
def influxd_url(influx_url: str | None, work: Path) -> Iterator[tuple[str, int | None]]:
    """Yield ``(base URL, pid)``: the pid of an influxd started here (the launcher the tests use, stopped on
    exit, so its CPU can be metered), None for one given by URL."""
    if influx_url:
        yield influx_url.rstrip("/"), None
        return
    binary = shutil.which("influxd")
    if binary is None:
        raise SystemExit("influxd not found (apt-get install influxdb) and no --influx-url given")
    server = ManagedInfluxd(binary, work / "influxd")
    server.start()
    try:
        yield server.url, server.pid
    finally:
        server.stop()
