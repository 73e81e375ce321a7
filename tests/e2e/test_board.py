"""The ward board at ``/`` in Debian's Chromium against ``wardtwin demo`` (a six-bed simulated ward at 60×).

Every wait is on a condition (Playwright's auto-waiting assertions, or ``Demo.wait_until`` polling the API); the
hang timeout only stops a stuck run. Screenshots land in ``docs/screenshots/`` (PNG, at most 200 KB each).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.urgency import LEVELS
from tests.e2e.conftest import Demo
from tests.support.server import ROOT, SERVICE_KEY

pytestmark = pytest.mark.browser

SHOTS = ROOT / "docs" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
MAX_SHOT_BYTES = 200_000
NURSE = "Nurse Ada Obi (badge 4411)"
OpenPage = Callable[..., Page]


def open_board(open_page: OpenPage, demo: Demo, width: int = 1400, path: str = "/", **kw: object) -> Page:
    page = open_page(width, **kw)
    page.goto(f"{demo.base}{path}?key={SERVICE_KEY}")
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator(".bed").first).to_be_attached()
    return page


def shot(page: Page, name: str) -> None:
    """The viewport as a PNG of at most ``MAX_SHOT_BYTES``: cut shorter from the bottom while it is larger."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path, size = SHOTS / name, page.viewport_size
    assert size is not None
    height = size["height"]
    while True:
        page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": size["width"], "height": height})
        if path.stat().st_size <= MAX_SHOT_BYTES or height <= 400:
            break
        height -= 100
    assert path.stat().st_size <= MAX_SHOT_BYTES, f"{name} is {path.stat().st_size} bytes"


def page_order(page: Page) -> list[str]:
    return page.locator(".bed").evaluate_all("els => els.map(e => e.dataset.patientId)")


def readings(patient_id: str, start: datetime, end: datetime, step_s: int, **vitals: float) -> list[dict]:
    out, t = [], start
    while t <= end:
        out += [{"patient_id": patient_id, "vital": v, "value": x, "ts": t.isoformat()} for v, x in vitals.items()]
        t += timedelta(seconds=step_s)
    return out


@contextmanager
def monitor(demo: Demo, patient_id: str) -> Iterator[list[datetime]]:
    """A bedside monitor for ``patient_id``: posts normal vitals at the service clock's now until the block ends.
    Yields the times posted (the last is when the readings stopped)."""
    posted: list[datetime] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            now = demo.now()
            demo.client.post("/v1/readings", json={"readings": readings(
                patient_id, now, now, 1, hr=76, rr=15, spo2=97)}).raise_for_status()
            posted.append(now)
            stop.wait(0.5)  # a monitor's pace, not a wait for a result

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield posted
    finally:
        stop.set()
        thread.join(timeout=60)


def test_every_bed_appears_in_the_urgency_order_of_the_api(demo: Demo, open_page: OpenPage):
    page = open_board(open_page, demo)
    expect(page).to_have_url(f"{demo.base}/")  # the key was taken once and removed from the address
    beds = page.locator(".bed")

    def same_order() -> list[str] | None:  # the ward moves at 60×: compare once board and page agree
        api = [b["patient_id"] for b in demo.client.get("/v1/board").json()["beds"]]
        shown = page_order(page)
        return api if shown == api else None

    order = demo.wait_until("the page showing the API's order", same_order)
    assert set(order) == {p["patient_id"] for p in demo.client.get("/v1/patients").json()}
    expect(beds).to_have_count(len(order))
    levels = [LEVELS.index(x) for x in beds.evaluate_all("els => els.map(e => e.dataset.level)")]
    assert levels == sorted(levels, reverse=True)  # the escalation band leads the order
    for attr in ("data-patient-id", "data-news2", "data-risk", "data-stale"):
        expect(beds.first).to_have_attribute(attr, re.compile(".*"))
    expect(page.locator(".legend")).to_contain_text("Stale")
    expect(page.locator("#clock")).to_contain_text("Simulated clock, runs at 60")
    for width in (768, 390):
        narrow = open_board(open_page, demo, width)
        assert narrow.evaluate("document.documentElement.scrollWidth") <= width  # nothing off-screen sideways
        expect(narrow.locator("#alerts-panel")).to_be_in_viewport()
        if width == 390:
            shot(narrow, "board-390.png")


def test_a_bed_whose_readings_stop_turns_stale(demo: Demo, open_page: OpenPage):
    page = open_board(open_page, demo)
    bed = page.locator('.bed[data-patient-id="e2e-quiet"]')
    with monitor(demo, "e2e-quiet") as posted:
        expect(bed).to_have_attribute("data-stale", "false")  # live while its monitor sends
    last = posted[-1]
    expect(bed).to_have_attribute("data-stale", "true")
    expect(bed).to_contain_text("STALE — no data for")
    expect(bed).to_have_class(re.compile(r"\bis-stale\b"))
    cadence = timedelta(seconds=demo.client.get("/v1/board").json()["stale_after_s"])
    assert demo.now() - last > cadence  # stale once the cadence has passed, not before


def test_a_new_alert_appears_without_reload_and_its_acknowledgement_records_the_nurse(demo: Demo,
                                                                                       open_page: OpenPage):
    page = open_board(open_page, demo)
    page.evaluate("window.notReloaded = true")
    now = demo.now()
    demo.client.post("/v1/readings", json={"readings": readings(  # tachycardic, hypotensive, hypoxic, febrile
        "e2e-sick", now - timedelta(minutes=40), now, 30, hr=148, rr=31, spo2=86, sbp=82, temp=39.7,
    )}).raise_for_status()
    alert = page.locator('.alert[data-alert-id^="e2e-sick-"]').first
    expect(alert).to_be_visible()  # over the WebSocket: the page was never reloaded
    expect(page.locator('.bed[data-patient-id="e2e-sick"]')).to_be_attached()
    expect(alert.locator(".new")).to_have_text("NEW")  # the visual cue of an alert that arrived while watching
    shot(page, "board-1400.png")
    alert_id = alert.get_attribute("data-alert-id")
    alert.locator('button[data-act="acknowledge"]').click()
    dialog = page.locator("#action-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Your name or badge").fill(NURSE)
    dialog.get_by_label("Note").fill("seen at the bedside, doctor called")
    dialog.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(f'.alert[data-alert-id="{alert_id}"]')).to_contain_text(f"acknowledged by {NURSE}")
    stored = next(a for a in demo.client.get("/v1/alerts", params={"patient_id": "e2e-sick"}).json()
                  if a["id"] == alert_id)
    assert stored["state"] == "acknowledged" and stored["acknowledged_by"] == f"{NURSE} via demo"
    moves = demo.client.get(f"/v1/alerts/{alert_id}/transitions").json()
    assert moves[-1]["actor"] == f"{NURSE} via demo" and moves[-1]["note"] == "seen at the bedside, doctor called"
    expect(page.locator("#nurse-name")).to_have_text(f"Nurse: {NURSE}")  # asked once for this session
    assert page.evaluate("window.notReloaded") is True


def test_the_patient_view_draws_its_charts(demo: Demo, open_page: OpenPage):
    # the most urgent of the demo's own beds (an hour of history each; the tests' beds are minutes old)
    beds = demo.client.get("/v1/board").json()["beds"]
    patient = next(b["patient_id"] for b in beds if b["patient_id"].startswith("bed-"))
    page = open_board(open_page, demo, path=f"/patients/{patient}")
    expect(page.locator("#patient-title")).to_have_text(f"Patient {patient}")
    charts = page.locator("#patient-view .chart")
    expect(charts).to_have_count(7)  # HR, RR, SpO2, SBP, temperature; risk; NEWS2
    for i in range(7):
        assert int(charts.nth(i).get_attribute("data-points")) > 0
        assert charts.nth(i).locator("path.line").get_attribute("d").count("L") > 1  # a line, not a dot
    expect(page.locator("#patient-why li").first).to_be_visible()
    expect(page.locator(".board-view")).to_be_hidden()
    shot(page, "patient-view.png")
    page.locator("#patient-view").get_by_role("link", name="Back to the ward board").click()
    expect(page.locator(".board-view")).to_be_visible()


def test_the_patient_view_marks_a_charted_set_apart_from_the_monitor_line(demo: Demo, open_page: OpenPage):
    now = demo.now()
    demo.client.post("/v1/readings", json={"readings": readings(
        "e2e-charted", now - timedelta(minutes=30), now, 60, hr=80, rr=16, spo2=97)}).raise_for_status()
    demo.client.post("/v1/observations", json={  # a pulse of 104 (1 point): no alert, the ward left as it was
        "patient_id": "e2e-charted", "ts": (now - timedelta(minutes=10)).isoformat(), "hr": 104}).raise_for_status()
    page = open_board(open_page, demo, path="/patients/e2e-charted")
    heart = page.locator('#patient-charts .chart[data-chart="Heart rate"]')
    expect(heart.locator("circle[data-charted]")).to_have_count(1)
    assert heart.locator("circle[data-charted]").get_attribute("data-charted") == "104"
    expect(heart.locator("figcaption")).to_contain_text("● charted by a nurse")
    expect(page.locator('#patient-charts .chart[data-chart="Systolic BP"] circle[data-charted]')).to_have_count(0)


def test_a_wrong_key_says_so_once_and_a_good_one_opens_the_board(demo: Demo, open_page: OpenPage):
    page = open_page(1400)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/v1/" in r.url else None)
    page.goto(f"{demo.base}/?key=wt_not-a-key-0123456789")
    expect(page.locator("#key-message")).to_contain_text("refused")
    expect(page.locator("#key-input")).to_be_focused()
    settled = len(requests)
    page.get_by_label("API key").fill(SERVICE_KEY)  # no re-prompt loop: nothing was asked again meanwhile
    assert len(requests) == settled
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#key-form")).to_be_hidden()
    expect(page.locator(".bed").first).to_be_visible()


def test_axe_core_finds_no_violations(demo: Demo, open_page: OpenPage):
    page = open_board(open_page, demo, bypass_csp=True)  # to inject axe-core; the board itself runs under its CSP
    page.add_script_tag(path=str(AXE))
    for view in ("#/", f"#/patients/{page_order(page)[0]}"):
        page.evaluate("h => { location.hash = h; }", view)
        if "patients" in view:
            expect(page.locator("#patient-view .chart")).to_have_count(7)
        else:
            expect(page.locator(".board-view")).to_be_visible()
        violations = page.evaluate("async () => (await axe.run()).violations.map(v => "
                                   "`${v.id}: ${v.nodes.length} (${v.nodes[0].target})`)")
        assert violations == [], f"{view}: {violations}"


def test_the_offline_banner_appears_when_the_server_stops_and_clears_when_it_returns(demo: Demo,
                                                                                      open_page: OpenPage):
    page = open_board(open_page, demo)
    banner = page.locator("#offline")
    expect(banner).to_be_hidden()
    demo.stop()
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("not current")
    expect(page.locator("body")).to_have_class(re.compile(r"\boffline\b"))
    expect(page.locator("#what-if button")).to_be_disabled()  # every action of the page
    shot(page, "board-offline.png")
    demo.start()
    expect(banner).to_be_hidden()  # reconnected by itself, resumed from its last seq
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#what-if button")).to_be_enabled()


def test_the_api_docs_render_with_no_request_leaving_the_service(demo: Demo, open_page: OpenPage):
    page = open_page(1400)
    elsewhere: list[str] = []
    page.route(lambda url: not url.startswith(demo.base) and not url.startswith("data:"),
               lambda route: (elsewhere.append(route.request.url), route.abort()))
    page.goto(f"{demo.base}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("wardtwin")
    expect(page.locator(".opblock-summary-path", has_text="/v1/board").first).to_be_visible()
    page.goto(f"{demo.base}/redoc")
    expect(page.locator("h1", has_text="wardtwin").first).to_be_visible()
    expect(page.get_by_text("/v1/board").first).to_be_attached()
    assert elsewhere == []
