"""The alert lifecycle, its kinds and its outbox, on a real SQLite file in a temp dir (no sockets)."""

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from app.alerts.engine import AlertEngine
from app.alerts.rules import ChartedSet, Policy
from app.alerts.store import AlertStore
from app.alerts.timers import Timers
from app.clock import FixedClock
from app.domain import Contribution, Score
from app.errors import AlertConflictError, AlertNotFoundError
from models.news2 import News2Summary

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def score(patient_id: str, risk: float, at: datetime = T0, *, news2: dict[str, int] | None = None,
          flags: tuple[str, ...] = ()) -> Score:
    """A score; ``news2`` gives per-parameter points (the total is their sum)."""
    points = news2 or {}
    return Score(patient_id, at, risk, 0.0, 0.0,
                 (Contribution("hr_trend_1h", 18.0, 1.2, "Heart rate rising: +18 bpm over the last hour"),),
                 "test", news2=News2Summary.from_stored({"total": sum(points.values()), "points": points}),
                 flags=flags)


def make_engine(store: AlertStore, clock: FixedClock, *, renotify_after: timedelta | None = None,
                **policy: int | timedelta) -> AlertEngine:
    # the lifecycle tests use the RCP ward triggers for obs_due (≥ 5 or a single 3), not the shipped stricter default
    policy = {"obs_due_aggregate": 5, "obs_due_single_parameter": 3, **policy}
    return AlertEngine(store, clock, Policy(threshold=0.7, clear_threshold=0.6, **policy),
                       Timers(store, escalate_after=timedelta(minutes=15), renotify_after=renotify_after))


@pytest.fixture
async def engine(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    await store.open()
    clock = FixedClock(T0)
    # The lifecycle at work from one window: the twin and obs_due raise at once (the shipped persistence has its
    # own tests below).
    yield make_engine(store, clock, twin_sustain_windows=1, obs_due_after=timedelta(minutes=5))
    await store.close()


async def test_crossing_raises_once_with_reasons_and_hysteresis_resolves(engine):
    assert await engine.evaluate([score("a", 0.5)]) == []
    (alert,) = await engine.evaluate([score("a", 0.8)])
    assert alert.state == "raised" and alert.kind == "twin" and alert.id == "a-20261124T1200Z-twin"
    assert alert.reasons == ["Twin risk 80% (alert threshold 0.7)", "Heart rate rising: +18 bpm over the last hour"]
    assert await engine.evaluate([score("a", 0.9, T0 + timedelta(minutes=5))]) == []  # still open: no new alert
    await engine.evaluate([score("a", 0.65, T0 + timedelta(minutes=10))])  # between thresholds: stays open
    assert (await engine.store.get(alert.id)).state == "raised"
    await engine.evaluate([score("a", 0.55, T0 + timedelta(minutes=15))])
    assert (await engine.store.get(alert.id)).state == "resolved"


async def test_rerun_of_same_window_does_not_duplicate(engine):
    await engine.evaluate([score("a", 0.8)])
    await engine.store.resolve((await engine.store.list())[0].id, T0, "test")
    assert await engine.evaluate([score("a", 0.8)]) == []
    assert len(await engine.store.list()) == 1


async def test_outbox_stays_pending_until_a_subscriber_confirms(engine):
    await engine.evaluate([score("a", 0.8), score("b", 0.9)])
    assert await engine.store.backlog() == 2 and await engine.store.pending_delivery() == 2
    assert all(a.delivery_pending and a.to_dict()["delivery_pending"] for a in await engine.store.list())
    (first, second) = await engine.store.events_after(0)
    assert await engine.store.confirm_delivery([first.seq], T0, "websocket:ws-1") == [first.alert_id]
    assert await engine.store.confirm_delivery([first.seq], T0, "webhook:ep_x") == []  # first confirmation wins
    delivered = await engine.store.get(first.alert_id)
    assert delivered.state == "delivered" and not delivered.delivery_pending and delivered.delivered_at
    assert (await engine.store.get(second.alert_id)).delivery_pending
    assert await engine.store.pending_delivery() == 1
    events = [(e.seq, e.event) for e in await engine.store.events_after(0)]
    assert events == [(1, "raised"), (2, "raised"), (3, "delivered")]
    assert [(t["event"], t["actor"]) for t in await engine.store.transitions(first.alert_id)] == [
        ("raised", "engine"), ("delivered", "websocket:ws-1")]


async def test_a_past_window_cycle_leaves_open_alerts_untouched(engine):
    """H13: a cycle for an old window end (backfill, a manual trigger) must not resolve or raise anything."""
    engine.clock.set(T0 + timedelta(hours=7, minutes=1))  # the clock follows the windows (one ahead: not trusted)
    (alert,) = await engine.evaluate([score("a", 0.8, T0 + timedelta(hours=7))])
    old = T0  # seven hours earlier, risk low: would resolve the alert if it drove state
    assert await engine.evaluate([score("a", 0.05, old), score("z", 0.95, old)], old) is None
    assert (await engine.store.get(alert.id)).state == "raised"
    assert [a.id for a in await engine.store.list()] == [alert.id]  # and nothing raised from old data
    assert await engine.store.newest_window_end() == T0 + timedelta(hours=7)
    # the newest window end (and a rerun of it) still drives the rules
    assert await engine.evaluate([score("a", 0.05, T0 + timedelta(hours=7, minutes=5))]) == []
    assert (await engine.store.get(alert.id)).state == "resolved"


async def test_unacknowledged_alerts_escalate_and_are_renotified_on_the_clock(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    await store.open()
    clock = FixedClock(T0)
    engine = make_engine(store, clock, renotify_after=timedelta(minutes=5), twin_sustain_windows=1)
    (alert,) = await engine.evaluate([score("a", 0.8)])
    (other,) = await engine.evaluate([score("b", 0.8)])
    await store.acknowledge(other.id, "nurse-7", T0)
    assert await engine.timers.sweep(T0 + timedelta(minutes=4)) == (0, 0)
    assert await engine.timers.sweep(T0 + timedelta(minutes=5)) == (0, 1)
    assert await engine.timers.sweep(T0 + timedelta(minutes=9)) == (0, 0)  # 4 min since the last notification
    assert await engine.timers.sweep(T0 + timedelta(minutes=10)) == (0, 1)
    assert await engine.timers.sweep(T0 + timedelta(minutes=15)) == (1, 0)  # escalation is itself a notification
    assert await engine.timers.sweep(T0 + timedelta(minutes=20)) == (0, 1)
    escalated = await store.get(alert.id)
    assert escalated.state == "escalated" and escalated.renotifications == 3
    assert [(t["event"], t["at"][11:16], t["actor"]) for t in await store.transitions(alert.id)] == [
        ("raised", "12:00", "engine"), ("renotified", "12:05", "engine"), ("renotified", "12:10", "engine"),
        ("escalated", "12:15", "engine"), ("renotified", "12:20", "engine")]
    assert [t["event"] for t in await store.transitions(other.id)] == ["raised", "acknowledged"]  # acked: quiet
    await store.close()


async def test_acknowledge_escalate_and_conflicts(engine):
    (alert,) = await engine.evaluate([score("a", 0.8)])
    engine.clock.advance(timedelta(minutes=16))
    await engine.evaluate([score("a", 0.8, T0 + timedelta(minutes=15))])
    assert (await engine.store.get(alert.id)).state == "escalated"
    acked = await engine.store.acknowledge(alert.id, "nurse-7", engine.clock.now())
    assert acked.state == "acknowledged" and acked.acknowledged_by == "nurse-7"
    with pytest.raises(AlertConflictError):
        await engine.store.acknowledge(alert.id, "nurse-8", engine.clock.now())
    with pytest.raises(AlertNotFoundError):
        await engine.store.acknowledge("nope", "x", engine.clock.now())
    events = [e.event for e in await engine.store.events_after(0)]
    assert events == ["raised", "escalated", "acknowledged"]


async def test_state_survives_reopen(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    await store.open()
    await store.raise_alert("a", T0, 0.9, ["x"], T0)
    await store.close()
    again = AlertStore(tmp_path / "alerts.db")
    await again.open()
    assert [a.patient_id for a in await again.list()] == ["a"]
    assert await again.backlog() == 1
    await again.close()


async def test_meeting_a_criterion_now_alerts_whatever_the_risk(engine):
    now_bad = Score("c", T0, 0.05, 0.0, 0.0, (), "test", flags=("criteria_met:sbp_low",))
    (alert,) = await engine.evaluate([now_bad])
    assert alert.kind == "criteria"
    assert alert.reasons == ["Meets the deterioration criterion now: systolic BP below 90 mmHg"]
    later = T0 + timedelta(minutes=5)
    await engine.evaluate([Score("c", later, 0.05, 0.0, 0.0, (), "test", flags=("criteria_met:sbp_low",))])
    assert (await engine.store.get(alert.id)).state == "raised"  # still met: stays open at low risk
    await engine.evaluate([Score("c", later + timedelta(minutes=5), 0.05, 0.0, 0.0, (), "test")])
    assert (await engine.store.get(alert.id)).state == "resolved"


# -- kinds ---------------------------------------------------------------------------------------------------------
def chart(patient_id: str, at: datetime = T0, by: str = "Nurse Ada", *, partial: bool = False,
          **points: int) -> ChartedSet:
    """A charted set with these NEWS2 points (the total is their sum)."""
    summary = News2Summary.from_stored({"total": sum(points.values()), "points": points, "partial": partial})
    return ChartedSet(patient_id, at, summary, by=by)


async def test_a_charted_news2_of_5_alerts_at_once_whatever_the_risk_with_its_clinical_response(engine):
    alert, _ = await engine.raise_charted(chart("n", rr=2, hr=1, temp=1, sbp=1))
    assert alert.kind == "news2" and alert.id == "n-20261124T120000Z-news2" and alert.state == "raised"
    assert alert.reasons == ["Charted by Nurse Ada: key threshold for urgent response",
                             "NEWS2 5, medium clinical risk: urgent review by a clinician competent in acute illness; "
                             "monitoring: every hour"]
    assert alert.news2["grade"] == 2 and alert.news2["by"] == "Nurse Ada" and alert.news2["source"] == "charted"
    assert [(t["event"], t["actor"]) for t in await engine.store.transitions(alert.id)] == [("raised", "Nurse Ada")]
    (event,) = await engine.store.events_after(0)  # in the outbox for the WebSocket and the webhooks
    assert event.alert_id == alert.id and event.payload["actor"] == "Nurse Ada"


async def test_a_monitor_window_at_news2_5_raises_no_news2_alert(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    await store.open()
    shipped = make_engine(store, FixedClock(T0))  # the shipped persistence: 60 minutes of windows
    assert await shipped.evaluate([score("n", 0.01, news2={"rr": 3, "hr": 2})]) == []
    assert await store.list() == []
    await store.close()


async def test_a_charted_single_parameter_of_3_alerts_and_names_it(engine):
    alert, _ = await engine.raise_charted(chart("n", rr=3))
    assert alert.kind == "news2" and alert.news2["grade"] == 1
    assert alert.reasons == ["Charted by Nurse Ada: urgent ward-based response",
                             "NEWS2 3, low-medium clinical risk: registered nurse informs the medical team; "
                             "monitoring: every hour", "NEWS2 respiration rate scores 3"]


async def test_a_charted_set_below_both_triggers_raises_nothing(engine):
    assert (await engine.raise_charted(chart("n", rr=2, hr=2)))[0] is None
    assert (await engine.raise_charted(chart("m", hr=1, temp=1, sbp=2)))[0] is None
    assert await engine.store.list() == []


async def test_a_charted_alert_escalates_on_a_higher_grade_stays_at_a_lower_and_resolves_below_both(engine):
    first, _ = await engine.raise_charted(chart("n", rr=3, hr=2))  # 5: key threshold
    t = [T0 + timedelta(minutes=30 * i) for i in range(1, 5)]
    worse, _ = await engine.raise_charted(chart("n", t[0], "Nurse Bo", rr=3, hr=2, sbp=2))  # 7: emergency
    assert worse.id == first.id and worse.state == "escalated" and worse.news2["grade"] == 3
    assert worse.reasons[0] == "Charted by Nurse Bo: emergency response" and worse.delivery_pending
    same, _ = await engine.raise_charted(chart("n", t[1], rr=3))  # a single 3: still at a trigger, kept open at 3
    assert same.id == first.id and same.news2["grade"] == 3
    assert (await engine.raise_charted(chart("n", t[2], "Nurse Cy", rr=2, hr=2)))[0] is None  # 4: below both
    resolved = await engine.store.get(first.id)
    assert resolved.state == "resolved" and resolved.resolved_reason.startswith("charted NEWS2 4 by Nurse Cy")
    assert [(t["event"], t["actor"]) for t in await engine.store.transitions(first.id)] == [
        ("raised", "Nurse Ada"), ("escalated", "Nurse Bo"), ("resolved", "Nurse Cy")]
    again, _ = await engine.raise_charted(chart("n", t[3], rr=3))  # a new trigger: a new alert
    assert again.id != first.id and again.state == "raised"


async def test_an_acknowledged_charted_alert_escalates_again_on_a_higher_grade(engine):
    first, _ = await engine.raise_charted(chart("n", rr=3))
    await engine.store.acknowledge(first.id, "Nurse Ada", T0)
    worse, _ = await engine.raise_charted(chart("n", T0 + timedelta(minutes=20), rr=3, hr=3, sbp=2))
    assert worse.state == "escalated" and worse.news2["total"] == 8


async def test_cycles_never_resolve_a_charted_news2_alert(engine):
    alert, _ = await engine.raise_charted(chart("n", rr=3, hr=2, sbp=2))
    for i in range(1, 4):  # normal monitor windows afterwards
        await engine.evaluate([score("n", 0.01, T0 + timedelta(minutes=5 * i))])
    assert (await engine.store.get(alert.id)).state == "raised"


async def test_thresholds_are_configurable(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    await store.open()
    strict = make_engine(store, FixedClock(T0), news2_aggregate=3, news2_single_parameter=2)
    a, _ = await strict.raise_charted(chart("a", hr=1, temp=1, sbp=1))
    b, _ = await strict.raise_charted(chart("b", o2=2))
    assert (a.kind, b.kind) == ("news2", "news2") and b.reasons[2] == "NEWS2 supplemental oxygen scores 2"
    await store.close()


async def test_obs_due_needs_every_window_of_the_duration_and_a_charted_set_resolves_it(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    await store.open()
    clock = FixedClock(T0)
    engine = make_engine(store, clock, obs_due_after=timedelta(minutes=15))
    at = [T0 + timedelta(minutes=5 * i) for i in range(8)]
    assert await engine.evaluate([score("p", 0.01, at[0], news2={"rr": 3})]) == []
    assert await engine.evaluate([score("p", 0.01, at[1], news2={"rr": 3})]) == []
    assert await engine.evaluate([score("p", 0.01, at[2], news2={"rr": 2})]) == []  # a window below: count restarts
    assert await engine.evaluate([score("p", 0.01, at[3], news2={"rr": 3})]) == []
    assert await engine.evaluate([score("p", 0.01, at[4], news2={"rr": 3})]) == []
    (due,) = await engine.evaluate([score("p", 0.01, at[5], news2={"rr": 3})])  # three windows: 15 minutes
    assert due.kind == "obs_due" and due.reasons[0].startswith("Observations due now: monitor suggests NEWS2")
    assert due.reasons[1] == ("Monitor-window NEWS2 3, low-medium clinical risk: registered nurse informs the "
                              "medical team; monitoring: every hour")
    alert, _ = await engine.raise_charted(chart("p", at[5], rr=1, spo2=0))  # the nurse charts: NEWS2 1
    assert alert is None
    resolved = await store.get(due.id)
    assert resolved.state == "resolved" and resolved.resolved_reason == "observations charted by Nurse Ada"
    assert await engine.evaluate([score("p", 0.01, at[6], news2={"rr": 3})]) == []  # counting starts again
    assert ("p", "obs_due") in await store.streaks()
    await store.close()


async def test_twin_alerts_only_on_sustained_risk(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    await store.open()
    engine = make_engine(store, FixedClock(T0))  # shipped: 3 consecutive windows
    at = [T0 + timedelta(minutes=5 * i) for i in range(6)]
    assert await engine.evaluate([score("a", 0.8, at[0])]) == []
    assert await engine.evaluate([score("a", 0.8, at[1])]) == []
    assert await engine.evaluate([score("a", 0.5, at[2])]) == []  # one window below: the run ends
    assert await engine.evaluate([score("a", 0.8, at[3])]) == []
    assert await engine.evaluate([score("a", 0.9, at[4])]) == []
    (alert,) = await engine.evaluate([score("a", 0.8, at[5])])
    assert alert.kind == "twin" and "sustained over 3 windows" in alert.reasons[0]
    await store.close()


async def test_one_open_alert_per_patient_and_kind_each_resolving_by_its_own_rule(engine):
    sick = score("p", 0.9, news2={"rr": 3, "hr": 2, "spo2": 3}, flags=("criteria_met:spo2_low",))
    raised = await engine.evaluate([sick])
    assert [a.kind for a in raised] == ["criteria", "obs_due", "twin"]
    assert len({a.id for a in raised}) == 3
    t1, t2, t3 = (T0 + timedelta(minutes=5 * i) for i in (1, 2, 3))
    assert await engine.evaluate([score("p", 0.9, t1, news2={"rr": 3, "hr": 2, "spo2": 3},
                                        flags=("criteria_met:spo2_low",))]) == []  # all still open: nothing new
    await engine.evaluate([score("p", 0.9, t2, news2={"rr": 3, "hr": 2, "spo2": 3})])  # criterion no longer met
    await engine.evaluate([score("p", 0.5, t3, news2={"rr": 3, "hr": 2, "spo2": 3})])  # twin below clear threshold
    states = {a.kind: a.state for a in await engine.store.list()}
    assert states == {"obs_due": "raised", "criteria": "resolved", "twin": "resolved"}  # monitor NEWS2 still 8
    assert set(await engine.store.open_by_kind()) == {("p", "obs_due")}


async def test_twin_hysteresis_does_not_depend_on_other_kinds(engine):
    await engine.evaluate([score("p", 0.8, news2={"rr": 3})])
    await engine.evaluate([score("p", 0.65, T0 + timedelta(minutes=5))])  # NEWS2 cleared; twin between thresholds
    states = {a.kind: a.state for a in await engine.store.list()}
    assert states == {"obs_due": "resolved", "twin": "raised"}


async def test_each_kind_escalates_unacknowledged(engine):
    sick = score("p", 0.9, news2={"rr": 3}, flags=("criteria_met:rr_high",))
    await engine.evaluate([sick])
    await engine.raise_charted(chart("q", rr=3))
    await engine.store.acknowledge("p-20261124T1200Z-twin", "nurse-7", T0)
    engine.clock.advance(timedelta(minutes=15))
    await engine.evaluate([score("p", 0.9, T0 + timedelta(minutes=15), news2={"rr": 3},
                                 flags=("criteria_met:rr_high",))])
    states = {a.kind: a.state for a in await engine.store.list()}
    assert states == {"news2": "escalated", "obs_due": "escalated", "criteria": "escalated", "twin": "acknowledged"}


async def test_a_rerun_raises_no_duplicate_of_any_kind(engine):
    sick = score("p", 0.9, news2={"rr": 3}, flags=("criteria_met:rr_high",))
    assert len(await engine.evaluate([sick])) == 3
    for alert in await engine.store.list():
        await engine.store.resolve(alert.id, T0, "test")
    assert await engine.evaluate([sick]) == []
    assert len(await engine.store.list()) == 3


async def test_the_store_keeps_one_open_alert_per_patient_and_kind(engine):
    store = engine.store
    first = await store.raise_alert("a", T0, 0.9, ["x"], T0, kind="news2")
    assert await store.raise_alert("a", T0 + timedelta(minutes=5), 0.9, ["x"], T0, kind="news2") is None
    assert await store.raise_alert("a", T0 + timedelta(minutes=5), 0.9, ["x"], T0, kind="twin") is not None
    await store.resolve(first.id, T0, "test")
    assert await store.raise_alert("a", T0 + timedelta(minutes=10), 0.9, ["x"], T0, kind="news2") is not None
    with pytest.raises(ValueError, match="kind"):
        await store.raise_alert("a", T0, 0.9, ["x"], T0, kind="nurse")


async def test_list_filters_by_kind_and_the_board_gets_the_most_urgent_open_alert(engine):
    store = engine.store
    twin = await store.raise_alert("a", T0, 0.9, ["x"], T0, kind="twin")
    news2 = await store.raise_alert("a", T0, 0.9, ["x"], T0, kind="news2")
    assert [a.id for a in await store.list(kind="twin")] == [twin.id]
    assert (await store.open_alerts())["a"].id == news2.id  # both unacknowledged: NEWS2 first
    await store.acknowledge(news2.id, "nurse-7", T0)
    assert (await store.open_alerts())["a"].id == twin.id  # the unacknowledged one
    await store.escalate(twin.id, T0)
    await store.acknowledge(twin.id, "nurse-7", T0)
    assert (await store.open_alerts())["a"].id == news2.id  # both acknowledged: NEWS2 first again


async def test_events_carry_the_kind(engine):
    await engine.evaluate([score("a", 0.01, news2={"acvpu": 3})])
    await engine.raise_charted(chart("b", acvpu=3))
    due, charted = await engine.store.events_after(0)
    assert due.payload["event"] == "raised" and due.payload["alert"]["kind"] == "obs_due"
    assert charted.payload["event"] == "raised" and charted.payload["alert"]["kind"] == "news2"


async def test_a_database_from_before_kinds_gains_the_column(tmp_path):
    path = tmp_path / "alerts.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE alerts (
            id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, window_end TEXT NOT NULL, raised_at TEXT NOT NULL,
            risk REAL NOT NULL, reasons TEXT NOT NULL, state TEXT NOT NULL, updated_at TEXT NOT NULL,
            delivered_at TEXT, acknowledged_by TEXT, acknowledged_at TEXT, escalated_at TEXT, resolved_at TEXT,
            resolved_reason TEXT);
        CREATE INDEX alerts_patient ON alerts (patient_id, state);
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, event TEXT NOT NULL,
            payload TEXT NOT NULL, created_at TEXT NOT NULL, delivered_at TEXT,
            attempts INTEGER NOT NULL DEFAULT 0);""")
    at = T0.isoformat()
    row = ("a-20261124T1200Z", "a", at, at, 0.9, '["x"]', "raised", at)
    old.execute("INSERT INTO alerts (id, patient_id, window_end, raised_at, risk, reasons, state, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
    legacy = {"id": row[0], "patient_id": "a", "state": "raised"}
    old.execute("INSERT INTO outbox (alert_id, event, payload, created_at) VALUES (?, 'raised', ?, ?)",
                (row[0], json.dumps({"event": "raised", "alert": legacy}), at))
    old.commit()
    old.close()
    store = AlertStore(path)
    await store.open()
    (alert,) = await store.list()
    assert (alert.id, alert.kind, alert.state) == ("a-20261124T1200Z", "twin", "raised")
    assert (await store.events_after(0))[0].payload["alert"]["kind"] == "twin"
    assert await store.raise_alert("a", T0 + timedelta(minutes=5), 0.9, ["y"], T0, kind="twin") is None  # still open
    assert await store.raise_alert("a", T0 + timedelta(minutes=5), 0.9, ["y"], T0, kind="news2") is not None
    await store.close()
    again = AlertStore(path)  # reopening a migrated database changes nothing
    await again.open()
    assert sorted((a.id, a.kind) for a in await again.list()) == [
        ("a-20261124T1200Z", "twin"), ("a-20261124T1205Z-news2", "news2")]
    await again.close()
