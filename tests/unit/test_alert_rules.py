"""app.alerts.rules.decide, pure (no SQLite, no clock): property-tested against the rules' own statement and
against the scan it replaced (every score against every open alert)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from app.alerts.rules import Policy, Raise, Resolve, by_patient, decide, verdicts
from app.alerts.store import KINDS, Alert
from models.news2 import PARAMETERS, News2Summary
from models.scoring import CRITERIA_MET, Score

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PATIENTS = ("a", "b", "c", "d")
POINTS_MAX = {"rr": 3, "spo2": 3, "o2": 2, "sbp": 3, "hr": 3, "acvpu": 3, "temp": 2}


@st.composite
def a_score(draw, patient_id: str, window_end: datetime) -> Score:
    points = {k: draw(st.integers(0, POINTS_MAX[k])) for k in PARAMETERS}
    summary = draw(st.one_of(st.none(), st.just(News2Summary.from_stored({"total": sum(points.values()),
                                                                           "points": points}))))
    flags = tuple(f"{CRITERIA_MET}:{k}" for k in draw(st.lists(st.sampled_from(["hr_high", "sbp_low"]), max_size=2,
                                                               unique=True)))
    return Score(patient_id, window_end, draw(st.floats(0, 1)), 0.0, 0.0, (), "test", news2=summary, flags=flags)


@st.composite
def a_case(draw):
    window_end = T0 + draw(st.integers(0, 12)) * timedelta(minutes=5)
    scored = draw(st.lists(st.sampled_from(PATIENTS), unique=True))
    scores = [draw(a_score(p, window_end)) for p in scored]
    open_alerts, last_met = [], {}
    for p in PATIENTS:
        for kind in draw(st.lists(st.sampled_from(KINDS), unique=True)):
            raised_at = T0 - draw(st.integers(0, 12)) * timedelta(minutes=5)
            alert = Alert(f"{p}-{kind}", p, raised_at.isoformat(), raised_at.isoformat(), 0.5, [], "raised",
                          raised_at.isoformat(), kind=kind)
            open_alerts.append(alert)
            if draw(st.booleans()):
                last_met[alert.id] = raised_at + draw(st.integers(0, 12)) * timedelta(minutes=5)
    threshold = draw(st.floats(0.05, 0.95))
    policy = Policy(threshold=threshold, clear_threshold=threshold * draw(st.floats(0.5, 1.0)),
                    news2_aggregate=draw(st.integers(1, 7)), news2_single_parameter=draw(st.integers(1, 3)),
                    clear_after=draw(st.integers(0, 6)) * timedelta(minutes=5))
    return scores, open_alerts, last_met, policy


def scan(scores, open_alerts, last_met, policy):
    """The rules as the engine applied them before the index: every score against every open alert."""
    steps, still_met = [], []
    for score in scores:
        active = {a.kind: a for a in open_alerts if a.patient_id == score.patient_id}
        for kind, v in verdicts(score, active, policy).items():
            alert = active.get(kind)
            if alert is None and v.met:
                steps.append(("raise", score.patient_id, kind))
            elif alert is not None and v.met:
                still_met.append((alert.id, score.window_end))
            elif alert is not None:
                since = last_met.get(alert.id, datetime.fromisoformat(alert.window_end))
                if score.window_end - since >= policy.clear_after:
                    steps.append(("resolve", alert.id))
    return steps, still_met


def shape(changes):
    return [("raise", s.patient_id, s.kind) if isinstance(s, Raise) else ("resolve", s.alert_id)
            for s in changes.steps], changes.still_met


@settings(max_examples=300, deadline=None)
@given(a_case())
def test_decide_equals_the_scan_over_every_open_alert(case):
    scores, open_alerts, last_met, policy = case
    assert shape(decide(scores, by_patient(open_alerts), last_met, policy)) == scan(scores, open_alerts, last_met,
                                                                                     policy)


@settings(max_examples=300, deadline=None)
@given(a_case())
def test_decide_keeps_one_open_alert_per_kind_and_the_news2_floor(case):
    scores, open_alerts, last_met, policy = case
    index = by_patient(open_alerts)
    changes = decide(scores, index, last_met, policy)
    raised = [(s.patient_id, s.kind) for s in changes.steps if isinstance(s, Raise)]
    resolved = {s.alert_id for s in changes.steps if isinstance(s, Resolve)}
    kept = {alert_id for alert_id, _ in changes.still_met}
    assert len(raised) == len(set(raised))
    assert not {(p, k) for p, k in raised} & {(a.patient_id, a.kind) for a in open_alerts}  # one open per kind
    assert not resolved & kept
    scored = {s.patient_id for s in scores}
    assert all(a.patient_id in scored for a in open_alerts if a.id in resolved | kept)  # silent patients: untouched
    for score in scores:
        s = score.news2
        if s is not None and (s.total >= policy.news2_aggregate
                              or any(p >= policy.news2_single_parameter for p in s.points.values())):
            open_news2 = index.get(score.patient_id, {}).get("news2")
            # NEWS2 at a trigger is never suppressed: raised, or its open alert kept
            assert (score.patient_id, "news2") in raised or (open_news2 is not None and open_news2.id in kept)


def test_twin_hysteresis_keeps_an_alert_open_between_the_thresholds():
    policy = Policy(threshold=0.7, clear_threshold=0.6)
    open_twin = Alert("a-twin", "a", T0.isoformat(), T0.isoformat(), 0.8, [], "raised", T0.isoformat(), kind="twin")
    between = Score("a", T0 + timedelta(minutes=5), 0.65, 0.0, 0.0, (), "test")
    assert shape(decide([between], {}, {}, policy)) == ([], [])
    assert shape(decide([between], by_patient([open_twin]), {}, policy)) == ([], [("a-twin", between.window_end)])
    below = Score("a", T0 + timedelta(minutes=10), 0.55, 0.0, 0.0, (), "test")
    (step,) = decide([below], by_patient([open_twin]), {}, policy).steps
    assert step == Resolve("a-twin", "risk fell to 0.55")


def test_a_raise_carries_the_news2_brief_of_its_score():
    summary = News2Summary.from_stored({"total": 7, "points": {"rr": 3, "hr": 2, "spo2": 2}})
    score = Score("a", T0, 0.01, 0.0, 0.0, (), "test", news2=summary)
    (step,) = decide([score], {}, {}, Policy(threshold=0.7, clear_threshold=0.6)).steps
    assert step.kind == "news2" and step.news2 == {"total": 7, "band": "high", "response": summary.response,
                                                   "monitoring": "continuous monitoring", "partial": False}
    assert step.reasons[0].startswith("NEWS2 7, high clinical risk: emergency assessment")
