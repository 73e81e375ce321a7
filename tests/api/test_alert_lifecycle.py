"""H13: only the cycle for the newest window end drives alert state; a cycle for a past window end (backfill, late
data, a manual trigger) writes its scores and changes no alert. Every transition is stored with time and actor."""

from __future__ import annotations

from datetime import timedelta

from tests.support.api import ALERTING_KINDS, NOW, SICK, T0, assert_domain_error, client_as, parse, run_cycle


def open_alerts(client) -> dict[str, str]:
    return {a["id"]: a["state"] for a in client.get("/v1/alerts").json() if a["state"] != "resolved"}


def test_a_past_window_cycle_leaves_open_alerts_untouched(client, alerting):
    """Reproduction: a cycle for a 2-hour-old window (the patient was well then) resolved the live alert."""
    before = open_alerts(client)
    assert len(before) == len(ALERTING_KINDS)
    old = T0 - timedelta(hours=2)
    result = run_cycle(client, old)
    assert result["scored"] == 1 and result["alerts_evaluated"] is False and result["alerts_raised"] == 0
    history = client.get(f"/v1/patients/{SICK}/risk/history",
                         params={"since": old.isoformat(), "until": (old + timedelta(minutes=1)).isoformat()}).json()
    assert [parse(s["window_end"]) for s in history] == [old]  # the past window's score is written
    assert history[0]["risk"] < 0.7  # and it would have resolved the twin alert had it driven state
    assert open_alerts(client) == before
    # the newest window end still drives the rules (a rerun of it too)
    assert run_cycle(client, T0)["alerts_evaluated"] is True


def test_a_past_window_cycle_raises_nothing_from_old_data(client, alerting):
    """Reproduction: a run for an old window raised a fresh alert from old data."""
    nurse = client_as(client, "clinician", "nurse-7")
    for alert_id in open_alerts(client):
        assert nurse.post(f"/v1/alerts/{alert_id}/resolve").status_code == 200
    result = run_cycle(client, T0 - timedelta(minutes=10))  # the patient was already sick ten minutes earlier
    assert result["alerts_evaluated"] is False and result["alerts_raised"] == 0
    assert open_alerts(client) == {}
    assert len(client.get("/v1/alerts").json()) == len(ALERTING_KINDS)  # the resolved ones, nothing new


def test_every_transition_is_stored_with_its_time_and_actor(client, alerting):
    nurse = client_as(client, "clinician", "nurse-7")
    assert nurse.post(f"/v1/alerts/{alerting}/acknowledge").status_code == 200
    assert nurse.post(f"/v1/alerts/{alerting}/resolve").status_code == 200
    transitions = nurse.get(f"/v1/alerts/{alerting}/transitions").json()
    assert [(t["from_state"], t["to_state"], t["event"], t["actor"]) for t in transitions] == [
        (None, "raised", "raised", "engine"), ("raised", "acknowledged", "acknowledged", "nurse-7"),
        ("acknowledged", "resolved", "resolved", "nurse-7")]
    assert all(parse(t["at"]) == NOW for t in transitions)


def test_transitions_of_an_unknown_alert_are_a_404(client):
    assert_domain_error(client.get("/v1/alerts/nobody-20260302T1200Z-twin/transitions"), 404, "alert_not_found")
