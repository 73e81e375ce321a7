"""The service's alert rules (:func:`app.alerts.rules.decide` for the cycle's scores and
:func:`app.alerts.rules.decide_charted` for a charted set, both pure) replayed over what the service stored, under
other policies: the post-hoc half of the Pareto table (:mod:`lab.alert_pareto`).

One replay per policy, per patient in time order, with the state the engine keeps in its store kept here in
memory: the patient's open alert per kind, per open alert the last window end at which its rule held
(``last_met``), and the sustained rules' runs (``Streak``). Inputs: the scores the service stored, and the charted
sets as the service answered them, each with the clock time it was posted. A cycle's changes are stamped with its
window end plus the cycle grace (the engine stamps them with the clock of the cycle); a charted set's with the time
it was posted, before the cycle at that time (the evaluation posts a cycle's sets before triggering it). Patients'
rules are independent, so a patient at a time gives what the cycle-at-a-time engine gives; the replay of the
shipped policy reproducing the service's own alerts is tested (``tests/integration/test_alert_burden.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from app.alerts.rules import (
    Changes,
    ChartedSet,
    Corroborate,
    Policy,
    Raise,
    Regrade,
    Streak,
    decide,
    decide_charted,
    folded_kinds,
)
from app.alerts.store import Alert
from models.scoring import Score

#: open periods ``(raised, resolved or None)`` of alerts
SpanList = list[tuple[datetime, datetime | None]]
#: patient → kind → open periods
KindSpans = dict[str, dict[str, SpanList]]
#: a charted set as the evaluation posted it: (clock time of the post, the set as the rules see it)
Posted = tuple[datetime, ChartedSet]
#: kind → the times a rule of that kind was recorded on an open alert instead of raised (``Policy.fold``)
Folds = dict[str, list[datetime]]


class _State:
    """One patient's alert state, as the engine keeps it in its store."""

    def __init__(self) -> None:
        self.open: dict[str, Alert] = {}
        self.last_met: dict[str, datetime] = {}
        self.streaks: dict[tuple[str, str], Streak] = {}
        self.spans: dict[str, SpanList] = {}
        self.folded: Folds = {}
        self._where: dict[str, tuple[str, int]] = {}
        self._n = 0

    def apply(self, changes: Changes, now: datetime) -> None:
        for step in changes.steps:
            if isinstance(step, Raise):
                if step.kind in self.open:
                    continue
                self._n += 1
                alert_id = step.alert_id or f"{step.patient_id}-{self._n}-{step.kind}"
                self.open[step.kind] = Alert(id=alert_id, patient_id=step.patient_id,
                                             window_end=step.window_end.isoformat(), raised_at=now.isoformat(),
                                             risk=step.risk, reasons=step.reasons, state="raised",
                                             updated_at=now.isoformat(), kind=step.kind, news2=step.news2)
                self.spans.setdefault(step.kind, []).append((now, None))
                self._where[alert_id] = (step.kind, len(self.spans[step.kind]) - 1)
                for kind in folded_kinds(step):  # folded into this raise, in the same cycle
                    self.folded.setdefault(kind, []).append(now)
            elif isinstance(step, Corroborate):
                if step.alert_id in self._where:
                    kind, _ = self._where[step.alert_id]
                    self.open[kind] = dataclasses.replace(self.open[kind],
                                                          reasons=[*self.open[kind].reasons, *step.reasons])
                    self.folded.setdefault(step.kind, []).append(now)
            elif isinstance(step, Regrade):
                kind, _ = self._where[step.alert_id]
                self.open[kind] = dataclasses.replace(self.open[kind], news2=step.news2, reasons=step.reasons)
            elif step.alert_id in self._where:
                kind, i = self._where.pop(step.alert_id)
                self.spans[kind][i] = (self.spans[kind][i][0], now)
                self.last_met.pop(step.alert_id, None)
                del self.open[kind]
        for alert_id, window_end in changes.still_met:
            self.last_met[alert_id] = window_end
        for key, run in changes.streaks.items():
            if run is None:
                self.streaks.pop(key, None)
            else:
                self.streaks[key] = run


def replay_patient(scores: Sequence[Score], charted: Sequence[Posted], policy: Policy,
                   grace: timedelta, folded: Folds | None = None) -> dict[str, SpanList]:
    """One patient's alerts by kind, as the rules raise and resolve them over ``scores`` (oldest first) and the
    charted sets (in the order posted); ``folded``, when given, gains the rules recorded on an open alert instead of
    raised (``Policy.fold``), by kind."""
    state = _State()
    # (time, 0 = a charted set before 1 = the cycle at the same time, order, item)
    timeline: list[tuple[datetime, int, int, Any]] = [(t, 0, i, c) for i, (t, c) in enumerate(charted)]
    timeline += [(s.window_end + grace, 1, i, s) for i, s in enumerate(scores)]
    timeline.sort(key=lambda e: e[:3])
    for now, what, _, item in timeline:
        if what == 0:
            state.apply(decide_charted(item, state.open, policy), now)
        else:
            opened = {item.patient_id: state.open} if state.open else {}
            state.apply(decide([item], opened, state.last_met, policy, state.streaks), now)
    if folded is not None:
        for kind, times in state.folded.items():
            folded.setdefault(kind, []).extend(times)
    return state.spans


def replay(scores: Mapping[str, Sequence[Score]], charted: Mapping[str, Sequence[Posted]], policy: Policy,
           grace: timedelta, folded: dict[str, Folds] | None = None) -> KindSpans:
    """Every patient's alerts by kind under ``policy``; ``folded``, when given, gains per patient the rules folded
    (:func:`replay_patient`)."""
    out: KindSpans = {}
    for pid in sorted(set(scores) | set(charted)):
        mine: Folds = {}
        out[pid] = replay_patient(scores.get(pid, ()), charted.get(pid, ()), policy, grace, mine)
        if folded is not None and mine:
            folded[pid] = mine
    return out


def variant(policy: Policy, **changes: Any) -> Policy:
    """``policy`` with some fields changed (only fields the service's ``Policy`` has)."""
    return dataclasses.replace(policy, **changes)


def of_kinds(spans: KindSpans, kinds: Sequence[str]) -> dict[str, SpanList]:
    """Per patient, the spans of the given kinds together."""
    return {pid: [s for k in kinds for s in by_kind.get(k, [])] for pid, by_kind in spans.items()}
