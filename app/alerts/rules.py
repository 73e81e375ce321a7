"""The alert rules, pure: ``decide(scores, open_alerts, last_met, policy) -> Changes`` (no store, no clock).

Three kinds of alert, each with its own rule, at most one open per patient and kind:

- ``news2``: the NEWS2 floor, the RCP 2017 chart whatever the twin says: an aggregate at or above
  ``news2_aggregate`` (default 5) or any single parameter scoring at least ``news2_single_parameter``
  (default 3); the reasons give the score, its band and the chart's clinical response and monitoring
  frequency. Resolves when the score is below both triggers.
- ``criteria``: a deterioration criterion is met now (flag ``criteria_met:<kind>`` from the cycle);
  resolves when none is met.
- ``twin``: the twin's risk is at or above ``threshold``; resolves when the risk falls below
  ``clear_threshold`` (hysteresis, so a risk hovering at the threshold does not alert every five minutes).

An open alert resolves only once its rule has not held for ``clear_after``, measured in window time from the last
window end at which it held (``last_met``; absent: the window end that raised it), so a score flickering across a
trigger keeps one alert open. Open alerts are indexed by patient (:func:`by_patient`): deciding costs one look-up
per score, not a scan of every open alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.alerts.criteria import criteria_reasons
from app.alerts.store import Alert
from models.scoring import Score

#: NEWS2 parameters in words, for the reasons of a ``news2`` alert.
_PARAMETER_NAMES = {"rr": "respiration rate", "spo2": "SpO2", "o2": "supplemental oxygen", "sbp": "systolic BP",
                    "hr": "pulse", "acvpu": "consciousness (new confusion, V, P or U)", "temp": "temperature"}

#: patient → kind → that patient's open alert of the kind.
OpenAlerts = Mapping[str, Mapping[str, Alert]]


@dataclass(frozen=True)
class Policy:
    """The thresholds the rules apply (from ``Settings`` and the twin's artifact)."""

    threshold: float
    clear_threshold: float
    news2_aggregate: int = 5
    news2_single_parameter: int = 3
    clear_after: timedelta = timedelta(0)


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


@dataclass(frozen=True)
class Resolve:
    alert_id: str
    reason: str


@dataclass(frozen=True)
class Changes:
    """What a cycle's scores do to alert state: raises and resolutions in the order to apply them, and per open
    alert whose rule still holds, the window end at which it held."""

    steps: list[Raise | Resolve] = field(default_factory=list)
    still_met: list[tuple[str, datetime]] = field(default_factory=list)


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


def news2_reasons(score: Score, policy: Policy) -> list[str]:
    """Why NEWS2 alerts on this score (empty when neither trigger is met): the score, its band and the RCP 2017
    clinical response and monitoring frequency, then each parameter at the single-parameter trigger."""
    s = score.news2
    if s is None:
        return []
    high = [k for k, p in s.points.items() if p >= policy.news2_single_parameter]
    if s.total < policy.news2_aggregate and not high:
        return []
    partial = " (partial set: unobserved parameters score 0)" if s.partial else ""
    reasons = [f"NEWS2 {s.total}{partial}, {s.band} clinical risk: {s.response}; monitoring: {s.monitoring}"]
    reasons += [f"NEWS2 {_PARAMETER_NAMES.get(k, k)} scores {s.points[k]}" for k in high]
    return reasons


def _twin_reasons(score: Score, policy: Policy) -> list[str]:
    rising = [c.sentence for c in score.contributions if c.sentence and c.points > 0][:3]
    return [f"Twin risk {score.risk:.0%} (alert threshold {policy.threshold:.3g})", *rising]


def verdicts(score: Score, open_kinds: Mapping[str, Any], policy: Policy) -> dict[str, Verdict]:
    """Per kind, in the order they are applied, the rule on ``score`` given the patient's open alerts by kind
    (only the twin's rule depends on them: hysteresis)."""
    criteria = criteria_reasons(score)
    news2_why = news2_reasons(score, policy)
    total = score.news2.total if score.news2 is not None else 0
    twin_on = score.risk >= (policy.clear_threshold if "twin" in open_kinds else policy.threshold)
    return {
        "news2": Verdict(bool(news2_why), news2_why, f"NEWS2 fell to {total}, below both triggers"),
        "criteria": Verdict(bool(criteria), criteria, "no deterioration criterion is met"),
        "twin": Verdict(twin_on, _twin_reasons(score, policy), f"risk fell to {score.risk:.2f}"),
    }


def decide(scores: Sequence[Score], open_alerts: OpenAlerts, last_met: Mapping[str, datetime],
           policy: Policy) -> Changes:
    """The changes one cycle's scores make: raise where a rule holds and no alert of its kind is open, resolve an
    open alert whose rule has not held for ``policy.clear_after``, and record the rules still holding."""
    changes = Changes()
    for score in scores:
        active = open_alerts.get(score.patient_id, {})
        for kind, verdict in verdicts(score, active, policy).items():
            alert = active.get(kind)
            if alert is None:
                if verdict.met:
                    changes.steps.append(Raise(score.patient_id, score.window_end, score.risk, verdict.reasons,
                                               kind, news2_brief(score)))
            elif verdict.met:
                changes.still_met.append((alert.id, score.window_end))
            else:
                since = last_met.get(alert.id, datetime.fromisoformat(alert.window_end))
                if score.window_end - since >= policy.clear_after:  # clear for long enough, not a flicker
                    changes.steps.append(Resolve(alert.id, verdict.cleared))
    return changes
