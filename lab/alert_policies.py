"""Alert policies judged alike: alerts per 100 patient-days, first events warned ≥ 30 min ahead, and the same rule
applied to random moments of event-free patients ("warned by chance"), with patient-bootstrap intervals.

A *policy* here is, per patient, the open periods ``[raised, resolved)`` of the alerts it raised (``Spans``):
read back from the service (:mod:`lab.alert_burden`), or replayed from the scores the service stored
(:mod:`lab.alert_replay`), or the RCP rule on the charted sets (:func:`charted_spans`). Everything below is pure
arithmetic on those spans; no alert rule lives here.

Definitions (stated once, used by every report that imports this module):

- **warned**: a policy warned of a patient's *first* event with onset ``t`` if one of its alerts was open at some
  time in ``[t − 6 h, t − 30 min]`` (raised in that span, or raised earlier and not resolved before ``t − 6 h``).
- **chance warned**: for each event-free patient, ``PSEUDO_ONSETS`` pseudo-onsets are drawn with a fixed seed at
  times since admission sampled from the real first events' onsets of the same study (all its seeds; uniform over
  the patient's monitored span when it has no event), kept inside the patient's monitored span; each is "warned" by
  the same rule. A patient's chance is the share of its pseudo-onsets warned; ``chance_warned`` is the mean over
  event-free patients. Drawing the times from the real onsets keeps both at the same time since admission
  (alerts are commoner early in a stay).
- **warned − chance**: ``first_event_warned − chance_warned``: the early warning a policy adds beyond alerting
  often.
- **intervals**: 95 % percentile intervals over patient-bootstrap replicates (patients resampled with
  replacement; the same replicates for every policy, so differences between policies get their own interval).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np

LOOKBACK: Final[timedelta] = timedelta(hours=6)
MIN_LEAD: Final[timedelta] = timedelta(minutes=30)
PSEUDO_ONSETS: Final[int] = 20

#: patient → open periods ``(raised, resolved or None)`` of one policy's alerts.
Spans = Mapping[str, Sequence[tuple[datetime, datetime | None]]]


@dataclass(frozen=True)
class Patient:
    patient_id: str
    start: datetime
    end: datetime  # end of monitoring
    onset: datetime | None  # first event, or None

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400.0


def spans_of(alerts: Iterable[Mapping[str, Any]], kinds: Iterable[str]) -> dict[str, list[tuple[datetime,
                                                                                              datetime | None]]]:
    """The open periods of the alerts (as ``GET /v1/alerts`` answers them) of the given kinds, per patient."""
    wanted = set(kinds)
    out: dict[str, list[tuple[datetime, datetime | None]]] = {}
    for a in alerts:
        if a["kind"] in wanted:
            resolved = datetime.fromisoformat(a["resolved_at"]) if a.get("resolved_at") else None
            out.setdefault(a["patient_id"], []).append((datetime.fromisoformat(a["raised_at"]), resolved))
    return out


def lead_h(spans: Sequence[tuple[datetime, datetime | None]], onset: datetime) -> float | None:
    """Lead in hours of the earliest alert open during ``[onset − 6 h, onset − 30 min]``; None if none was."""
    lo, hi = onset - LOOKBACK, onset - MIN_LEAD
    best: datetime | None = None
    for raised, resolved in spans:
        if raised <= hi and (resolved is None or resolved > lo):
            at = max(raised, lo)
            best = at if best is None or at < best else best
    return None if best is None else (onset - best).total_seconds() / 3600.0


def pseudo_onsets(patients: Sequence[Patient], seed: int, k: int = PSEUDO_ONSETS) -> dict[str, list[datetime]]:
    """``k`` pseudo-onsets per event-free patient (see the module docstring), deterministic in ``seed``."""
    offsets = np.asarray([(p.onset - p.start).total_seconds() for p in patients if p.onset is not None], float)
    rng = np.random.default_rng(seed)
    out: dict[str, list[datetime]] = {}
    for p in patients:
        if p.onset is not None:
            continue
        span = (p.end - p.start).total_seconds()
        pool = offsets[offsets <= span] if len(offsets) else offsets
        draws = rng.choice(pool, k) if len(pool) else rng.uniform(0.0, span, k)
        out[p.patient_id] = [p.start + timedelta(seconds=float(s)) for s in draws]
    return out


@dataclass(frozen=True)
class PolicyColumns:
    """One policy's per-patient facts, aligned with the patients' order."""

    alerts: np.ndarray  # alerts raised per patient
    warned: np.ndarray  # bool: first event warned (False for event-free patients)
    chance: np.ndarray  # share of pseudo-onsets warned (0 for patients with an event)
    lead: list[float | None]


def columns(patients: Sequence[Patient], spans: Spans, pseudo: Mapping[str, Sequence[datetime]]) -> PolicyColumns:
    """Alerts, first-event warning and chance warning per patient for one policy's spans."""
    alerts, warned, chance, leads = [], [], [], []
    for p in patients:
        mine = spans.get(p.patient_id, ())
        alerts.append(len(mine))
        lead = lead_h(mine, p.onset) if p.onset is not None else None
        leads.append(lead)
        warned.append(lead is not None)
        moments = pseudo.get(p.patient_id, ())
        chance.append(float(np.mean([lead_h(mine, t) is not None for t in moments])) if moments else 0.0)
    return PolicyColumns(np.asarray(alerts, float), np.asarray(warned, bool), np.asarray(chance, float), leads)


class Estimator:
    """Point values and patient-bootstrap intervals over one fixed set of replicates."""

    def __init__(self, patients: Sequence[Patient], n_boot: int, seed: int) -> None:
        self.days = np.asarray([p.days for p in patients], float)
        self.event = np.asarray([p.onset is not None for p in patients], bool)
        n = len(patients)
        self.idx = np.random.default_rng(seed).integers(0, n, (n_boot, n)) if n and n_boot else np.zeros((0, n), int)

    @staticmethod
    def _ratio(num: np.ndarray, den: np.ndarray, idx: np.ndarray) -> tuple[float | None, np.ndarray]:
        point = float(num.sum() / den.sum()) if den.sum() > 0 else None
        with np.errstate(invalid="ignore", divide="ignore"):
            boots = num[idx].sum(axis=1) / den[idx].sum(axis=1)
        return point, boots

    @staticmethod
    def _est(point: float | None, boots: np.ndarray, scale: float = 1.0) -> dict[str, Any]:
        boots = boots[np.isfinite(boots)]
        ci = [float(np.percentile(boots, 2.5)) * scale, float(np.percentile(boots, 97.5)) * scale] \
            if len(boots) >= 20 and point is not None else None
        return {"value": None if point is None else point * scale, "ci95": ci}

    def parts(self, c: PolicyColumns) -> dict[str, tuple[float | None, np.ndarray]]:
        """Raw (point, replicates) of the per-policy quantities, for differences between policies."""
        per100 = self._ratio(c.alerts, self.days, self.idx)
        sens = self._ratio(c.warned.astype(float), self.event.astype(float), self.idx)
        free = (~self.event).astype(float)
        chance = self._ratio(c.chance * free, free, self.idx)
        gain = (None if sens[0] is None or chance[0] is None else sens[0] - chance[0], sens[1] - chance[1])
        alerted = self._ratio((c.alerts > 0).astype(float), np.ones_like(self.days), self.idx)
        return {"per100d": (None if per100[0] is None else 100 * per100[0], 100 * per100[1]), "warned": sens,
                "chance": chance, "warned_minus_chance": gain, "patients_alerted": alerted}

    def estimates(self, c: PolicyColumns) -> dict[str, dict[str, Any]]:
        return {k: self._est(*v) for k, v in self.parts(c).items()}

    def difference(self, a: PolicyColumns, b: PolicyColumns, key: str) -> dict[str, Any]:
        """``key`` of policy ``a`` minus that of ``b``, on the same replicates."""
        pa, pb = self.parts(a)[key], self.parts(b)[key]
        point = None if pa[0] is None or pb[0] is None else pa[0] - pb[0]
        return self._est(point, pa[1] - pb[1])


def missed(patients: Sequence[Patient], reference: PolicyColumns, shipped: PolicyColumns) -> list[str]:
    """Patients whose first event ``reference`` warned of and ``shipped`` did not."""
    return [p.patient_id for p, r, s in zip(patients, reference.warned, shipped.warned, strict=True) if r and not s]


def fmt(est: Mapping[str, Any], scale: float = 1.0, digits: int = 1) -> str:
    """``value (lo–hi)``, or ``–`` when there is no value."""
    v = est.get("value")
    if v is None:
        return "–"
    ci = est.get("ci95")
    text = f"{v * scale:.{digits}f}"
    return text + (f" ({ci[0] * scale:.{digits}f}–{ci[1] * scale:.{digits}f})" if ci else "")


DEFINITIONS: Final[dict[str, str]] = {
    "warned": "a policy warned of a patient's first event (onset t) if one of its alerts was open at some time in "
              "[t − 6 h, t − 30 min]",
    "chance_warned": f"for each event-free patient, {PSEUDO_ONSETS} pseudo-onsets drawn with a fixed seed at times "
                     "since admission sampled from the study's real first-event onsets, all seeds (within the "
                     "patient's "
                     "monitored span), each 'warned' by the same rule; a patient's chance is the share of its "
                     "pseudo-onsets warned; chance_warned is the mean over event-free patients",
    "warned_minus_chance": "first_event_warned − chance_warned",
    "intervals": "95 % percentile intervals over patient-bootstrap replicates, the same replicates for every "
                 "policy (differences between policies on the same replicates)",
}
