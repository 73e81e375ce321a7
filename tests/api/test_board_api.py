"""``GET /v1/board`` (the ward board's one read), a nurse named on acknowledge/resolve, the patient view's address
and the API docs served from the package's own assets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.clock import FixedClock
from app.settings import Settings
from app.urgency import BedUrgency, order
from tests.support.api import NOW, SICK, STABLE, T0, bearer, client_as, post_readings, reading, run_cycle, serve

NURSE = "S. Patel (badge 4411)"


@pytest.fixture
def raised(client) -> str:
    """One open twin alert, raised through the alert store (whatever the rules currently need to raise one)."""
    store = client.app.state.wardtwin.alert_store
    alert = client.portal.call(lambda: store.raise_alert(SICK, T0, 0.4, ["twin risk 40 %"], NOW))
    return alert.id


def test_the_board_lists_every_bed_in_the_urgency_order_with_its_vitals(ward):
    board = ward.client.get("/v1/board").json()
    beds = board["beds"]
    assert [b["patient_id"] for b in beds] == [SICK, STABLE] and [b["rank"] for b in beds] == [1, 2]
    again = order(BedUrgency(b["patient_id"], b["news2"]["band"], b["risk"], b["risk_change_1h"],
                             tuple((a["kind"], None) for a in b["alerts"]), b["stale"]) for b in reversed(beds))
    assert [u.patient_id for u in again] == [SICK, STABLE]
    sick = beds[0]
    assert sick["level"] == sick["news2"]["band"] == "high" and sick["level_why"].startswith("NEWS2 ")
    assert sick["risk_change_1h"] == pytest.approx(sick["risk"] - next(
        s["risk"] for s in ward.client.get(f"/v1/patients/{SICK}/risk/history").json()
        if s["window_end"] == (T0 - timedelta(hours=1)).isoformat().replace("+00:00", "Z")))
    assert sick["risk_change_1h"] > 0  # the sick patient drifts over the last two hours
    vitals = sick["vitals"]
    assert len(vitals["t"]) == 36 and all(len(vitals[v]) == 36 for v in ("hr", "rr", "spo2", "sbp", "temp"))
    assert vitals["hr"][-1] > 120 and None in vitals["sbp"]  # missing stays missing (SBP every 15 min)
    assert sick["last_data_at"] == "2026-03-02T11:59:59Z" and sick["silent_s"] == 61.0 and sick["stale"] is False
    assert {a["kind"] for a in sick["alerts"]} == {a["kind"] for a in ward.client.get(
        "/v1/alerts", params={"patient_id": SICK}).json() if a["state"] != "resolved"}
    assert board["time_zone"] == "Europe/London" and board["clock_speed"] == 1.0 and board["stale_after_s"] == 900
    assert {t["vital"] for t in board["event_thresholds"]} == {"hr", "sbp", "spo2", "temp"}


def test_a_bed_silent_past_its_cadence_is_stale_and_sorts_above_routine_beds(tmp_path):
    with serve(tmp_path, FixedClock(NOW + timedelta(minutes=20)), board_stale_after_min=15) as client:
        post_readings(client, [reading("quiet", "hr", 80, NOW - timedelta(minutes=30)),
                               reading("live", "hr", 80, NOW + timedelta(minutes=19))])
        run_cycle(client, NOW + timedelta(minutes=15))
        beds = {b["patient_id"]: b for b in client.get("/v1/board").json()["beds"]}
        # silent since 11:31, older than two windows: told at window granularity (its window ended 11:35)
        assert beds["quiet"]["stale"] is True and beds["quiet"]["silent_s"] == 46 * 60
        assert beds["live"]["stale"] is False and beds["live"]["silent_s"] == 60
        assert [b["patient_id"] for b in client.get("/v1/board").json()["beds"]] == ["quiet", "live"]
        assert beds["quiet"]["level"] == "low-medium" and beds["quiet"]["level_why"] == "no current data"


def test_the_board_needs_a_clinician_key_and_a_sane_window(client):
    assert client.get("/v1/board", headers={"Authorization": ""}).status_code == 401
    assert client_as(client, "device").get("/v1/board").status_code == 403
    bad = client.get("/v1/board", params={"hours": 48})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "hours"]
    assert client.get("/v1/board").json()["beds"] == []


def test_acknowledge_and_resolve_record_the_nurse_beside_the_key_and_a_note(client, raised):
    acked = client.post(f"/v1/alerts/{raised}/acknowledge", json={"by": f"  {NURSE} ", "note": "fluids started"})
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == f"{NURSE} via demo"
    resolved = client.post(f"/v1/alerts/{raised}/resolve", json={"by": NURSE}).json()
    assert resolved["resolved_reason"] == f"resolved by {NURSE} via demo"
    moves = client.get(f"/v1/alerts/{raised}/transitions").json()
    assert [(m["event"], m["actor"], m["note"]) for m in moves[-2:]] == [
        ("acknowledged", f"{NURSE} via demo", "fluids started"), ("resolved", f"{NURSE} via demo", None)]


@pytest.mark.parametrize(("body", "loc"), [({"by": " "}, ["body", "by"]), ({"by": "a\nb"}, ["body", "by"]),
                                           ({"by": "x" * 81}, ["body", "by"]), ({"note": "n" * 501}, ["body", "note"]),
                                           ({"who": "x"}, ["body", "who"])])
def test_a_bad_nurse_or_note_is_a_422_naming_it(client, raised, body, loc):
    response = client.post(f"/v1/alerts/{raised}/acknowledge", json=body)
    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == loc
    assert client.get("/v1/alerts", params={"kind": "twin"}).json()[0]["state"] == "raised"  # nothing recorded


def test_without_a_nurse_the_key_name_is_the_actor_as_before(client, raised):
    assert client.post(f"/v1/alerts/{raised}/acknowledge").json()["acknowledged_by"] == "demo"


def test_the_patient_view_address_serves_the_board_page(client):
    page = client.get("/patients/bed-1")
    assert page.status_code == 200 and page.text == client.get("/").text and "/board.js" in page.text
    assert client.get("/patients/bad%20id").status_code == 422


def test_the_api_docs_come_from_the_package_not_a_cdn(client):
    for path in ("/docs", "/redoc"):
        html = client.get(path).text
        assert "cdn." not in html and "googleapis" not in html and "/vendor/" in html
        assert "cdn." not in client.get(path).headers["content-security-policy"]
    for asset in ("/vendor/swagger-ui/swagger-ui-bundle.js", "/vendor/swagger-ui/swagger-ui.css",
                  "/vendor/redoc/redoc.standalone.js"):
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 100_000


def test_the_ward_time_zone_must_be_an_iana_zone(tmp_path):
    with pytest.raises(ValueError, match="not an IANA time zone"):
        Settings(data_dir=tmp_path, ward_time_zone="Mars/Olympus")
    with serve(tmp_path, ward_time_zone="Europe/Berlin") as client:
        assert client.get("/v1/board", headers=bearer("wt_tests-every-role-0123456789abcdef")).json()[
            "time_zone"] == "Europe/Berlin"


def test_an_open_charted_news2_alert_sets_the_level_and_is_shown_beside_the_monitor_score(client, stable_readings):
    post_readings(client, stable_readings)
    run_cycle(client, T0)
    charted = {"total": 8, "band": "high", "partial": False}
    store = client.app.state.wardtwin.alert_store
    client.portal.call(lambda: store.raise_alert(STABLE, T0, 0.02, ["NEWS2 8 (charted)"], NOW, "news2", charted))
    (bed,) = client.get("/v1/board").json()["beds"]
    assert bed["news2"]["band"] == "low" and bed["charted_news2"] == charted
    assert bed["level"] == "high" and bed["level_why"] == "open NEWS2 alert"
