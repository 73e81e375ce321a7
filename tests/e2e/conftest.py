"""End-to-end fixtures: Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``) driven by Playwright.

Playwright's own browser download (``playwright install``) is never used: the launch names the system binary.
Every wait is on a condition; the timeouts below only guard against a hang, never measure speed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.server import AUTH, ROOT, SERVICE_KEY, free_port

HANG_MS = 120_000  # an action or an auto-waiting assertion gives up only after this: a loaded machine is slow
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_binary() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium missing in CI (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return binary


@pytest.fixture
def page() -> Iterator[Page]:
    """A fresh Chromium and page per test; Playwright's auto-waits get the hang timeout.

    Function scope on purpose: while Playwright's sync API is open an asyncio loop counts as running in this
    thread, and every async test after it fails with "Runner.run() cannot be called from a running event loop"."""
    expect.set_options(timeout=HANG_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS, timeout=HANG_MS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(HANG_MS)
            yield context.new_page()
        finally:
            browser.close()


# -- the ward board against the demo (tests/e2e/test_board.py) ------------------------------------------------------
@pytest.fixture
def open_page() -> Iterator[Callable[..., Page]]:
    """``open_page(width=1400, bypass_csp=False)``: a new page in one Chromium per test, at that viewport width.
    ``bypass_csp`` lets a test inject a script of its own (axe-core) into the board, whose CSP forbids that."""
    expect.set_options(timeout=HANG_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS, timeout=HANG_MS)

        def new(width: int = 1400, *, height: int = 900, bypass_csp: bool = False) -> Page:
            context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=bypass_csp)
            context.set_default_timeout(HANG_MS)
            return context.new_page()

        try:
            yield new
        finally:
            browser.close()


class Demo:
    """``wardtwin demo`` in its own process on ``port`` and ``data_dir``: stopped with Ctrl-C (SIGINT) and started
    again on the same ward, as a charge nurse's server would be. Requests use ``SERVICE_KEY`` (the process's
    ``WARDTWIN_DEMO_KEY``, every role), which survives restarts while the demo's session keys do not."""

    def __init__(self, data_dir: Path, beds: int, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.beds, self.port, self.env = data_dir, beds, free_port(), env or {}
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.client = httpx.Client(base_url=self.base, timeout=60, headers=AUTH)

    def log(self) -> str:
        return (self.data_dir / "demo.log").read_text(errors="replace")

    def start(self) -> None:
        with (self.data_dir / "demo.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lab.cli", "demo", "--port", str(self.port), "--data-dir", str(self.data_dir),
                 "--beds", str(self.beds), "--history-hours", "1"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **self.env, "WARDTWIN_DEMO_KEY": SERVICE_KEY})
        self.wait_until("a scored ward", self._scored)

    def _scored(self) -> bool:
        board = self.client.get("/v1/board").json()["beds"]
        return len(board) >= self.beds and all(b["risk"] is not None for b in board)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=HANG_MS / 1000)
        self.proc = None

    def wait_until(self, what: str, check: Callable[[], object]) -> object:
        """Poll ``check`` until it returns something truthy; fail at once if the demo exits, or after the hang
        timeout. A transport error (not listening yet, busy) counts as not yet."""
        deadline = time.monotonic() + HANG_MS / 1000
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the demo exited ({self.proc.returncode}) before {what}: {self.log()}")
            with contextlib.suppress(httpx.TransportError):
                value = check()
                if value:
                    return value
            time.sleep(0.2)
        raise AssertionError(f"no {what} within the hang timeout: {self.log()[-2000:]}")

    def now(self) -> datetime:
        """The service clock (simulated: the demo runs at 60×)."""
        return datetime.fromisoformat(self.client.get("/healthz").json()["now"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo with a six-bed ward and one hour of history, shared by a module's tests (one may restart it). A bed
    turns stale after 10 min without data (the default 15): at 60× the stale test waits 10 s for it, not 15, while
    the sick bed another test posts stays current for its screenshot (taken 3-4 simulated minutes later; at 5 min
    it could show as stale)."""
    running = Demo(tmp_path_factory.mktemp("board-demo"), beds=6, env={"WARDTWIN_BOARD_STALE_AFTER_MIN": "10"})
    running.start()
    try:
        yield running
    finally:
        if running.proc is not None:
            running.stop()
        running.client.close()
