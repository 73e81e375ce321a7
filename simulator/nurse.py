"""Nurse-charted observations: ACVPU and supplemental oxygen at NEWS2-paced intervals.

At each observation round the nurse reads the patient's current vitals, charts ACVPU (0 = Alert,
1 = new Confusion) and the oxygen flow (L/min, 0 = room air), titrates oxygen (start 2 L/min when
SpO2 < 92 %, step up by 2 to 6 L/min while it stays < 92 %, wean when ≥ 96 %), and sets the next round
from an *approximate* NEWS2 of what she saw (RCP chart 4): 0 → 12 h, 1–4 → 4 h, a single 3 or 5–6 → 1 h,
≥ 7 → 30 min. The approximation only paces the rounds; the product's NEWS2 is ``models.news2``.
Oxygen lifts the patient's SpO2 by up to 2.5 % (1 % per L/min), except for patients on long-term
oxygen (hypercapnic COPD, NEWS2 SpO2 scale 2, target 88–92 %) whose baseline already includes it and whose
flow the nurse leaves alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.physiology import HOUR, Baseline, Plan


@dataclass(frozen=True)
class Charted:
    t_s: np.ndarray  # observation times, s since admission
    acvpu: np.ndarray  # 0..4
    o2: np.ndarray  # L/min
    spo2_lift: np.ndarray  # per minute-grid point: SpO2 added by the oxygen the nurse gave


def _band(x: float, edges: list[float], pts: list[int]) -> int:
    return pts[int(np.searchsorted(edges, x, side="left"))]


def _spo2_points(spo2: float, o2: float, scale: int) -> int:
    s = round(spo2)
    if scale == 1:
        return _band(s, [91, 93, 95], [3, 2, 1, 0])
    if s <= 92 or o2 <= 0:
        return _band(s, [83, 85, 87], [3, 2, 1, 0])
    return _band(s, [94, 96], [1, 2, 3])


def news2_estimate(rr: float, spo2: float, o2: float, sbp: float, hr: float, acvpu: int,
                   temp: float, scale: int = 1) -> tuple[int, int]:
    """(total, largest single parameter) on the patient's SpO2 scale — pacing only."""
    pts = [
        _band(round(rr), [8, 11, 20, 24], [3, 1, 0, 2, 3]),
        _spo2_points(spo2, o2, scale),
        2 if o2 > 0 else 0,
        _band(round(sbp), [90, 100, 110, 219], [3, 2, 1, 0, 3]),
        _band(round(hr), [40, 50, 90, 110, 130], [3, 1, 0, 1, 2, 3]),
        3 if acvpu else 0,
        _band(round(temp, 1), [35.0, 36.0, 38.0, 39.0], [3, 1, 0, 1, 2]),
    ]
    return sum(pts), max(pts)


def lift(o2: float) -> float:
    return min(2.5, 1.0 * o2)


def chart(rng: np.random.Generator, latent: dict[str, np.ndarray], tm: np.ndarray, horizon_s: float,
          base: Baseline, plan: Plan) -> Charted:
    ts: list[float] = []
    acvpu: list[int] = []
    o2s: list[float] = []
    t = float(rng.uniform(0, 0.5 * HOUR))  # admission observations
    flow = base.chronic_o2
    at = {k: latent[k] for k in ("hr", "sbp", "rr", "spo2", "temp", "sev")}
    while t < horizon_s:
        v = {k: float(np.interp(t, tm, y)) for k, y in at.items()}
        spo2 = v["spo2"] + (0.0 if base.chronic_o2 else lift(flow))
        if not base.chronic_o2:
            if spo2 < 92.0:
                flow = min(flow + 2.0, 6.0)
            elif flow > 0 and spo2 >= 96.0:
                flow = max(flow - 2.0, 0.0)
            spo2 = v["spo2"] + lift(flow)
        confused = int(plan.confused and v["sev"] > 0.85)
        total, single = news2_estimate(v["rr"], spo2, flow, v["sbp"], v["hr"], confused, v["temp"], base.spo2_scale)
        ts.append(t)
        acvpu.append(confused)
        o2s.append(flow)
        if total >= 7:
            step = 0.5 * HOUR
        elif total >= 5 or single >= 3:
            step = 1.0 * HOUR
        elif total >= 1:
            step = 4.0 * HOUR
        else:
            step = 12.0 * HOUR
        t += step * float(rng.uniform(0.85, 1.0))
    t_s = np.asarray(ts)
    o2 = np.asarray(o2s)
    spo2_lift = np.zeros(len(tm))
    if not base.chronic_o2 and len(t_s) and o2.any():
        idx = np.searchsorted(t_s, tm, side="right") - 1
        given = np.where(idx >= 0, o2[np.maximum(idx, 0)], 0.0)
        spo2_lift = np.minimum(2.5, given)
    return Charted(t_s=t_s, acvpu=np.asarray(acvpu, dtype=float), o2=o2, spo2_lift=spo2_lift)
