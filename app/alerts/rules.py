"""The alert rules, pure (no store, no clock): ``decide`` for a cycle's scores, ``decide_charted`` for one charted
observation set.

Four kinds of alert, each with its own rule, at most one open per patient and kind:

- ``news2``: escalation as the RCP 2017 defines it, on **charted** observation sets only (``decide_charted``, applied
  within the request that charts the set): an aggregate at or above ``news2_aggregate`` (default 5), 7 or more, or
  any single parameter scoring at least ``news2_single_parameter`` (default 3) raises it, graded by the chart-4
  response (:data:`GRADES`: urgent ward-based response, key threshold (urgent response), emergency response). A later
  set of a higher grade escalates the open alert (new reasons, re-notified); one of the same or a lower grade still at
  a trigger keeps it open at its grade; one below every trigger resolves it. The NEWS2 of one monitor window never
  raises or resolves a ``news2`` alert.
- ``obs_due``: "observations due now": the monitor-window NEWS2 (``Score.news2``) has met the trigger
  (``obs_due_aggregate`` or a single parameter at ``obs_due_single_parameter``) in **every** window of the last
  ``obs_due_after`` (statistic ``obs_due_statistic = "every_window"``; default 60 min, i.e. 12 consecutive windows)
  and no charted ``news2`` alert is open; it asks for a charted set rather than standing in for one. Resolves when a
  charted set arrives (which also restarts the count) or, like every kind, once the rule has stopped holding.
- ``criteria``: a deterioration criterion is met now (flag ``criteria_met:<kind>`` from the cycle);
  resolves when none is met.
- ``twin``: sustained risk: the twin's risk at or above ``threshold`` in ``twin_sustain_windows`` consecutive
  windows (default 3) raises it; it stays open while the risk is at or above ``clear_threshold`` (hysteresis).

One interruption per patient episode (``Policy.fold``, shipped ``"less_urgent"``): when a cycle's rule of kind K
holds long enough to raise and the patient already has an open, **unacknowledged** alert of a more urgent kind
(``KINDS`` order: news2, criteria, obs_due, twin), K raises no second alert: its reasons are recorded on that alert
(:class:`Corroborate`, once per alert and kind; the board shows them, a ``corroborated`` transition row, no
notification). A rule of a *more* urgent kind than every open alert still raises (it raises the patient's urgency);
an acknowledged alert takes no new fold (new information after someone responded interrupts again), but keeps the
rules it already records (they were shown with it). An alert stays open while a rule it records still holds as it
would keep its own alert open (the episode lasts as long as any of its rules), so folding does not shorten the time
under alert; the exception: a charted set below every trigger resolves a ``news2`` alert whatever it records, and a
rule still holding then raises its own alert only by its own raise rule. ``news2`` is never folded: charted
escalation is raised at once, always. ``"any"`` folds into any open unacknowledged alert; ``"off"``: every kind
raises on its own.

Sustained rules count consecutive windows with a :class:`Streak` per (patient, kind), kept by the caller (the engine
stores them with the alerts; ``Changes.streaks`` says what changed). An open alert resolves only once its rule has not
held for ``clear_after``, measured in window time from the last window end at which it held (``last_met``; absent:
the window end that raised it), so a score flickering across a trigger keeps one alert open. Open alerts are indexed
by patient (:func:`by_patient`): deciding costs one look-up per score, not a scan of every open alert.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from app.alerts.criteria import criteria_reasons
from app.alerts.store import KINDS, UNACKNOWLEDGED, Alert
from models.news2 import News2Summary
from models.schema import WINDOW_MINUTES
from models.scoring import Score

#: NEWS2 parameters in words, for the reasons of a ``news2`` alert.
_PARAMETER_NAMES = {"rr": "respiration rate", "spo2": "SpO2", "o2": "supplemental oxygen", "sbp": "systolic BP",
                    "hr": "pulse", "acvpu": "consciousness (new confusion, V, P or U)", "temp": "temperature"}
_WINDOW: Final = timedelta(minutes=WINDOW_MINUTES)

#: Grades of a charted ``news2`` alert (RCP 2017 chart 4), lowest first; 0 is no trigger.
GRADES: Final[dict[int, str]] = {
    1: "urgent ward-based response",  # a 3 in a single parameter
    2: "key threshold for urgent response",  # aggregate 5–6 (at or above news2_aggregate)
    3: "emergency response",  # aggregate 7 or more
}
#: The aggregate at which the RCP asks for an emergency response (chart 4, fixed by the chart).
EMERGENCY_AGGREGATE: Final[int] = 7
#: Kinds whose raise needs the rule to hold over consecutive windows (a :class:`Streak`).
SUSTAINED: Final[tuple[str, ...]] = ("obs_due", "twin")

#: ``Policy.fold``: record a newly-holding rule on an open alert instead of raising a second one (module docstring).
FOLDS: Final[tuple[str, ...]] = ("off", "less_urgent", "any")

#: patient → kind → that patient's open alert of the kind.
OpenAlerts = Mapping[str, Mapping[str, Alert]]


@dataclass(frozen=True)
class Policy:
    """The thresholds the rules apply (from ``Settings`` and the twin's artifact)."""

    threshold: float
    clear_threshold: float
    #: Charted-set triggers (RCP 2017): the aggregate, and the points of a single parameter.
    news2_aggregate: int = 5
    news2_single_parameter: int = 3
    clear_after: timedelta = timedelta(0)
    #: The twin raises after this many consecutive windows at or above ``threshold``.
    twin_sustain_windows: int = 3
    #: Monitor-derived "observations due": the statistic (every window of ``obs_due_after`` meets the trigger),
    #: the duration, and the monitor-window NEWS2 trigger.
    obs_due_statistic: Literal["every_window"] = "every_window"
    obs_due_after: timedelta = timedelta(minutes=60)
    obs_due_aggregate: int = 7
    #: 4 turns the single-parameter trigger off (a NEWS2 parameter scores at most 3).
    obs_due_single_parameter: int = 4
    #: One interruption per patient episode (:data:`FOLDS`); ``"off"`` here, the service ships ``"less_urgent"``
    #: (``Settings.alert_fold``).
    fold: Literal["off", "less_urgent", "any"] = "off"

    def __post_init__(self) -> None:
        if self.twin_sustain_windows < 1:
            raise ValueError("twin_sustain_windows must be at least 1")
        if self.obs_due_after < _WINDOW:
            raise ValueError(f"obs_due_after must be at least one window ({WINDOW_MINUTES} min)")
        if self.obs_due_statistic != "every_window":
            raise ValueError(f"unknown obs_due_statistic {self.obs_due_statistic!r}")
        if self.fold not in FOLDS:
            raise ValueError(f"fold must be one of {', '.join(FOLDS)}, got {self.fold!r}")


@dataclass(frozen=True)
class Streak:
    """A run of consecutive windows in which a sustained rule held: the first and newest window ends."""

    since: datetime
    last: datetime

    @property
    def windows(self) -> int:
        return (self.last - self.since) // _WINDOW + 1

    @property
    def span(self) -> timedelta:
        """The time the run covers (one window: five minutes)."""
        return self.last - self.since + _WINDOW

    def extended(self, window_end: datetime) -> Streak | None:
        """This run carried to ``window_end``: the same run for its newest window (a rerun), longer by one for the
        next; None when ``window_end`` does not follow it (a gap, or an older window)."""
        if window_end == self.last:
            return self
        if window_end - self.last == _WINDOW:
            return Streak(self.since, window_end)
        return None


#: (patient, kind) → the run of windows its sustained rule has held.
Streaks = Mapping[tuple[str, str], Streak]


@dataclass(frozen=True)
class Verdict:
    """One kind's rule on one score: does it hold (raise, or keep open), why, and why it would resolve."""

    met: bool
    reasons: list[str]
    cleared: str


@dataclass(frozen=True)
class Raise:
    patient_id: str
    window_end: datetime
    risk: float
    reasons: list[str]
    kind: str
    news2: dict[str, Any] | None
    #: Who raised it (the transition's actor): the engine for a cycle, the nurse for a charted set.
    actor: str = "engine"
    #: The alert's id when the rule names it (a charted set: its time to the second); None: the store's default.
    alert_id: str | None = None


@dataclass(frozen=True)
class Resolve:
    alert_id: str
    reason: str
    actor: str = "engine"


@dataclass(frozen=True)
class Regrade:
    """A charted set of a higher grade than the open ``news2`` alert's: escalate it with the new set's NEWS2."""

    alert_id: str
    reasons: list[str]
    news2: dict[str, Any]
    actor: str


@dataclass(frozen=True)
class Corroborate:
    """A rule of ``kind`` holds while the patient has an open, unacknowledged alert of a more urgent kind: its
    ``reasons`` (headed by :func:`fold_header`) are added to that alert instead of raising a second one."""

    alert_id: str
    kind: str
    reasons: list[str]
    window_end: datetime
    actor: str = "engine"


@dataclass(frozen=True)
class Changes:
    """What a cycle's scores (or a charted set) do to alert state: raises, escalations and resolutions in the order
    to apply them; per open alert whose rule still holds, the window end at which it held; and the sustained-rule
    runs that changed (None: the run ended)."""

    steps: list[Raise | Resolve | Regrade | Corroborate] = field(default_factory=list)
    still_met: list[tuple[str, datetime]] = field(default_factory=list)
    streaks: dict[tuple[str, str], Streak | None] = field(default_factory=dict)


def by_patient(alerts: Iterable[Alert]) -> dict[str, dict[str, Alert]]:
    """Open alerts indexed by patient, then kind."""
    out: dict[str, dict[str, Alert]] = {}
    for alert in alerts:
        out.setdefault(alert.patient_id, {})[alert.kind] = alert
    return out


def news2_brief(score: Score) -> dict[str, Any] | None:
    """The NEWS2 of the score that raised an alert, as a nurse-call system needs it: total, band, the RCP 2017
    clinical response and monitoring frequency."""
    s = score.news2
    if s is None:
        return None
    return {"total": s.total, "band": s.band, "response": s.response, "monitoring": s.monitoring,
            "partial": s.partial}


def _at_trigger(s: News2Summary, aggregate: int, single_parameter: int) -> tuple[bool, list[str]]:
    high = [k for k, p in s.points.items() if p >= single_parameter]
    return s.total >= aggregate or bool(high), high


def summary_reasons(s: News2Summary, aggregate: int, single_parameter: int, what: str = "NEWS2") -> list[str]:
    """Why a NEWS2 result is at a trigger (empty when it is not): the score, its band and the RCP 2017 clinical
    response and monitoring frequency, then each parameter at the single-parameter trigger."""
    met, high = _at_trigger(s, aggregate, single_parameter)
    if not met:
        return []
    partial = " (partial set: unobserved parameters score 0)" if s.partial else ""
    reasons = [f"{what} {s.total}{partial}, {s.band} clinical risk: {s.response}; monitoring: {s.monitoring}"]
    reasons += [f"{what} {_PARAMETER_NAMES.get(k, k)} scores {s.points[k]}" for k in high]
    return reasons


def news2_reasons(score: Score, policy: Policy) -> list[str]:
    """Why the monitor-window NEWS2 of ``score`` meets the ``obs_due`` trigger (empty when it does not)."""
    if score.news2 is None:
        return []
    return summary_reasons(score.news2, policy.obs_due_aggregate, policy.obs_due_single_parameter,
                           "Monitor-window NEWS2")


def _twin_reasons(score: Score, policy: Policy) -> list[str]:
    rising = [c.sentence for c in score.contributions if c.sentence and c.points > 0][:3]
    sustained = (f", sustained over {policy.twin_sustain_windows} windows" if policy.twin_sustain_windows > 1
                 else "")
    return [f"Twin risk {score.risk:.0%} (alert threshold {policy.threshold:.3g}{sustained})", *rising]


def _obs_due_reasons(score: Score, policy: Policy) -> list[str]:
    monitor = news2_reasons(score, policy)
    if not monitor:
        return []
    minutes = int(policy.obs_due_after.total_seconds() // 60)
    single = (f" or a single parameter scoring {policy.obs_due_single_parameter}"
              if policy.obs_due_single_parameter <= 3 else "")  # 4: the single-parameter trigger is off
    ask = (f"Observations due now: monitor suggests NEWS2 \u2265 {policy.obs_due_aggregate}{single} in every window "
           f"for {minutes} minutes \u2014 please chart a full set")
    return [ask, *monitor]


def verdicts(score: Score, open_kinds: Mapping[str, Any], policy: Policy) -> dict[str, Verdict]:
    """Per kind the cycle decides, in the order they are applied, the rule on ``score`` in this one window given the
    patient's open alerts by kind (the twin's hysteresis depends on them). For the sustained kinds (``SUSTAINED``)
    ``met`` is this window's condition; ``decide`` raises only once it has held long enough."""
    criteria = criteria_reasons(score)
    obs_due = _obs_due_reasons(score, policy)
    total = score.news2.total if score.news2 is not None else 0
    twin_on = score.risk >= (policy.clear_threshold if "twin" in open_kinds else policy.threshold)
    return {
        "criteria": Verdict(bool(criteria), criteria, "no deterioration criterion is met"),
        "obs_due": Verdict(bool(obs_due), obs_due, f"monitor-window NEWS2 fell to {total}, below the trigger"),
        "twin": Verdict(twin_on, _twin_reasons(score, policy), f"risk fell to {score.risk:.2f}"),
    }


def fold_header(kind: str) -> str:
    """The reason line that heads a folded rule's reasons on the alert it was recorded on (and marks it recorded)."""
    return f"Also holding, recorded here instead of a second alert: the {kind} rule"


def folded_kinds(alert: Alert | Raise) -> list[str]:
    """The kinds whose rules were recorded on this alert (:class:`Corroborate`), in the order recorded."""
    return [k for k in KINDS if fold_header(k) in alert.reasons]


def folded_reasons(alert: Alert) -> list[str]:
    """The reasons recorded on ``alert`` by :class:`Corroborate` steps: its tail from the first fold header (they are
    appended after the alert's own reasons), kept when a charted set of a higher grade replaces its own."""
    starts = [i for i, line in enumerate(alert.reasons) if any(line == fold_header(k) for k in KINDS)]
    return list(alert.reasons[starts[0]:]) if starts else []


def _rank(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def _fold_host(kind: str, active: Mapping[str, Alert], resolved: set[str], policy: Policy) -> Alert | None:
    """The open alert a holding rule of ``kind`` is recorded on under ``policy.fold``, or None: raise. An open alert
    that already records it keeps it (acknowledging that alert does not raise the rule it showed); otherwise the most
    urgent open, unacknowledged alert (``"less_urgent"``: only of a more urgent kind than ``kind``)."""
    if policy.fold == "off" or kind == "news2":
        return None
    live = [a for k, a in active.items() if k != kind and a.id not in resolved]
    noted = next((a for a in live if fold_header(kind) in a.reasons), None)
    if noted is not None:
        return noted
    hosts = [a for a in live if a.state in UNACKNOWLEDGED and (policy.fold == "any" or _rank(a.kind) < _rank(kind))]
    return min(hosts, key=lambda a: (_rank(a.kind), a.raised_at), default=None)


def sustained(kind: str, streak: Streak | None, policy: Policy) -> bool:
    """Has the rule of ``kind`` held long enough to raise (kinds outside ``SUSTAINED``: at once)?"""
    if kind not in SUSTAINED:
        return True
    if streak is None:
        return False
    if kind == "twin":
        return streak.windows >= policy.twin_sustain_windows
    return streak.span >= policy.obs_due_after


def decide(scores: Sequence[Score], open_alerts: OpenAlerts, last_met: Mapping[str, datetime],
           policy: Policy, streaks: Streaks | None = None) -> Changes:
    """The changes one cycle's scores make: raise where a rule holds (sustained rules: long enough, per
    ``streaks``) and no alert of its kind is open, unless ``policy.fold`` records it on an open alert (or on one
    raised by this cycle) instead; resolve an open alert whose rule has not held for ``policy.clear_after``; record
    the rules still holding and the runs that changed. Never raises, resolves or keeps a ``news2`` alert: those
    follow charted sets (:func:`decide_charted`)."""
    streaks = streaks or {}
    changes = Changes()
    for score in scores:
        active = open_alerts.get(score.patient_id, {})
        resolved: set[str] = set()
        raised: list[int] = []  # this patient's raises in this cycle, as indices into changes.steps
        for kind, verdict in verdicts(score, active, policy).items():
            alert = active.get(kind)
            run: Streak | None = None
            if kind in SUSTAINED:
                key = (score.patient_id, kind)
                prior = streaks.get(key)
                if verdict.met:
                    run = (prior.extended(score.window_end) if prior is not None else None) \
                        or Streak(score.window_end, score.window_end)
                if run != prior:
                    changes.streaks[key] = run
            if alert is None:
                if verdict.met and sustained(kind, run, policy) and not (kind == "obs_due" and "news2" in active):
                    _raise_or_fold(changes, raised, score, kind, verdict.reasons, active, resolved, policy)
            elif verdict.met or _records_holding(alert, score, active, policy):
                changes.still_met.append((alert.id, score.window_end))
            else:
                since = last_met.get(alert.id, datetime.fromisoformat(alert.window_end))
                if score.window_end - since >= policy.clear_after:  # clear for long enough, not a flicker
                    changes.steps.append(Resolve(alert.id, verdict.cleared))
                    resolved.add(alert.id)
    return changes


def _records_holding(alert: Alert, score: Score, active: Mapping[str, Alert], policy: Policy) -> bool:
    """Does a rule recorded on ``alert`` (folded into it) still hold in this window, as it would keep its own alert
    open (the twin: at or above ``clear_threshold``)? Then the episode goes on and ``alert`` stays open: a folded rule
    keeps the coverage its own alert would have had."""
    kinds = folded_kinds(alert) if policy.fold != "off" else []
    if not kinds:
        return False
    held = verdicts(score, {**active, **dict.fromkeys(kinds, alert)}, policy)
    return any(held[k].met for k in kinds if k in held)


def _raise_or_fold(changes: Changes, raised: list[int], score: Score, kind: str, reasons: list[str],
                   active: Mapping[str, Alert], resolved: set[str], policy: Policy) -> None:
    """Raise ``kind`` for ``score``'s patient, or (``policy.fold``) record it on the patient's open alert or on a
    raise of this cycle (``verdicts`` come most urgent first, so a raise of this cycle is the more urgent)."""
    host = _fold_host(kind, active, resolved, policy)
    if host is not None:
        if fold_header(kind) not in host.reasons:  # once per alert and kind
            changes.steps.append(Corroborate(host.id, kind, [fold_header(kind), *reasons], score.window_end))
        return
    if policy.fold != "off" and raised:
        i = raised[0]
        first = changes.steps[i]
        assert isinstance(first, Raise)
        if policy.fold == "any" or _rank(first.kind) < _rank(kind):
            changes.steps[i] = dataclasses.replace(first, reasons=[*first.reasons, fold_header(kind), *reasons])
            return
    raised.append(len(changes.steps))
    changes.steps.append(Raise(score.patient_id, score.window_end, score.risk, reasons, kind, news2_brief(score)))


# -- charted observation sets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartedSet:
    """One nurse-charted observation set as the rules see it: its NEWS2, when and by whom, what was not observed,
    and the patient's latest twin risk (the alert's ``risk``; 0.0 when the patient has no score yet)."""

    patient_id: str
    observed_at: datetime
    news2: News2Summary
    by: str
    missing: tuple[str, ...] = ()
    risk: float = 0.0


def charted_grade(s: News2Summary, policy: Policy) -> int:
    """The RCP 2017 grade of a charted set (:data:`GRADES`; 0: no trigger)."""
    if s.total >= EMERGENCY_AGGREGATE:
        return 3
    if s.total >= policy.news2_aggregate:
        return 2
    if any(p >= policy.news2_single_parameter for p in s.points.values()):
        return 1
    return 0


def alert_grade(alert: Alert) -> int:
    """The grade an open ``news2`` alert was raised or escalated at (its stored brief; from the band for an alert
    raised before grades were stored)."""
    brief = alert.news2 or {}
    if isinstance(brief.get("grade"), int):
        return int(brief["grade"])
    return {"high": 3, "medium": 2, "low-medium": 1}.get(str(brief.get("band")), 0)


def charted_brief(chart: ChartedSet, grade: int) -> dict[str, Any]:
    """What a charted ``news2`` alert carries: the set's NEWS2 (total, points, band, chart-4 response and
    monitoring), its grade, partial/missing, when and by whom it was charted."""
    s = chart.news2
    return {"source": "charted", "total": s.total, "band": s.band, "points": dict(s.points), "partial": s.partial,
            "missing": list(chart.missing), "grade": grade, "escalation": GRADES.get(grade), "urgency": s.urgency,
            "response": s.response, "monitoring": s.monitoring, "observe_within_min": s.observe_within_min,
            "observed_at": chart.observed_at.astimezone(UTC).isoformat(), "by": chart.by}


def charted_alert_id(chart: ChartedSet) -> str:
    return f"{chart.patient_id}-{chart.observed_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-news2"


def decide_charted(chart: ChartedSet, open_kinds: Mapping[str, Alert], policy: Policy) -> Changes:
    """What one charted set does to the patient's alerts (``open_kinds``: their open alerts by kind), at once:

    - at a trigger (:func:`charted_grade` > 0): raise a ``news2`` alert, or escalate the open one if this set's grade
      is higher (:class:`Regrade`), or keep the open one (same or lower grade still at a trigger);
    - below every trigger: resolve the open ``news2`` alert;
    - any set: resolve an open ``obs_due`` (the observations it asked for are charted) and restart its count.

    Every step's actor is the nurse who charted (``chart.by``)."""
    changes = Changes()
    grade = charted_grade(chart.news2, policy)
    open_news2 = open_kinds.get("news2")
    if grade:
        reasons = [f"Charted by {chart.by}: {GRADES[grade]}",
                   *summary_reasons(chart.news2, min(policy.news2_aggregate, EMERGENCY_AGGREGATE),
                                    policy.news2_single_parameter, "NEWS2")]
        brief = charted_brief(chart, grade)
        if open_news2 is None:
            window_end = _window_end_of(chart.observed_at)
            changes.steps.append(Raise(chart.patient_id, window_end, chart.risk, reasons, "news2", brief,
                                       actor=chart.by, alert_id=charted_alert_id(chart)))
        elif grade > alert_grade(open_news2):
            changes.steps.append(Regrade(open_news2.id, [*reasons, *folded_reasons(open_news2)], brief, chart.by))
    elif open_news2 is not None:
        changes.steps.append(Resolve(open_news2.id, f"charted NEWS2 {chart.news2.total} by {chart.by}, below every "
                                                    "trigger", actor=chart.by))
    open_due = open_kinds.get("obs_due")
    if open_due is not None:
        changes.steps.append(Resolve(open_due.id, f"observations charted by {chart.by}", actor=chart.by))
    changes.streaks[(chart.patient_id, "obs_due")] = None
    return changes


def _window_end_of(ts: datetime) -> datetime:
    """The end of the 5-minute window holding ``ts``."""
    utc = ts.astimezone(UTC)
    floor = utc.replace(minute=utc.minute - utc.minute % WINDOW_MINUTES, second=0, microsecond=0)
    return floor + _WINDOW


def finite_risk(risk: float | None) -> float:
    """A risk an alert row can hold (0.0 for none or NaN)."""
    return 0.0 if risk is None or not math.isfinite(risk) else float(risk)
