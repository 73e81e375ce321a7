"""The shipped fold on a running service (``Settings.alert_fold = "less_urgent"``): the sick patient charted at NEWS2
10 (a news2 alert in the request), then the twin's sustained rule holding at the cycles to T0 is recorded on that
alert, not raised as a second one; with ``alert_fold="off"`` the same day raises both."""

from __future__ import annotations

from pathlib import Path

from app.alerts.rules import fold_header
from app.clock import FixedClock
from tests.support.api import NOW, SICK, SICK_SET, T0, WINDOW, post_readings, run_cycle, serve
from tests.support.synthetic_readings import trajectory


def _chart_then_score(client) -> list[dict]:
    post_readings(client, trajectory(SICK, T0, True, 2))
    assert client.post("/v1/observations", json=SICK_SET).status_code == 201
    for k in (2, 1, 0):
        run_cycle(client, T0 - WINDOW * k)
    return client.get("/v1/alerts", params={"patient_id": SICK}).json()


def test_the_twin_holding_during_a_charted_news2_alert_is_recorded_on_it(tmp_path: Path):
    with serve(tmp_path, FixedClock(NOW)) as client:
        (news2,) = _chart_then_score(client)
        assert news2["kind"] == "news2" and news2["state"] == "raised"
        at = news2["reasons"].index(fold_header("twin"))
        assert news2["reasons"][at + 1].startswith("Twin risk") and at >= 2  # after the charted set's own reasons
        events = [t["event"] for t in client.get(f"/v1/alerts/{news2['id']}/transitions").json()]
        assert events == ["raised", "corroborated"]


def test_with_the_fold_off_the_same_day_raises_two_alerts(tmp_path: Path):
    with serve(tmp_path, FixedClock(NOW), alert_fold="off") as client:
        assert sorted(a["kind"] for a in _chart_then_score(client)) == ["news2", "twin"]
