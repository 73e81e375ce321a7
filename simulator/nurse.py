"""Nurse-charted observations: a full NEWS2 observation set at NEWS2-paced intervals.

At each observation round the nurse takes a full set at the bedside — her own measurements, apart from the
monitor's: the respiratory rate counted over 30 s (``nurse_rr``), SpO2 from a spot check (whole per cent), the
pulse counted over 30 s, a cuff systolic BP, a tympanic temperature (0.1 °C) — charts ACVPU (0 = Alert,
1 = new Confusion) and the oxygen flow (L/min, 0 = room air), titrates oxygen (start 2 L/min when
SpO2 < 92 %, step up by 2 to 6 L/min while it stays < 92 %, wean when ≥ 96 %), and sets the next round
from an *approximate* NEWS2 of what she saw (RCP chart 4): 0 → 12 h, 1–4 → 4 h, a single 3 or 5–6 → 1 h,
≥ 7 → 30 min. The approximation only paces the rounds; the product's NEWS2 is ``models.news2``.
Oxygen lifts the patient's SpO2 by up to 2.5 % (1 % per L/min), except for patients on long-term
oxygen (hypercapnic COPD, NEWS2 SpO2 scale 2, target 88–92 %) whose baseline already includes it and whose
flow the nurse leaves alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.physiology import HOUR, Baseline, Plan


@dataclass(frozen=True)
class Charted:
    t_s: np.ndarray  # observation times, s since admission
    acvpu: np.ndarray  # 0..4
    o2: np.ndarray  # L/min
    spo2_lift: np.ndarray  # per minute-grid point: SpO2 added by the oxygen the nurse gave
    doc_s: np.ndarray = field(default_factory=lambda: np.empty(0))  # when the set is documented (its reading ts)
    rr: np.ndarray = field(default_factory=lambda: np.empty(0))  # respiratory rate the nurse counted, /min
    hr: np.ndarray = field(default_factory=lambda: np.empty(0))  # pulse she counted, /min
    spo2: np.ndarray = field(default_factory=lambda: np.empty(0))  # spot SpO2, %
    sbp: np.ndarray = field(default_factory=lambda: np.empty(0))  # cuff systolic, mmHg
    temp: np.ndarray = field(default_factory=lambda: np.empty(0))  # tympanic temperature, °C

    def values(self) -> dict[str, np.ndarray]:
        """The set's values per vital (``models.schema.VITALS`` names), one entry per round."""
        return {"rr": self.rr, "spo2": self.spo2, "o2": self.o2, "sbp": self.sbp, "hr": self.hr,
                "acvpu": self.acvpu, "temp": self.temp}


#: the nurse's own measurement error per vital (SD): a 30-s pulse count, a spot oximeter, a cuff, a tympanic probe
MEASURE_SD = {"hr": 3.0, "spo2": 1.0, "sbp": 5.0, "temp": 0.15}


#: minutes from the observation at the bedside to the set being documented in the record (its timestamp)
DOCUMENT_DELAY_MIN = (1.0, 30.0)
#: next round (RCP 2017 chart 4 minimum frequency) per band of the nurse's NEWS2: 0 → 12-hourly, 1–4 →
#: 4–6-hourly, 5–6 or a single 3 → hourly, ≥ 7 → continuous (a charted set every 15 min)
ROUND_H = {"zero": (10.5, 12.0), "low": (4.0, 6.0), "medium": (0.85, 1.0), "high": (0.2, 0.25)}
DELIRIUM_CHARTED = 0.3  # share of rounds at which a delirious (stable) patient is charted new confusion
RR_DIGIT_PREFERENCE = 0.35  # share of counts between 14 and 22 written as 18 or 20 (charted digit preference)


def nurse_rr(rng: np.random.Generator, true_rr: float) -> float:
    """A 30-second count doubled, with the digit preference of charted rates (18–20 /min)."""
    count = 2.0 * round((true_rr + rng.normal(0.0, 1.0)) / 2.0)
    if 14.0 <= count <= 22.0 and rng.random() < RR_DIGIT_PREFERENCE:
        return float(rng.choice([18.0, 20.0]))
    return float(max(count, 4.0))


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
    rrs: list[float] = []
    measured: dict[str, list[float]] = {v: [] for v in MEASURE_SD}
    t = float(rng.uniform(0, 0.5 * HOUR))  # admission observations
    flow = base.chronic_o2
    at = {k: latent[k] for k in ("hr", "sbp", "rr", "spo2", "temp", "sev")}
    if "rr_rest" in latent:
        at["rr"] = latent["rr_rest"]  # she counts the resting rate, not the monitor's swings
    while t < horizon_s:
        v = {k: float(np.interp(t, tm, y)) for k, y in at.items()}
        spo2 = v["spo2"] + (0.0 if base.chronic_o2 else lift(flow))
        if not base.chronic_o2:
            if spo2 < 92.0:
                flow = min(flow + 2.0, 6.0)
            elif flow > 0 and spo2 >= 96.0:
                flow = max(flow - 2.0, 0.0)
            spo2 = v["spo2"] + lift(flow)
        confused = int(plan.confused and v["sev"] > plan.confusion_at)
        if base.delirium and rng.random() < DELIRIUM_CHARTED:
            confused = 1
        counted = nurse_rr(rng, v["rr"])
        noise = rng.normal(0.0, 1.0, len(MEASURE_SD))
        got = {"hr": float(round(v["hr"] + MEASURE_SD["hr"] * noise[0])),
               "spo2": float(min(round(spo2 + MEASURE_SD["spo2"] * noise[1]), 100)),
               "sbp": float(round(v["sbp"] + MEASURE_SD["sbp"] * noise[2])),
               "temp": float(round(v["temp"] + MEASURE_SD["temp"] * noise[3], 1))}
        total, single = news2_estimate(counted, got["spo2"], flow, got["sbp"], got["hr"], confused, got["temp"],
                                       base.spo2_scale)
        ts.append(t)
        acvpu.append(confused)
        o2s.append(flow)
        rrs.append(counted)
        for k, x in got.items():
            measured[k].append(x)
        band = "high" if total >= 7 else "medium" if total >= 5 or single >= 3 else "low" if total >= 1 else "zero"
        t += float(rng.uniform(*ROUND_H[band])) * HOUR
    t_s = np.asarray(ts)
    o2 = np.asarray(o2s)
    spo2_lift = np.zeros(len(tm))
    if not base.chronic_o2 and len(t_s) and o2.any():
        idx = np.searchsorted(t_s, tm, side="right") - 1
        given = np.where(idx >= 0, o2[np.maximum(idx, 0)], 0.0)
        spo2_lift = np.minimum(2.5, given)
    doc_s = t_s + rng.uniform(*DOCUMENT_DELAY_MIN, len(t_s)) * 60.0
    return Charted(t_s=t_s, acvpu=np.asarray(acvpu, dtype=float), o2=o2, spo2_lift=spo2_lift, doc_s=doc_s,
                   rr=np.asarray(rrs), **{k: np.asarray(x, dtype=float) for k, x in measured.items()})
