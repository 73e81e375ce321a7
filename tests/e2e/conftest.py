"""End-to-end fixtures: Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``) driven by Playwright.

Playwright's own browser download (``playwright install``) is never used: the launch names the system binary.
Every wait is on a condition; the timeouts below only guard against a hang, never measure speed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect, sync_playwright

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
