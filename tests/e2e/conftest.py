"""End-to-end fixtures: Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``) driven by Playwright.

Playwright's own browser download (``playwright install``) is never used: the launch names the system binary.
Every wait is on a condition; the timeouts below only guard against a hang, never measure speed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

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


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS, timeout=HANG_MS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no shared storage) and page; Playwright's auto-waits get the hang timeout."""
    expect.set_options(timeout=HANG_MS)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(HANG_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
