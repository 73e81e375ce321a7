"""`wardtwin demo` end to end: the README's first command, on the embedded store, in a real process.

Nothing here measures speed: every step waits for a condition (the board filled, a later window scored, the
process exited). ``HANG_S`` only stops a hung run; the time to a full board is printed, for BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.support.server import AUTH, ROOT, SERVICE_KEY, free_port

HANG_S = 600.0
T = TypeVar("T")


def start_demo(data_dir: Path, port: int, *args: str) -> subprocess.Popen:
    """The demo with its output in ``demo-<port>.log`` (a file, not a pipe nobody reads while it runs)."""
    with (data_dir / f"demo-{port}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab.cli", "demo", "--port", str(port), "--data-dir", str(data_dir), *args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "WARDTWIN_DEMO_KEY": SERVICE_KEY},
        )
    proc.log_path = data_dir / f"demo-{port}.log"  # type: ignore[attr-defined]
    return proc


def output(proc: subprocess.Popen) -> str:
    return proc.log_path.read_text(errors="replace")  # type: ignore[attr-defined]


def poll_until(what: str, check: Callable[[], T | None], proc: subprocess.Popen) -> T:
    """Call ``check`` until it returns a value; fail at once if the demo exits, or after ``HANG_S`` (a hang)."""
    deadline = time.monotonic() + HANG_S
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the demo exited ({proc.returncode}) before {what}: {output(proc)}")
        try:
            value = check()
        except httpx.TransportError as exc:  # not listening yet, or too busy to answer in time
            value, last = None, exc
        if value is not None:
            return value
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {HANG_S} s (hung?); last: {last}")


def full_board(base: str, beds: int, proc: subprocess.Popen) -> Callable[[], list[dict] | None]:
    """The board once the demo says it is serving (its URLs are printed after the history is scored and the
    live stream has begun), every bed with a risk."""
    def check() -> list[dict] | None:
        if f"{base}/docs" not in output(proc):
            return None
        live = httpx.get(f"{base}/healthz", timeout=30).json()["last_window_end"] is not None
        board = httpx.get(f"{base}/v1/patients", timeout=30, headers=AUTH).json()
        return board if live and len(board) == beds and all(p["risk"] is not None for p in board) else None
    return check


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=HANG_S)
    return output(proc)


@pytest.mark.timeout(3 * HANG_S)  # two demo runs, each waited on by condition
def test_demo_serves_the_ward_keeps_scoring_and_resumes_after_ctrl_c(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = start_demo(tmp_path, port)
    try:
        board = poll_until("full board", full_board(base, 24, proc), proc)
        ready_s = time.monotonic() - started
        risks = [p["risk"] for p in board]
        assert risks == sorted(risks, reverse=True)
        assert all(p["news2_total"] is not None for p in board)
        first_end = max(p["window_end"] for p in board)

        def later_window() -> list[dict] | None:  # the live stream goes on: a later window gets scored
            later = httpx.get(f"{base}/v1/patients", timeout=30, headers=AUTH).json()
            return later if max(p["window_end"] for p in later) > first_end else None

        poll_until("later window scored", later_window, proc)
        health = httpx.get(f"{base}/healthz", timeout=30).json()
        assert health["ok"] and health["store"]["store"] == "sqlite"
        keys = dict(re.findall(r"^  (device|clinician|ehr|admin) +(wt_\S+)", output(proc), re.MULTILINE))
        assert set(keys) == {"device", "clinician", "ehr", "admin"}  # one key per role, printed for the session
        as_ehr, as_device = {"Authorization": f"Bearer {keys['ehr']}"}, {"Authorization": f"Bearer {keys['device']}"}
        assert httpx.get(f"{base}/v1/patients", timeout=30, headers=as_ehr).status_code == 200
        assert httpx.get(f"{base}/v1/patients", timeout=30, headers=as_device).status_code == 403
        assert httpx.get(f"{base}/v1/patients", timeout=30).status_code == 401
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert f"{base}/docs" in out, out
    assert "stopped;" in out, out
    print(f"demo board ready in {ready_s:.1f} s")

    state = json.loads((tmp_path / "demo.json").read_text())
    port2 = free_port()
    base2 = f"http://127.0.0.1:{port2}"
    proc = start_demo(tmp_path, port2)
    try:
        poll_until("full board after the restart", full_board(base2, 24, proc), proc)
        history = httpx.get(f"{base2}/v1/patients/bed-01/risk/history",
                            params={"since": state["epoch"], "until": state["acknowledged_until"]}, timeout=30,
                            headers=AUTH).json()
        assert len(history) >= 48  # the first run's scores are still there
    finally:
        out = stop(proc)
    assert proc.returncode == 0 and "(resumed)" in out, out


@pytest.mark.parametrize("phase", ["posting", "scoring"])
@pytest.mark.timeout(2 * HANG_S)
def test_ctrl_c_during_the_history_backfill_stops_cleanly(tmp_path, phase):
    """Ctrl-C while the history is being posted, or while its windows are being scored: exit 0, no traceback,
    and the saved ward time never claims more than the service stored."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # a long backfill, so Ctrl-C lands inside it: twelve hours, of eight beds (the default 24 took three times as
    # long to post, and the scoring phase lasts seconds whatever the beds: one cycle per window)
    proc = start_demo(tmp_path, port, "--history-hours", "12", "--beds", "8")

    def in_phase() -> bool | None:
        if phase == "posting":
            return True if httpx.get(f"{base}/v1/patients", timeout=30, headers=AUTH).json() else None
        return True if "readings of 12 h posted" in output(proc) else None

    try:
        poll_until(f"history {phase}", in_phase, proc)
    finally:
        out = stop(proc)
    assert "history: scored" not in out, "the backfill finished before Ctrl-C: the test did not test it"
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "Error" not in out, out
    assert "stopped;" in out, out
    state_path = tmp_path / "demo.json"
    if phase == "posting":  # nothing claimed: the next start regenerates the whole history
        assert not state_path.exists() or json.loads(state_path.read_text())["acknowledged_until"] == json.loads(
            state_path.read_text())["epoch"]
    else:  # the history was acknowledged (stored) before its scoring began
        state = json.loads(state_path.read_text())
        assert state["acknowledged_until"] > state["epoch"]


@pytest.mark.timeout(2 * HANG_S)
def test_demo_ward_mix_charts_through_observations(tmp_path):
    """`--mix ward`: a general ward's mix; the simulated nurse's sets reach the service through POST /v1/observations
    (the history line counts them), and the board fills as with the default mix."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_demo(tmp_path, port, "--mix", "ward", "--beds", "8", "--history-hours", "2")
    try:
        poll_until("full board", full_board(base, 8, proc), proc)
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    sets = re.search(r"\((\d+) nurse's observation sets among them\)", out)
    assert sets and int(sets.group(1)) >= 8, out  # at least each bed's admission set
    assert "8 beds (ward mix)" in out, out
    assert json.loads((tmp_path / "demo.json").read_text())["mix"] == "ward"
