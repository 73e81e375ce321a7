"""Patient physiology: personal baselines, circadian rhythm, autocorrelated variability, coupling, trajectories.

Everything here is a *latent* (noise-free of device error) path on a one-minute grid; ``devices``
samples it at each device's rate and adds beat-to-beat variability, measurement noise and artefacts.

Model (per patient, minute grid ``t``)::

    hr(t)   = hr0   + 5.0 c(t) + AR(2.5 bpm, 5 min) + AR(4 bpm, 45 min) + 2.5 a(t) + s(t) D_hr  + 8 ΔT(t)
    sbp(t)  = sbp0  + 6.0 c(t) + AR(6 mmHg, 60 min)                    + 3.0 a(t) + s(t) D_sbp
    rr(t)   = rr0   + 0.7 c(t) + AR(1.3 /min, 30 min)                  + 0.8 a(t) + s(t) D_rr  + 1.2 ΔT(t)
    spo2(t) = spo20            + AR(0.6 %, 20 min)                     - 0.2 a(t) + s(t) D_spo2
    temp(t) = temp0 + 0.25 c(t) + AR(0.12 °C, 90 min)                             + ΔT(t)

``c(t) = cos(2π (hour − 16) / 24)`` is the circadian rhythm (peak 16:00, nadir 04:00, clock time
taken as UTC), ``a(t)`` a shared arousal factor (AR, 20 min), ``AR(sd, τ)`` a stationary AR(1) process.
Coupling: fever raises HR by 8 bpm/°C (Liebermeister) and RR by 1.2 /min/°C; hypovolaemia raises HR
while SBP falls; respiratory failure lowers SpO2 and raises RR and HR.

Trajectories: ``s(t) ∈ [0, 1]`` is the severity of the patient's episode, an accelerating drift
``((t − t0) / (t_full − t0))^1.5`` starting 2–6 h (the prodrome) before the planned crossing. The
primary vital's amplitude ``D`` is solved so that the mean path crosses its threshold at the planned
time, with ``D`` reaching ``EXCESS`` beyond the threshold at full severity (severity at the crossing
``s_plan`` ∈ [0.45, 0.85]): the patient keeps worsening after the onset — septic or bleeding tachycardia
in the 120s–130s, shock, SpO2 in the low 80s — and stays on the ward 3–10 h after it (``TRANSFER_AFTER_H``;
2–5 h for shock, which is escalated fastest).

Stable patients include (``draw_baseline``) 5 % with hypercapnic COPD on long-term oxygen (SpO2 91.5–93.5 %,
NEWS2 scale 2), 12 % in atrial fibrillation (irregular R–R intervals: a right-skewed beat-to-beat heart rate,
mean 90–105 /min) and 15 % with nocturnal intermittent hypoxaemia (sleep apnoea, opioids); none of them
crosses a threshold in a sustained way (5-minute means).
The *recorded* onset is not the plan: it is the first sustained crossing that ``detect`` finds on the
sampled, artefact-free readings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from models.schema import HR_HIGH_BPM, HR_LOW_BPM, SBP_LOW_MMHG, SPO2_LOW_PCT
from simulator.archetypes import (
    BRADY,
    EVENT_ARCHETYPES,
    FEVER,
    HAEMORRHAGE,
    RECOVERY,
    RESPIRATORY,
    SEPSIS,
    STABLE,
    TRANSFERRED,
)

HOUR = 3600.0
DAY = 86400.0
GAMMA = 1.5
FEVER_HR_PER_C = 8.0
FEVER_RR_PER_C = 1.2
RR_MEDIAN = 17.5  # /min, personal resting rate of ward patients (log-normal between patients)
RR_LOG_SD = 0.17
#: hours from the (recorded) onset to the transfer out (rapid response, review, ICU bed): escalation and
#: review take hours on a real ward, and some patients are treated on the ward for a while first
TRANSFER_AFTER_H = (3.0, 10.0)
SHOCK_TRANSFER_AFTER_H = (2.0, 5.0)  # hypotension is escalated fastest (fluids, critical care review)
COPD_SHARE = 0.05  # stable patients with hypercapnic COPD on long-term oxygen (NEWS2 scale 2)
AF_SHARE = 0.12  # stable patients in atrial fibrillation
NIGHT_DIPS_SHARE = 0.15  # stable patients with nocturnal intermittent hypoxaemia (sleep apnoea, opioids)
NIGHT_HOURS = (23.0, 6.0)  # clock hours (UTC, as ``circadian``) of sleep


@dataclass(frozen=True)
class Baseline:
    hr: float
    sbp: float
    dbp_offset: float  # dbp = 0.45 sbp + dbp_offset
    rr: float
    spo2: float
    temp: float
    hr_fast_sd: float  # beat-to-beat spread of the 1 Hz series (falls with age and illness)
    chronic_o2: float  # L/min for a patient on long-term oxygen, else 0
    spo2_scale: int = 1  # NEWS2 SpO2 scale: 2 for hypercapnic (type 2) failure with a prescribed 88–92 % target
    af_cv: float = 0.0  # atrial fibrillation: coefficient of variation of the beat-to-beat (R–R) interval
    night_dips_per_h: float = 0.0  # sleep-disordered breathing / opioids: brief desaturations per hour at night


@dataclass(frozen=True)
class Plan:
    """What the patient's course is meant to be (drawn once per patient, before physiology)."""

    archetype: str
    episode: str = STABLE  # the underlying episode (recovery: one of sepsis/respiratory/haemorrhage)
    t_plan_s: float = math.nan  # planned crossing of the mean path, seconds since admission
    prodrome_s: float = 4 * HOUR
    s_plan: float = 0.7
    primary: str = ""  # hr_high | hr_low | sbp_low | spo2_low
    plateau_s: float = 0.0  # recovery: time at full severity
    recover_s: float = 0.0  # recovery: time back to baseline
    transfer_after_s: float = 2 * HOUR  # transferred archetypes: monitoring ends this long after onset
    confused: bool = False  # sepsis: new confusion when severe
    fever_peak_c: float = 38.5
    fever_start_s: float = 0.0
    fever_shape_s: tuple[float, float, float] = (2 * HOUR, 6 * HOUR, 3 * HOUR)  # rise, plateau, fall
    deltas: dict[str, float] = field(default_factory=dict)


def draw_demographics(rng: np.random.Generator) -> tuple[int, str]:
    age = int(np.clip(round(rng.normal(66.0, 16.0)), 18, 98))
    sex = "F" if rng.random() < 0.5 else "M"
    return age, sex


def draw_plan(rng: np.random.Generator, archetype: str, horizon_s: float,
              onset_window_s: tuple[float, float] | None = None) -> Plan:
    """The course of one patient. ``onset_window_s`` bounds the planned crossing (default 2 h … end − 1 h)."""
    if archetype == STABLE:
        return Plan(archetype)
    if archetype == FEVER:
        rise, plateau, fall = rng.uniform(1, 3) * HOUR, rng.uniform(3, 10) * HOUR, rng.uniform(2, 4) * HOUR
        latest = max(0.0, horizon_s - 0.5 * (rise + plateau))
        return Plan(archetype, episode=FEVER, fever_peak_c=float(rng.uniform(38.3, 38.8)),
                    fever_start_s=float(rng.uniform(0, latest)), fever_shape_s=(rise, plateau, fall))
    episode = archetype
    if archetype == RECOVERY:
        episode = (SEPSIS, RESPIRATORY, HAEMORRHAGE)[int(rng.integers(3))]
        lo, hi = 1.5 * HOUR, max(1.5 * HOUR, min(8 * HOUR, 0.4 * horizon_s))
    else:
        hi = max(0.25 * HOUR, horizon_s - 1.0 * HOUR)
        lo = min(2.0 * HOUR, hi)
    if onset_window_s is not None:
        lo, hi = onset_window_s
    primary = {SEPSIS: ("hr_high", "sbp_low")[int(rng.integers(2))], RESPIRATORY: "spo2_low",
               HAEMORRHAGE: "sbp_low" if rng.random() < 0.7 else "hr_high", BRADY: "hr_low"}[episode]
    transfer_h = SHOCK_TRANSFER_AFTER_H if primary == "sbp_low" else TRANSFER_AFTER_H
    return Plan(
        archetype, episode=episode, t_plan_s=float(rng.uniform(lo, hi)), prodrome_s=float(rng.uniform(2, 6) * HOUR),
        s_plan=float(rng.uniform(0.6, 0.8)), primary=primary, plateau_s=float(rng.uniform(0.5, 2) * HOUR),
        recover_s=float(rng.uniform(3, 6) * HOUR),
        transfer_after_s=float(rng.uniform(*transfer_h) * HOUR),
        confused=bool(rng.random() < 0.6),
    )


def draw_baseline(rng: np.random.Generator, age: int, sex: str, archetype: str) -> Baseline:
    female = sex == "F"
    hr = rng.normal(82.0 + 3.0 * female - 0.08 * (age - 66), 16.0)
    hr = float(np.clip(hr, 55.0, 86.0 if archetype == FEVER else 112.0))
    sbp = float(np.clip(rng.normal(125.0 + 0.35 * (age - 66) - 3.0 * female, 20.0), 100.0, 190.0))
    rr = float(np.clip(RR_MEDIAN * math.exp(rng.normal(0.0, RR_LOG_SD)), 11.0, 30.0))
    spo2 = float(np.clip(rng.normal(96.8 - 0.03 * (age - 66), 1.5), 92.5, 99.6))
    hr_fast_sd, af_cv = float(np.clip(4.0 - 0.025 * (age - 40), 2.0, 4.5)), 0.0
    chronic_o2, scale = 0.0, 1
    kind, dips = rng.random(), rng.random()
    if archetype == STABLE and kind < COPD_SHARE:
        # COPD with hypercapnic (type 2) respiratory failure on long-term oxygen: NEWS2 scale 2, target 88–92 %,
        # kept at the top of the target so that the window mean stays at or above 90 % (no event).
        chronic_o2, scale = float(rng.choice([1.0, 2.0])), 2
        spo2 = float(np.clip(rng.normal(92.3, 0.5), 91.5, 93.5))
    elif archetype == STABLE and kind < COPD_SHARE + AF_SHARE:
        # atrial fibrillation, partly rate-controlled (mean ventricular rate 88–108 /min): irregularly
        # irregular R–R intervals (CV 10–16 %), so the beat-to-beat heart rate is right-skewed and often above
        # 120 /min for a few seconds while the 5-minute mean stays well below it.
        hr = float(np.clip(rng.normal(97.0, 4.0), 90.0, 105.0))
        hr_fast_sd, af_cv = 1.0, float(rng.uniform(0.12, 0.15))
    night_dips = 0.0
    if archetype == STABLE and scale == 1 and spo2 >= 94.0 and dips < NIGHT_DIPS_SHARE:
        # sleep-disordered breathing or opioids: repeated brief desaturations at night (obstructive apnoeas)
        night_dips = float(rng.uniform(6.0, 20.0))
    return Baseline(
        hr=hr, sbp=sbp, dbp_offset=float(rng.normal(15.0, 5.0)), rr=rr, spo2=spo2,
        temp=float(np.clip(rng.normal(36.6, 0.42), 35.3, 37.6)),
        hr_fast_sd=hr_fast_sd, chronic_o2=chronic_o2, spo2_scale=scale, af_cv=af_cv, night_dips_per_h=night_dips,
    )


def ar1(rng: np.random.Generator, n: int, sd: float, tau_steps: float) -> np.ndarray:
    """Stationary AR(1) with standard deviation ``sd`` and time constant ``tau_steps`` (vectorised)."""
    a = math.exp(-1.0 / tau_steps)
    e = rng.standard_normal(n) * (sd * math.sqrt(1.0 - a * a))
    y, _ = lfilter([1.0], [1.0, -a], e, zi=[a * sd * rng.standard_normal()])
    return y


def circadian(epoch_s: np.ndarray | float) -> np.ndarray:
    hour = (np.asarray(epoch_s, dtype=float) / HOUR) % 24.0
    return np.cos(2.0 * np.pi * (hour - 16.0) / 24.0)


def severity(plan: Plan, t: np.ndarray) -> np.ndarray:
    """Episode severity s(t) ∈ [0, 1] on times ``t`` (s since admission)."""
    if plan.archetype not in EVENT_ARCHETYPES:
        return np.zeros_like(t, dtype=float)
    t0 = plan.t_plan_s - plan.prodrome_s
    t_full = t0 + plan.prodrome_s / plan.s_plan ** (1.0 / GAMMA)
    s = np.clip((t - t0) / (t_full - t0), 0.0, 1.0) ** GAMMA
    if plan.archetype == RECOVERY:
        u = np.clip((t - (t_full + plan.plateau_s)) / plan.recover_s, 0.0, 1.0)
        s = s * (1.0 - u * u * (3.0 - 2.0 * u))
    return s


def fever_profile(plan: Plan, t: np.ndarray) -> np.ndarray:
    """Fever-archetype shape in [0, 1]: smooth rise, plateau, smooth fall."""
    rise, plateau, fall = plan.fever_shape_s
    x = t - plan.fever_start_s
    up = np.clip(x / rise, 0.0, 1.0)
    down = np.clip((x - rise - plateau) / fall, 0.0, 1.0)
    return up * up * (3 - 2 * up) * (1.0 - down * down * (3 - 2 * down))


#: How far beyond its threshold the primary vital's mean path goes at full severity (uniform range): the
#: event phase of a deterioration that is not yet treated — septic or bleeding tachycardia 123–130 /min
#: (a secondary tachycardia stops at ``HR_CEILING``), shock with a systolic of 78–85 mmHg, SpO2 78–84 %
#: before oxygen (81–87 % on it), a junctional or blocked rhythm at 40–45 /min.
EXCESS: dict[str, tuple[float, float]] = {
    "hr_high": (2.0, 8.0), "hr_low": (4.0, 9.0), "sbp_low": (3.0, 10.0), "spo2_low": (4.0, 10.0),
}
S_PLAN_RANGE = (0.45, 0.85)
HR_CEILING = (112.0, 128.0)  # /min, full-severity mean heart rate of a tachycardia that is not the primary vital


def episode_course(rng: np.random.Generator, plan: Plan, base: Baseline, c_plan: float) -> Plan:
    """The plan with its full-severity deltas per vital and ``s_plan``.

    The primary vital's delta ``D`` is solved so that the mean path crosses its threshold at the planned
    time: ``s_plan · D = need`` (the distance from the patient's baseline to 1.5 units beyond the
    threshold). ``D = need + excess`` with ``excess`` drawn from ``EXCESS``, so the severity at the
    crossing is ``s_plan = need / (need + excess)`` (clipped to ``S_PLAN_RANGE``) and the patient goes on
    worsening after the onset, to full severity ``D``.
    """
    u = rng.uniform
    ep = plan.episode
    if ep == SEPSIS:
        d = {"temp": u(1.4, 2.2), "rr": u(6, 10), "spo2": -u(2, 5), "sbp": -u(22, 32), "hr": u(16, 28)}
    elif ep == RESPIRATORY:
        d = {"temp": u(0, 0.4), "rr": u(10, 16), "spo2": -6.0, "sbp": u(0, 8), "hr": u(12, 20)}
    elif ep == HAEMORRHAGE:
        d = {"temp": -u(0, 0.4), "rr": u(4, 8), "spo2": -u(0, 1.5), "sbp": -u(30, 42), "hr": u(28, 40)}
    elif ep == BRADY:
        d = {"temp": 0.0, "rr": 0.0, "spo2": 0.0, "sbp": -u(10, 20), "hr": -20.0}
    else:
        return dataclasses.replace(plan, deltas={})
    lo, hi = EXCESS.get(plan.primary, (0.0, 0.0))
    excess = u(lo, hi)
    if plan.primary == "hr_high":
        need = (HR_HIGH_BPM + 1.5) - (base.hr + 5.0 * c_plan)
    elif plan.primary == "hr_low":
        need = (base.hr + 5.0 * c_plan) - (HR_LOW_BPM - 1.5)
    elif plan.primary == "sbp_low":
        need = (base.sbp + 6.0 * c_plan) - (SBP_LOW_MMHG - 1.5)
    elif plan.primary == "spo2_low":
        need = base.spo2 - (SPO2_LOW_PCT - 1.5)
    else:
        return dataclasses.replace(plan, deltas=d)
    if plan.primary != "hr_high":  # a secondary tachycardia stops at a sinus rate an ill adult can sustain
        ceiling = u(*HR_CEILING) - base.hr - FEVER_HR_PER_C * d["temp"]
        d["hr"] = max(min(d["hr"], ceiling), 0.0) if d["hr"] > 0 else d["hr"]
    s = float(np.clip(need / max(need + excess, 1e-9), *S_PLAN_RANGE)) if need > 0 else S_PLAN_RANGE[1]
    if plan.primary == "hr_high":
        d["hr"] = max(need / s - FEVER_HR_PER_C * d["temp"], 5.0)
    elif plan.primary == "hr_low":
        d["hr"] = -min(max(need / s, 5.0), base.hr - 33.0)
    elif plan.primary == "sbp_low":
        d["sbp"] = -max(need / s, 10.0)
    elif plan.primary == "spo2_low":
        d["spo2"] = -max(need / s, 4.0)
    return dataclasses.replace(plan, deltas=d, s_plan=s)


def episode_deltas(rng: np.random.Generator, plan: Plan, base: Baseline, c_plan: float) -> dict[str, float]:
    """Full-severity deltas per vital (see ``episode_course``, which also sets ``s_plan``)."""
    return episode_course(rng, plan, base, c_plan).deltas


def latent_paths(rng: np.random.Generator, base: Baseline, plan: Plan, tm: np.ndarray,
                 start_s: float) -> dict[str, np.ndarray]:
    """Latent vitals on the minute grid ``tm`` (s since admission); adds ``sev`` (severity)."""
    n = len(tm)
    c = circadian(start_s + tm)
    arousal = ar1(rng, n, 1.0, 20.0)
    sev = severity(plan, tm)
    deltas = plan.deltas
    d_temp = sev * deltas.get("temp", 0.0)
    if plan.archetype == FEVER:
        d_temp = fever_profile(plan, tm) * max(0.8, plan.fever_peak_c - base.temp - 0.25)
    hr = (base.hr + 5.0 * c + ar1(rng, n, 2.5, 5.0) + ar1(rng, n, 4.0, 45.0) + 2.5 * arousal
          + sev * deltas.get("hr", 0.0) + FEVER_HR_PER_C * d_temp)
    sbp = base.sbp + 6.0 * c + ar1(rng, n, 6.0, 60.0) + 3.0 * arousal + sev * deltas.get("sbp", 0.0)
    rr = (base.rr + 0.7 * c + ar1(rng, n, 1.3, 30.0) + 0.8 * arousal + sev * deltas.get("rr", 0.0)
          + FEVER_RR_PER_C * d_temp)
    spo2 = base.spo2 + ar1(rng, n, 0.6, 20.0) - 0.2 * arousal + sev * deltas.get("spo2", 0.0)
    temp = base.temp + 0.25 * c + ar1(rng, n, 0.12, 90.0) + d_temp
    return {"hr": hr, "sbp": sbp, "rr": rr, "spo2": spo2, "temp": temp, "sev": sev}


@dataclass(frozen=True)
class Benign:
    """Brief physiological events of any ward patient: (start_s, duration_s, amplitude) arrays."""

    tachy: np.ndarray  # HR +15–35 bpm for 1–4 min (mobilising, toilet, pain), 4 per day
    desat: np.ndarray  # SpO2 −5 to −14 % for 0.5–3 min (position, sleep apnoea), 6 per day; with
    #                    ``Baseline.night_dips_per_h``: also −4 to −10 % for 20–60 s, 6–20 per hour of sleep
    fast_rr: np.ndarray  # RR +12–20 /min for 5–20 min (anxiety, exertion, pain), 1.2 per day
    slow_rr: np.ndarray  # RR × 0.3–0.5 for 5–30 min (deep sleep, opioids), 1.5 per day


def _poisson_events(rng: np.random.Generator, horizon_s: float, per_day: float, dur: tuple[float, float],
                    amp: tuple[float, float]) -> np.ndarray:
    k = int(rng.poisson(per_day * horizon_s / DAY))
    out = np.empty((k, 3))
    out[:, 0] = np.sort(rng.uniform(0.0, horizon_s, k))
    out[:, 1] = rng.uniform(*dur, k)
    out[:, 2] = rng.uniform(*amp, k)
    return out


def draw_benign(rng: np.random.Generator, horizon_s: float, start_s: float = 0.0,
                base: Baseline | None = None) -> Benign:
    desat = _poisson_events(rng, horizon_s, 6.0, (30, 180), (5, 14))
    if base is not None and base.night_dips_per_h > 0:
        dips = _poisson_events(rng, horizon_s, base.night_dips_per_h * 24.0, (20, 60), (5, 14))
        hour = ((start_s + dips[:, 0]) / HOUR) % 24.0
        night = (hour >= NIGHT_HOURS[0]) | (hour < NIGHT_HOURS[1])
        desat = np.vstack([desat, dips[night]])
        desat = desat[np.argsort(desat[:, 0], kind="stable")]
    return Benign(
        tachy=_poisson_events(rng, horizon_s, 4.0, (60, 240), (15, 35)),
        desat=desat,
        fast_rr=_poisson_events(rng, horizon_s, 2.0, (300, 1200), (12, 20)),
        slow_rr=_poisson_events(rng, horizon_s, 1.5, (300, 1800), (0.3, 0.5)),
    )


def add_bumps(t: np.ndarray, y: np.ndarray, events: np.ndarray, *, multiply: bool = False) -> None:
    """Add (or, with ``multiply``, scale toward a factor) a flat-topped bump per event, in place. ``t`` sorted."""
    for start, dur, amp in events:
        i, j = np.searchsorted(t, [start, start + dur])
        if i == j:
            continue
        shape = np.clip(3.0 * np.sin(np.pi * (t[i:j] - start) / dur), 0.0, 1.0)
        if multiply:
            y[i:j] *= 1.0 - shape * (1.0 - amp)
        else:
            y[i:j] += amp * shape


__all__ = [
    "TRANSFERRED", "Baseline", "Benign", "Plan", "add_bumps", "ar1", "circadian", "draw_baseline", "draw_benign",
    "draw_demographics", "draw_plan", "episode_course", "episode_deltas", "fever_profile", "latent_paths", "severity",
]
