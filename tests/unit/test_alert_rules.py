"""app.alerts.rules, pure (no SQLite, no clock): ``decide`` property-tested against the rules' own statement (the
scan of every score against every open alert, with the sustained rules' runs), ``decide_charted`` against the RCP
2017 escalation it implements."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.alerts.rules import (
    FOLDS,
    SUSTAINED,
    ChartedSet,
    Corroborate,
    Policy,
    Raise,
    Resolve,
    Streak,
    by_patient,
    charted_grade,
    decide,
    decide_charted,
    fold_header,
    folded_kinds,
    verdicts,
)
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
    open_alerts, last_met, streaks = [], {}, {}
    for p in PATIENTS:
        for kind in draw(st.lists(st.sampled_from(KINDS), unique=True)):
            raised_at = T0 - draw(st.integers(0, 12)) * timedelta(minutes=5)
            alert = Alert(f"{p}-{kind}", p, raised_at.isoformat(), raised_at.isoformat(), 0.5, [], "raised",
                          raised_at.isoformat(), kind=kind)
            open_alerts.append(alert)
            if draw(st.booleans()):
                last_met[alert.id] = raised_at + draw(st.integers(0, 12)) * timedelta(minutes=5)
        for kind in draw(st.lists(st.sampled_from(SUSTAINED), unique=True)):
            last = window_end - draw(st.integers(0, 3)) * timedelta(minutes=5)  # 0: a rerun; 1: the window before
            streaks[(p, kind)] = Streak(last - draw(st.integers(0, 12)) * timedelta(minutes=5), last)
    threshold = draw(st.floats(0.05, 0.95))
    policy = Policy(threshold=threshold, clear_threshold=threshold * draw(st.floats(0.5, 1.0)),
                    news2_aggregate=draw(st.integers(1, 7)), news2_single_parameter=draw(st.integers(1, 3)),
                    clear_after=draw(st.integers(0, 6)) * timedelta(minutes=5),
                    twin_sustain_windows=draw(st.integers(1, 4)),
                    obs_due_after=draw(st.integers(1, 13)) * timedelta(minutes=5),
                    obs_due_aggregate=draw(st.integers(1, 7)), obs_due_single_parameter=draw(st.integers(1, 3)))
    return scores, open_alerts, last_met, policy, streaks


def scan(scores, open_alerts, last_met, policy, streaks):
    """The rules as stated, without the index: every score against every open alert; a sustained rule's run extended
    by a window that follows it (kept by a rerun of its newest window), started afresh otherwise."""
    steps, still_met, runs = [], [], {}
    step = timedelta(minutes=5)
    for score in scores:
        active = {a.kind: a for a in open_alerts if a.patient_id == score.patient_id}
        for kind, v in verdicts(score, active, policy).items():
            long_enough = True
            if kind in SUSTAINED:
                prior = streaks.get((score.patient_id, kind))
                run = None
                if v.met:
                    if prior is not None and prior.last == score.window_end:
                        run = prior
                    elif prior is not None and score.window_end - prior.last == step:
                        run = Streak(prior.since, score.window_end)
                    else:
                        run = Streak(score.window_end, score.window_end)
                if run != prior:
                    runs[(score.patient_id, kind)] = run
                windows = 0 if run is None else (run.last - run.since) // step + 1
                long_enough = (windows >= policy.twin_sustain_windows if kind == "twin"
                               else windows * step >= policy.obs_due_after)
            alert = active.get(kind)
            if alert is None and v.met and long_enough and not (kind == "obs_due" and "news2" in active):
                steps.append(("raise", score.patient_id, kind))
            elif alert is not None and v.met:
                still_met.append((alert.id, score.window_end))
            elif alert is not None and not v.met:
                since = last_met.get(alert.id, datetime.fromisoformat(alert.window_end))
                if score.window_end - since >= policy.clear_after:
                    steps.append(("resolve", alert.id))
    return steps, still_met, runs


def shape(changes):
    return [("raise", s.patient_id, s.kind) if isinstance(s, Raise) else ("resolve", s.alert_id)
            for s in changes.steps], changes.still_met


@settings(max_examples=300, deadline=None)
@given(a_case())
def test_decide_equals_the_scan_over_every_open_alert(case):
    scores, open_alerts, last_met, policy, streaks = case
    changes = decide(scores, by_patient(open_alerts), last_met, policy, streaks)
    assert (*shape(changes), changes.streaks) == scan(scores, open_alerts, last_met, policy, streaks)


@settings(max_examples=300, deadline=None)
@given(a_case())
def test_decide_keeps_one_open_alert_per_kind_and_leaves_news2_to_charted_sets(case):
    scores, open_alerts, last_met, policy, streaks = case
    index = by_patient(open_alerts)
    changes = decide(scores, index, last_met, policy, streaks)
    raised = [(s.patient_id, s.kind) for s in changes.steps if isinstance(s, Raise)]
    resolved = {s.alert_id for s in changes.steps if isinstance(s, Resolve)}
    kept = {alert_id for alert_id, _ in changes.still_met}
    assert len(raised) == len(set(raised))
    assert not {(p, k) for p, k in raised} & {(a.patient_id, a.kind) for a in open_alerts}  # one open per kind
    assert not resolved & kept
    scored = {s.patient_id for s in scores}
    assert all(a.patient_id in scored for a in open_alerts if a.id in resolved | kept)  # silent patients: untouched
    # a monitor window never raises, keeps or resolves a news2 alert: NEWS2 escalation follows charted sets
    assert all(kind != "news2" for _, kind in raised)
    assert not {a.id for a in open_alerts if a.kind == "news2"} & (resolved | kept)
    for step in changes.steps:  # a sustained raise has held long enough
        if isinstance(step, Raise) and step.kind in SUSTAINED:
            run = changes.streaks.get((step.patient_id, step.kind)) or streaks[(step.patient_id, step.kind)]
            assert (run.windows >= policy.twin_sustain_windows if step.kind == "twin"
                    else run.span >= policy.obs_due_after)


def test_twin_hysteresis_keeps_an_alert_open_between_the_thresholds():
    policy = Policy(threshold=0.7, clear_threshold=0.6)
    open_twin = Alert("a-twin", "a", T0.isoformat(), T0.isoformat(), 0.8, [], "raised", T0.isoformat(), kind="twin")
    between = Score("a", T0 + timedelta(minutes=5), 0.65, 0.0, 0.0, (), "test")
    assert shape(decide([between], {}, {}, policy)) == ([], [])
    assert shape(decide([between], by_patient([open_twin]), {}, policy)) == ([], [("a-twin", between.window_end)])
    below = Score("a", T0 + timedelta(minutes=10), 0.55, 0.0, 0.0, (), "test")
    (step,) = decide([below], by_patient([open_twin]), {}, policy).steps
    assert step == Resolve("a-twin", "risk fell to 0.55")


def test_an_obs_due_raise_carries_the_monitor_news2_brief_of_its_score():
    summary = News2Summary.from_stored({"total": 7, "points": {"rr": 3, "hr": 2, "spo2": 2}})
    score = Score("a", T0, 0.01, 0.0, 0.0, (), "test", news2=summary)
    policy = Policy(threshold=0.7, clear_threshold=0.6, obs_due_after=timedelta(minutes=5), obs_due_aggregate=5,
                    obs_due_single_parameter=3)
    (step,) = decide([score], {}, {}, policy).steps
    shipped = Policy(threshold=0.7, clear_threshold=0.6, obs_due_after=timedelta(minutes=5))
    (default_step,) = decide([score], {}, {}, shipped).steps  # NEWS2 7 meets the shipped aggregate trigger too
    assert default_step.reasons[0] == ("Observations due now: monitor suggests NEWS2 \u2265 7 in every window for 5 "
                                       "minutes \u2014 please chart a full set")
    assert step.kind == "obs_due" and step.news2 == {"total": 7, "band": "high", "response": summary.response,
                                                     "monitoring": "continuous monitoring", "partial": False}
    assert step.reasons[0] == ("Observations due now: monitor suggests NEWS2 \u2265 5 or a single parameter scoring 3 "
                               "in every window for 5 minutes \u2014 please chart a full set")
    assert step.reasons[1].startswith("Monitor-window NEWS2 7, high clinical risk: emergency assessment")


def test_one_monitor_window_at_news2_7_raises_nothing_under_the_shipped_policy():
    summary = News2Summary.from_stored({"total": 7, "points": {"rr": 3, "hr": 2, "spo2": 2}})
    changes = decide([Score("a", T0, 0.01, 0.0, 0.0, (), "test", news2=summary)], {}, {},
                     Policy(threshold=0.7, clear_threshold=0.6))
    assert changes.steps == [] and changes.streaks == {("a", "obs_due"): Streak(T0, T0)}


# -- charted sets ----------------------------------------------------------------------------------------------------
@st.composite
def a_chart(draw):
    points = {k: draw(st.integers(0, POINTS_MAX[k])) for k in PARAMETERS}
    summary = News2Summary.from_stored({"total": sum(points.values()), "points": points,
                                        "partial": draw(st.booleans())})
    chart = ChartedSet("a", T0, summary, by=draw(st.sampled_from(["Nurse Ada", "e-obs gateway"])))
    open_kinds = {}
    for kind in draw(st.lists(st.sampled_from(KINDS), unique=True)):
        brief = {"grade": draw(st.integers(1, 3))} if kind == "news2" else None
        open_kinds[kind] = Alert(f"a-{kind}", "a", T0.isoformat(), T0.isoformat(), 0.5, [], "raised",
                                 T0.isoformat(), kind=kind, news2=brief)
    policy = Policy(threshold=0.5, clear_threshold=0.4, news2_aggregate=draw(st.integers(1, 7)),
                    news2_single_parameter=draw(st.integers(1, 3)))
    return chart, open_kinds, policy


@settings(max_examples=500, deadline=None)
@given(a_chart())
def test_a_charted_set_at_a_trigger_is_never_suppressed(case):
    """RCP escalation on a charted set, at once: at a trigger the patient leaves the request with an open news2 alert
    of at least the set's grade; below every trigger the open one resolves; an open obs_due always resolves."""
    chart, open_kinds, policy = case
    s = chart.news2
    changes = decide_charted(chart, open_kinds, policy)
    grade = charted_grade(s, policy)
    at_trigger = (s.total >= policy.news2_aggregate or s.total >= 7
                  or any(p >= policy.news2_single_parameter for p in s.points.values()))
    assert (grade > 0) == at_trigger
    assert grade == (3 if s.total >= 7 else 2 if s.total >= policy.news2_aggregate else 1 if at_trigger else 0)
    news2_open = open_kinds.get("news2")
    kinds = [(type(step).__name__, getattr(step, "kind", None) or getattr(step, "alert_id", None))
             for step in changes.steps]
    if at_trigger and news2_open is None:
        assert ("Raise", "news2") in kinds
    elif at_trigger:
        regraded = grade > news2_open.news2["grade"]
        assert (("Regrade", news2_open.id) in kinds) == regraded
        assert ("Resolve", news2_open.id) not in kinds
    elif news2_open is not None:
        assert ("Resolve", news2_open.id) in kinds
    if "obs_due" in open_kinds:
        assert ("Resolve", "a-obs_due") in kinds
    assert all(step.actor == chart.by for step in changes.steps)
    assert changes.streaks == {("a", "obs_due"): None}  # the count towards observations due starts again


def test_a_charted_raise_is_graded_and_carries_the_set():
    s = News2Summary.from_stored({"total": 7, "points": {"rr": 3, "spo2": 2, "hr": 2}, "partial": True})
    chart = ChartedSet("a", T0 + timedelta(minutes=2, seconds=7), s, by="Nurse Ada", missing=("temp",), risk=0.2)
    (step,) = decide_charted(chart, {}, Policy(threshold=0.5, clear_threshold=0.4)).steps
    assert isinstance(step, Raise) and step.kind == "news2" and step.actor == "Nurse Ada"
    assert step.alert_id == "a-20260302T120207Z-news2" and step.window_end == T0 + timedelta(minutes=5)
    assert step.news2["grade"] == 3 and step.news2["escalation"] == "emergency response"
    assert step.news2["missing"] == ["temp"] and step.news2["partial"] and step.risk == 0.2
    assert step.reasons[1].startswith("NEWS2 7 (partial set: unobserved parameters score 0), high clinical risk")


# -- one interruption per patient episode (Policy.fold) ---------------------------------------------------------------
def _open(kind: str, state: str = "raised", reasons: list[str] | None = None, patient: str = "a") -> Alert:
    return Alert(f"{patient}-{kind}", patient, T0.isoformat(), T0.isoformat(), 0.5, reasons or [], state,
                 T0.isoformat(), kind=kind, news2={"grade": 2} if kind == "news2" else None)


def _high(at: datetime = T0, *, risk: float = 0.9, criteria: bool = False) -> Score:
    flags = (f"{CRITERIA_MET}:hr_high",) if criteria else ()
    return Score("a", at, risk, 0.0, 0.0, (), "test", flags=flags)


FOLDING = Policy(threshold=0.7, clear_threshold=0.6, twin_sustain_windows=1, fold="less_urgent")


def test_a_twin_rule_holding_during_an_open_news2_alert_is_recorded_on_it_not_raised():
    news2 = _open("news2")
    changes = decide([_high()], by_patient([news2]), {}, FOLDING)
    (step,) = changes.steps
    assert isinstance(step, Corroborate) and step.alert_id == "a-news2" and step.kind == "twin"
    assert step.reasons[0] == fold_header("twin") and step.reasons[1].startswith("Twin risk 90%")
    # the same cycle with folding off (today's rules): a second alert
    (raised,) = decide([_high()], by_patient([news2]), {}, Policy(threshold=0.7, clear_threshold=0.6,
                                                                   twin_sustain_windows=1)).steps
    assert isinstance(raised, Raise) and raised.kind == "twin"


def test_a_fold_is_recorded_once_per_alert_and_kind():
    noted = _open("news2", reasons=["NEWS2 6", fold_header("twin"), "Twin risk 90%"])
    assert folded_kinds(noted) == ["twin"]
    assert decide([_high(T0 + timedelta(minutes=5))], by_patient([noted]), {}, FOLDING).steps == []


def test_acknowledging_an_alert_does_not_raise_a_rule_it_already_records():
    noted = _open("news2", state="acknowledged", reasons=["NEWS2 6", fold_header("twin"), "Twin risk 90%"])
    assert decide([_high(T0 + timedelta(minutes=5))], by_patient([noted]), {}, FOLDING).steps == []


def test_a_more_urgent_rule_still_raises_and_an_acknowledged_alert_takes_no_fold():
    (criteria,) = decide([_high(criteria=True)], by_patient([_open("twin")]), {}, FOLDING).steps
    assert isinstance(criteria, Raise) and criteria.kind == "criteria"  # criteria > twin in KINDS: it interrupts
    (twin,) = decide([_high()], by_patient([_open("news2", state="acknowledged")]), {}, FOLDING).steps
    assert isinstance(twin, Raise) and twin.kind == "twin"  # someone responded; new information interrupts again
    (folded,) = decide([_high(criteria=True)], by_patient([_open("twin")]), {},
                       Policy(threshold=0.7, clear_threshold=0.6, fold="any")).steps
    assert isinstance(folded, Corroborate) and folded.alert_id == "a-twin"  # "any": whatever the urgency


def test_rules_holding_in_one_cycle_raise_one_alert_carrying_the_others():
    (step,) = decide([_high(criteria=True)], {}, {}, FOLDING).steps
    assert isinstance(step, Raise) and step.kind == "criteria" and folded_kinds(step) == ["twin"]
    assert step.reasons[0].startswith("Meets the deterioration criterion now")


def test_a_rule_still_holding_when_the_alert_it_was_folded_into_resolves_raises_its_own():
    criteria = _open("criteria")  # its rule no longer holds this cycle: it resolves, so the twin raises
    changes = decide([_high()], by_patient([criteria]), {}, FOLDING)
    assert [(type(s).__name__, getattr(s, "kind", None)) for s in changes.steps] == [("Resolve", None),
                                                                                     ("Raise", "twin")]


def test_an_alert_stays_open_while_a_rule_it_records_still_holds():
    """The twin recorded on an open criteria alert keeps it open (at the twin's clear threshold, as its own alert
    would stay open); once neither holds, the alert resolves."""
    criteria = _open("criteria", reasons=["Meets the deterioration criterion now", fold_header("twin"), "Twin 90%"])
    later = T0 + timedelta(minutes=5)
    changes = decide([_high(later, risk=0.65)], by_patient([criteria]), {}, FOLDING)  # 0.6 <= risk < 0.7
    assert changes.steps == [] and changes.still_met == [("a-criteria", later)]
    off = decide([_high(later, risk=0.65)], by_patient([criteria]), {}, dataclasses.replace(FOLDING, fold="off"))
    assert [type(s).__name__ for s in off.steps] == ["Resolve"]  # folding off: the alert follows its own rule only
    (step,) = decide([_high(later, risk=0.5)], by_patient([criteria]), {}, FOLDING).steps
    assert step == Resolve("a-criteria", "no deterioration criterion is met")


@settings(max_examples=300, deadline=None)
@given(a_case(), st.sampled_from(FOLDS))
def test_folding_changes_how_a_rule_is_heard_never_whether_it_holds(case, fold):
    """Under any fold the rules that fire are those that raise with folding off (each raised, or recorded on an open
    or newly raised alert); resolutions, rules still held and runs are the same; charted news2 is never raised here;
    a raise never lands beside an open unacknowledged alert it should have been folded into."""
    scores, open_alerts, last_met, policy, streaks = case
    index = by_patient(open_alerts)
    off = decide(scores, index, last_met, policy, streaks)
    on = decide(scores, index, last_met, dataclasses.replace(policy, fold=fold), streaks)
    ids = {a.id: a for a in open_alerts}
    fired = {(s.patient_id, s.kind) for s in on.steps if isinstance(s, Raise)}
    fired |= {(s.patient_id, k) for s in on.steps if isinstance(s, Raise) for k in folded_kinds(s)}
    fired |= {(ids[s.alert_id].patient_id, s.kind) for s in on.steps if isinstance(s, Corroborate)}
    assert fired == {(s.patient_id, s.kind) for s in off.steps if isinstance(s, Raise)}
    assert [s for s in on.steps if isinstance(s, Resolve)] == [s for s in off.steps if isinstance(s, Resolve)]
    assert (on.still_met, on.streaks) == (off.still_met, off.streaks)
    resolved = {s.alert_id for s in on.steps if isinstance(s, Resolve)}
    rank = {k: i for i, k in enumerate(KINDS)}
    for s in on.steps:
        if isinstance(s, Corroborate):
            host = ids[s.alert_id]
            assert host.state == "raised" and host.id not in resolved
            assert fold == "any" or rank[host.kind] < rank[s.kind]
        if isinstance(s, Raise) and fold != "off":
            assert s.kind != "news2"
            hosts = [a for a in index.get(s.patient_id, {}).values() if a.id not in resolved
                     and a.kind != s.kind and (fold == "any" or rank[a.kind] < rank[s.kind])]
            assert not hosts  # every open alert in the study's cases is unacknowledged ("raised")
    raised = [s.patient_id for s in on.steps if isinstance(s, Raise)]
    if fold == "any":  # at most one new interruption per patient and cycle
        assert len(raised) == len(set(raised))


def test_the_fold_must_be_a_known_one():
    with pytest.raises(ValueError, match="fold must be one of"):
        Policy(threshold=0.7, clear_threshold=0.6, fold="sometimes")  # type: ignore[arg-type]
