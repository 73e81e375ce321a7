"""Issue 21, finding 10 (H24) against a real ``influxd``: ``wardtwin demo`` with influxd stopped while it is still
scoring its history. The demo must keep running (its cycle's 503s ridden out), the board must say the vital store
is down (beds with their last scores, no 500), the history must be scored once influxd is back and the spool must
drain; a Ctrl-C during a second outage must stop it at once and cleanly (today's main: "vital store did not stop
within 10 s", the store abandoned), and nothing in its log may be a traceback. A real process; conditions waited
on, never durations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.storage.influxd_local import ManagedInfluxd, free_port
from tests.support.influx import find_influxd
from tests.support.server import AUTH, ROOT, SERVICE_KEY
from tests.support.wait import wait_until

pytestmark = pytest.mark.influx


def get(base: str, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{base}{path}", headers=AUTH, timeout=10)
    except httpx.TransportError:
        return None


def test_the_demo_rides_out_influxd_stopped_mid_history(tmp_path: Path) -> None:
    influxd = ManagedInfluxd(find_influxd(), tmp_path / "influxd")
    influxd.start()
    port, log_path = free_port(), tmp_path / "demo.log"
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "WARDTWIN_INFLUX_URL": influxd.url, "WARDTWIN_INFLUX_DATABASE": "demo",
           "WARDTWIN_DEMO_KEY": SERVICE_KEY}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-c", "import sys; from lab.cli import main; sys.exit(main())", "demo",
             "--port", str(port), "--beds", "4", "--history-hours", "2", "--speed", "60",
             "--data-dir", str(tmp_path / "data")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    text = lambda: log_path.read_text(errors="replace")  # noqa: E731
    try:
        wait_until(lambda: "posted" in text() or proc.poll() is not None, "the history posted", timeout=300)
        influxd.stop()  # mid-history: the history's windows are being scored through POST /v1/cycle
        wait_until(lambda: "history cycle: HTTP 503" in text() or proc.poll() is not None, "a cycle refused")
        assert proc.poll() is None, text()
        board = wait_until(lambda: (r := get(base, "/v1/board")) is not None and r.status_code == 200 and r,
                           "the board during the outage")
        assert board.json()["store"]["ok"] is False and board.json()["store"]["error"], board.json()["store"]
        health = get(base, "/healthz")
        assert health is not None and health.json()["ok"] is False
        influxd.start()
        wait_until(lambda: "wardtwin demo" in text() or proc.poll() is not None, "the history scored", timeout=300)
        assert proc.poll() is None, text()
        wait_until(lambda: (r := get(base, "/healthz")) is not None and r.json()["store"]["backlog"] == 0,
                   "the spool drained", timeout=300)
        assert get(base, "/v1/board").json()["store"]["ok"] is True  # type: ignore[union-attr]
        influxd.stop()  # a second outage, with readings streaming into the spool
        wait_until(lambda: (r := get(base, "/healthz")) is not None and r.json()["store"]["backlog"] > 0,
                   "readings spooled during the second outage", timeout=300)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        influxd.stop()
    log_text = text()
    assert "stopped; ward time" in log_text
    assert "did not stop within" not in log_text, log_text  # today's main: the vital store abandoned at shutdown
    assert "Traceback" not in log_text and "Exception in ASGI application" not in log_text, log_text
