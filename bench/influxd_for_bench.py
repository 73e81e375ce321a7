"""The InfluxDB a benchmark writes to: one given by URL, or Debian's influxd started in a temp dir."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.conftest import ManagedInfluxd  # noqa: E402


@contextmanager
def influxd_url(influx_url: str | None, work: Path) -> Iterator[tuple[str, int | None]]:
    """Yield ``(base URL, pid)``: the pid of an influxd started here (the tests' managed process, stopped on
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
