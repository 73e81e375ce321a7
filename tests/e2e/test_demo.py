"""`wardtwin demo` end to end: the README's first command, on the embedded store, in a real process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx

from tests.integration.server import ROOT, free_port


def start_demo(data_dir, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "demo", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for_board(base: str, beds: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    board: list[dict] = []
    while time.monotonic() < deadline:
        try:
            live = httpx.get(f"{base}/healthz", timeout=5).json()["last_window_end"] is not None
            board = httpx.get(f"{base}/v1/patients", timeout=5).json()
            if live and len(board) == beds and all(p["risk"] is not None for p in board):
                return board
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"history not scored and streaming within {timeout} s: {board}")


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return out


def test_demo_serves_the_ward_within_60_s_and_resumes_after_ctrl_c(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = start_demo(tmp_path, port)
    try:
        board = wait_for_board(base, 24, timeout=60)
        ready_s = time.monotonic() - started
        risks = [p["risk"] for p in board]
        assert risks == sorted(risks, reverse=True)
        assert all(p["news2_total"] is not None for p in board)
        first_end = max(p["window_end"] for p in board)
        time.sleep(8)  # 8 s at 60x = 8 simulated minutes: at least one more cycle runs
        later = httpx.get(f"{base}/v1/patients", timeout=5).json()
        assert max(p["window_end"] for p in later) > first_end
        health = httpx.get(f"{base}/healthz", timeout=5).json()
        assert health["ok"] and health["store"]["store"] == "sqlite"
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert f"{base}/docs" in out, out
    assert "stopped;" in out, out
    print(f"demo board ready in {ready_s:.1f} s")

    state = json.loads((tmp_path / "demo.json").read_text())
    port2 = free_port()
    proc = start_demo(tmp_path, port2)
    try:
        board = wait_for_board(f"http://127.0.0.1:{port2}", 24, timeout=60)
        history = httpx.get(f"http://127.0.0.1:{port2}/v1/patients/bed-01/risk/history",
                            params={"since": state["epoch"], "until": state["acknowledged_until"]}, timeout=10).json()
        assert len(history) >= 48  # the first run's scores are still there
    finally:
        out = stop(proc)
    assert proc.returncode == 0 and "(resumed)" in out, out
