"""The ward board in real headless Chromium against a real uvicorn process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from models.windows import WINDOW, align
from tests.e2e.cdp import chromium_page
from tests.integration.server import uvicorn_service
from tests.integration.synthetic import HOURS, post_all, trajectory


def test_board_sorts_by_risk_shows_live_alert_and_acknowledges(tmp_path):
    end = align(datetime.now(UTC) - timedelta(minutes=10)).to_pydatetime()
    readings = trajectory("stable-1", end, False, 1) + trajectory("sick-1", end, True, 2)
    with uvicorn_service(tmp_path) as base, httpx.Client(base_url=base, timeout=60) as client:
        post_all(client, readings)
        window_end = end - timedelta(hours=HOURS) + WINDOW
        while window_end <= end - timedelta(hours=2):  # the sick patient has not begun to drift
            client.post("/v1/cycle", params={"window_end": window_end.isoformat()}).raise_for_status()
            window_end += WINDOW
        with chromium_page(base + "/") as page:
            page.wait_for("document.querySelectorAll('#board tbody tr').length === 2")
            page.wait_for("document.getElementById('status').textContent === 'live'")
            assert "No alerts" in page.evaluate("document.getElementById('alerts').textContent")
            while window_end <= end:  # the deterioration unfolds while the board is open
                client.post("/v1/cycle", params={"window_end": window_end.isoformat()}).raise_for_status()
                window_end += WINDOW
            page.wait_for("document.querySelector('[data-ack]') !== null")
            order = page.evaluate("[...document.querySelectorAll('#board tbody tr')].map(r => r.dataset.patient)")
            assert order == ["sick-1", "stable-1"]
            assert page.evaluate("document.querySelector('#board tbody tr').className") == "high"
            page.screenshot(str(tmp_path / "board.png"))
            page.evaluate("window.prompt = () => 'nurse-7'; document.querySelector('[data-ack]').click(); true")
            page.wait_for("document.querySelector('.alert.acknowledged') !== null")
        (alert,) = client.get("/v1/alerts").json()
        assert alert["state"] == "acknowledged" and alert["acknowledged_by"] == "nurse-7"
