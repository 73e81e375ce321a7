"""The ward board in real headless Chromium (Playwright) against a real uvicorn process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect

from models.windows import WINDOW, align
from tests.support.server import AUTH, uvicorn_service
from tests.support.synthetic_readings import HOURS, post_all, trajectory

pytestmark = pytest.mark.browser


def test_board_sorts_by_risk_shows_live_alert_and_acknowledges(tmp_path, page: Page):
    end = align(datetime.now(UTC) - timedelta(minutes=10)).to_pydatetime()
    readings = trajectory("stable-1", end, False, 1) + trajectory("sick-1", end, True, 2)
    with uvicorn_service(tmp_path) as base, httpx.Client(base_url=base, timeout=60, headers=AUTH) as client:
        post_all(client, readings)
        nurse = client.post("/v1/keys", json={"name": "nurse-7", "role": "clinician"}).raise_for_status().json()
        window_end = end - timedelta(hours=HOURS) + WINDOW
        while window_end <= end - timedelta(hours=2):  # the sick patient has not begun to drift
            client.post("/v1/cycle", params={"window_end": window_end.isoformat()}).raise_for_status()
            window_end += WINDOW
        page.goto(base + "/?key=" + nurse["token"])  # taken once, kept for the session, removed from the URL
        expect(page).to_have_url(base + "/")
        rows = page.locator("#board tbody tr")
        expect(rows).to_have_count(2)
        expect(page.locator("#status")).to_have_text("live")
        expect(page.locator("#alerts")).to_contain_text("No alerts")
        while window_end <= end:  # the deterioration unfolds while the board is open
            client.post("/v1/cycle", params={"window_end": window_end.isoformat()}).raise_for_status()
            window_end += WINDOW
        ack = page.locator("[data-ack]")
        expect(ack).to_have_count(3)  # the alerts reached the board over the WebSocket: one of each kind
        for kind, label in (("news2", "NEWS2"), ("criteria", "criterion met"), ("twin", "twin")):
            expect(page.locator(f'.alert[data-kind="{kind}"] .kind')).to_have_text(label)
        expect(rows.nth(0)).to_have_attribute("data-patient", "sick-1")
        expect(rows.nth(1)).to_have_attribute("data-patient", "stable-1")
        expect(rows.nth(0)).to_have_class("high")
        page.screenshot(path=str(tmp_path / "board.png"))
        page.locator('.alert[data-kind="twin"] [data-ack]').click()
        expect(page.locator('.alert.acknowledged[data-kind="twin"]')).to_have_count(1)
        expect(ack).to_have_count(2)  # the NEWS2 and criteria alerts still wait for a nurse
        (alert,) = client.get("/v1/alerts", params={"kind": "twin"}).json()
        assert alert["state"] == "acknowledged" and alert["acknowledged_by"] == "nurse-7"  # the key's name
        page.reload()  # the key survives a reload (sessionStorage), without being asked for again
        expect(page.locator('.alert.acknowledged[data-kind="twin"]')).to_have_count(1)
        assert nurse["token"] not in page.url
