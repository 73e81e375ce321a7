"""Patient physiology: personal baselines, circadian rhythm, autocorrelated variability, coupling, trajectories.

Everything here is a *latent* (noise-free of device error) path on a one-minute grid; ``devices``
samples it at each device's rate and adds beat-to-beat variability, measurement noise and artefacts.

Model (per patient, minute grid ``t``)::

    hr(t)   = hr0   + 5.0 c(t) + AR(2.5 bpm, 5 min) + AR(4 bpm, 45 min) + 2.5 a(t) + s(t) D_hr  + 8 ΔT(t)
    sbp(t)  = sbp0  + 6.0 c(t) + AR(6 mmHg, 60 min)                    + 3.0 a(t) + s(t) D_sbp
    rr(t)   = rr0 e^AR(0.05, 20 min) + 0.7 c(t)                        + 0.5 a(t) + s(t) D_rr  + 1.2 ΔT(t)
    spo2(t) = spo20            + AR(0.6 %, 20 min)                     - 0.2 a(t) + s(t) D_spo2
    temp(t) = temp0 + 0.25 c(t) + AR(0.12 °C, 90 min)                             + ΔT(t)

``c(t) = cos(2π (hour − 16) / 24)`` is the circadian rhythm (peak 16:00, nadir 04:00, clock time
taken as UTC), ``a(t)`` a shared arousal factor (AR, 20 min), ``AR(sd, τ)`` a stationary AR(1) process.
Coupling: fever raises HR by 8 bpm/°C (Liebermeister) and RR by 1.2 /min/°C; hypovolaemia raises HR
while SBP falls; respiratory failure lowers SpO2 and raises RR and HR.

Trajectories: ``s(t) ∈ [0, 1]`` is the severity of the patient's episode, an accelerating drift
``((t − t0) / (t_full − t0))^1.5`` from the start of the prodrome to the planned crossing. Prodromes vary
(``PRODROME_SHAPES``): 2–6 h of drift, 15–60 min, 2–6 h that comes and goes, or 2–10 min with nothing visible
before (most bradyarrhythmias: high-grade block is abrupt). The primary vital's amplitude ``D`` is solved so
that the mean path crosses its threshold at the planned time, with ``D`` reaching ``EXCESS`` beyond the
threshold at full severity (severity at the crossing ``s_plan`` ∈ [0.45, 0.85]). Courses vary too: most
patients keep worsening and leave the ward 3–10 h after the onset (``TRANSFER_AFTER_H``; 2–5 h for shock);
``RESOLVES_SHARE`` are treated on the ward and recover; ``STOPS_SHORT_SHARE`` peak below their threshold (no
event unless noise carries them over). New confusion is charted from a severity drawn per patient, often
before the onset.

Stable patients include (``draw_baseline``) hard negatives that run near a threshold all day — 5 % with
hypercapnic COPD on long-term oxygen (SpO2 90.6–93 %, NEWS2 scale 2), 5 % with a persistent sinus tachycardia
(100–108 /min), 6 % on antihypertensives (systolic 102–112 mmHg) — and 12 % in atrial fibrillation (irregular
R–R intervals: a right-skewed beat-to-beat heart rate, mean 90–105 /min), 15 % with nocturnal intermittent
hypoxaemia (sleep apnoea), 35 % on parenteral opioids (respiratory depression at night), a few elderly with
delirium. Every patient has brief benign episodes (``Benign``) at the rates of continuous ward-monitoring
studies. Nothing is redrawn: the *recorded* onset is the first sustained crossing that ``detect`` finds on the
sampled, artefact-free readings, whatever the archetype (the label decides, not the plan).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from scipy.signal import lfilter

from models.labels import HR_HIGH as HR_HIGH_BPM
from models.labels import HR_LOW as HR_LOW_BPM
from models.labels import SBP_LOW as SBP_LOW_MMHG
from models.labels import SPO2_LOW as SPO2_LOW_PCT
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
#: personal resting rate of ward patients, log-normal between patients; most of the spread of the ward's RR is
#: between patients, little within one (Posthuma 2020: median 15, IQR 13–19 /min over all readings; a patient's
#: 5-minute rate stays within a few breaths of its own level outside brief episodes)
RR_MEDIAN = 16.5
RR_LOG_SD = 0.12
RR_WITHIN_LOG_SD = 0.05  # slow (20-min) within-patient variation of the resting rate
RR_BASE_RANGE = (13.0, 24.0)  # resting rates outside it are not a stable patient's
SLOW_RR_PER_NIGHT = 0.1  # slow breathing in deep sleep (× 0.55–0.75 for 5–15 min), everyone
FAST_RR_PER_DAY = 0.35  # benign tachypnoea (exertion, pain, anxiety): +6–14 /min for 3–15 min
#: hours from the (recorded) onset to the transfer out (rapid response, review, ICU bed): escalation and
#: review take hours on a real ward, and some patients are treated on the ward for a while first
TRANSFER_AFTER_H = (3.0, 10.0)
SHOCK_TRANSFER_AFTER_H = (2.0, 5.0)  # hypotension is escalated fastest (fluids, critical care review)
COPD_SHARE = 0.05  # stable patients with hypercapnic COPD on long-term oxygen (NEWS2 scale 2)
AF_SHARE = 0.12  # stable patients in atrial fibrillation
NIGHT_DIPS_SHARE = 0.15  # stable patients with nocturnal intermittent hypoxaemia (sleep apnoea, opioids)
NIGHT_HOURS = (23.0, 6.0)  # clock hours (UTC, as ``circadian``) of sleep
#: Hard negatives (stable patients near a threshold all day; the label, not the simulator, decides):
CHRONIC_TACHY_SHARE = 0.05  # persistent sinus tachycardia, resting mean 100–108 /min (NEWS2 2 points)
CHRONIC_TACHY_BPM = (100.0, 108.0)
LOW_BP_SHARE = 0.06  # on antihypertensives: resting systolic 102–112 mmHg (NEWS2 1–2), lowest at night
LOW_BP_MMHG = (102.0, 112.0)
#: parenteral opioids (PRODIGY: 46 % of such ward patients had ≥ 1 respiratory-depression episode in a median 24 h)
OPIOID_SHARE = 0.35
DELIRIUM_SHARE = 0.06  # of stable patients aged ≥ 75 (in the ``more`` draw's band after the opioid share)


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
    opioid: bool = False  # parenteral opioids: nocturnal respiratory-depression episodes (``Benign.slow_rr``)
    delirium: bool = False  # an elderly patient with delirium: new confusion charted at some rounds, no event
    chronic: str = ""  # hard negative running near a threshold all day: tachycardia | hypotension | copd


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
    confused: bool = False  # new confusion when the severity passes ``confusion_at``
    confusion_at: float = 0.85  # severity at which confusion is charted (sometimes before the onset)
    shape: str = "gradual"  # prodrome shape: one of ``PRODROME_SHAPES``
    wobble: tuple[float, float, float] = (0.0, HOUR, 0.0)  # fluctuating prodrome: (amplitude, period s, phase)
    peak: float = 1.0  # highest severity reached (< s_plan: the episode stops short of its threshold)
    resolves: bool = False  # treated on the ward: back to baseline after ``plateau_s``, no transfer
    fever_peak_c: float = 38.5
    fever_start_s: float = 0.0
    fever_shape_s: tuple[float, float, float] = (2 * HOUR, 6 * HOUR, 3 * HOUR)  # rise, plateau, fall
    deltas: dict[str, float] = field(default_factory=dict)


#: Prodrome shapes of a deterioration (the time from the first visible change to the planned crossing):
#: hours of smooth drift, under an hour, hours that come and go, or nothing visible before the event.
PRODROME_SHAPES: Final[tuple[str, ...]] = ("gradual", "short", "fluctuating", "abrupt")
PRODROME_H: Final[dict[str, tuple[float, float]]] = {
    "gradual": (2.0, 6.0), "short": (0.25, 1.0), "fluctuating": (2.0, 6.0), "abrupt": (1 / 30, 1 / 6),
}
SHAPE_WEIGHTS: Final[tuple[float, ...]] = (0.4, 0.2, 0.2, 0.2)
#: high-grade heart block is usually abrupt (a drifting sinus bradycardia is the minority)
BRADY_SHAPE_WEIGHTS: Final[tuple[float, ...]] = (0.2, 0.1, 0.0, 0.7)
STOPS_SHORT_SHARE = 0.12  # treated in time: the episode peaks below its threshold, then resolves (no event)
RESOLVES_SHARE = 0.2  # crosses, then is treated on the ward and resolves (no transfer)
CONFUSION_AT = (0.2, 0.9)  # severity at which new confusion is charted: often before the onset (s_plan ≈ 0.45–0.85)


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
        return Plan(archetype, episode=FEVER, fever_peak_c=float(rng.uniform(38.3, 39.4)),
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
    weights = BRADY_SHAPE_WEIGHTS if episode == BRADY else SHAPE_WEIGHTS
    shape = PRODROME_SHAPES[int(rng.choice(len(PRODROME_SHAPES), p=weights))]
    prodrome_s = float(rng.uniform(*PRODROME_H[shape]) * HOUR)
    wobble = (float(rng.uniform(0.25, 0.5)), float(rng.uniform(0.5, 1.5) * HOUR), float(rng.uniform(0, 2 * np.pi)))
    fate = rng.random()
    # planned crossings inside a caller's window (the live ward's early deteriorations) always reach their peak
    stops_short = archetype in TRANSFERRED and onset_window_s is None and fate < STOPS_SHORT_SHARE
    resolves = archetype in TRANSFERRED and (stops_short or fate < STOPS_SHORT_SHARE + RESOLVES_SHARE)
    return Plan(
        archetype, episode=episode, t_plan_s=float(rng.uniform(lo, hi)), prodrome_s=prodrome_s,
        s_plan=float(rng.uniform(0.6, 0.8)), primary=primary, plateau_s=float(rng.uniform(0.5, 2) * HOUR),
        recover_s=float(rng.uniform(1, 3) * HOUR) if resolves else float(rng.uniform(3, 6) * HOUR),
        transfer_after_s=float(rng.uniform(*transfer_h) * HOUR),
        confused=bool(rng.random() < 0.6), confusion_at=float(rng.uniform(*CONFUSION_AT)),
        shape=shape, wobble=wobble if shape == "fluctuating" else (0.0, HOUR, 0.0),
        peak=float(rng.uniform(0.5, 0.85)) if stops_short else 1.0, resolves=resolves,
    )


def draw_baseline(rng: np.random.Generator, age: int, sex: str, archetype: str) -> Baseline:
    female = sex == "F"
    hr = rng.normal(80.0 + 3.0 * female - 0.08 * (age - 66), 12.0)
    # the resting range of patients without a chronic near-threshold condition (those are drawn below)
    hr = float(np.clip(hr, 62.0, 86.0 if archetype == FEVER else 100.0))
    sbp = float(np.clip(rng.normal(125.0 + 0.35 * (age - 66) - 3.0 * female, 21.0), 110.0, 200.0))
    rr = float(np.clip(RR_MEDIAN * math.exp(rng.normal(0.0, RR_LOG_SD)), RR_BASE_RANGE[0], RR_BASE_RANGE[1]))
    spo2 = float(np.clip(rng.normal(97.2 - 0.03 * (age - 66), 1.3), 93.5, 99.6))
    hr_fast_sd, af_cv = float(np.clip(4.0 - 0.025 * (age - 40), 2.0, 4.5)), 0.0
    chronic_o2, scale, chronic = 0.0, 1, ""
    kind, dips, more = rng.random(), rng.random(), rng.random()
    if archetype == STABLE and kind < COPD_SHARE:
        # COPD with hypercapnic (type 2) respiratory failure on long-term oxygen: NEWS2 scale 2, target 88–92 %;
        # a hard negative: the window mean runs 90–93 % all day (NEWS2 scale 1 would score it 3; scale 2 scores 0)
        chronic_o2, scale, chronic = float(rng.choice([1.0, 2.0])), 2, "copd"
        spo2 = float(np.clip(rng.normal(91.8, 0.6), 90.6, 93.0))
    elif archetype == STABLE and kind < COPD_SHARE + CHRONIC_TACHY_SHARE:
        # persistent sinus tachycardia (pain, anaemia, anxiety, thyrotoxicosis) running below 110–120 /min
        hr, chronic = float(rng.uniform(*CHRONIC_TACHY_BPM)), "tachycardia"
    elif archetype == STABLE and kind < COPD_SHARE + CHRONIC_TACHY_SHARE + LOW_BP_SHARE:
        # on antihypertensives (or frail and dry): a systolic of 100–110 that dips at night
        sbp, chronic = float(rng.uniform(*LOW_BP_MMHG)), "hypotension"
    elif archetype == STABLE and kind < COPD_SHARE + CHRONIC_TACHY_SHARE + LOW_BP_SHARE + AF_SHARE:
        # atrial fibrillation, partly rate-controlled (mean ventricular rate 88–108 /min): irregularly
        # irregular R–R intervals (CV 10–16 %), so the beat-to-beat heart rate is right-skewed and often above
        # 120 /min for a few seconds while the 5-minute mean stays well below it.
        hr = float(np.clip(rng.normal(97.0, 4.0), 90.0, 105.0))
        hr_fast_sd, af_cv = 1.0, float(rng.uniform(0.12, 0.15))
    night_dips = 0.0
    if archetype == STABLE and scale == 1 and spo2 >= 94.0 and dips < NIGHT_DIPS_SHARE:
        # sleep-disordered breathing or opioids: repeated brief desaturations at night (obstructive apnoeas)
        night_dips = float(rng.uniform(6.0, 20.0))
    opioid = archetype == STABLE and more < OPIOID_SHARE
    delirium = archetype == STABLE and age >= 75 and OPIOID_SHARE <= more < OPIOID_SHARE + DELIRIUM_SHARE
    return Baseline(
        hr=hr, sbp=sbp, dbp_offset=float(rng.normal(15.0, 5.0)), rr=rr, spo2=spo2,
        temp=float(np.clip(rng.normal(36.6, 0.42), 35.3, 37.6)),
        hr_fast_sd=hr_fast_sd, chronic_o2=chronic_o2, spo2_scale=scale, af_cv=af_cv, night_dips_per_h=night_dips,
        opioid=opioid, delirium=delirium, chronic=chronic,
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
    x = np.clip((t - t0) / (t_full - t0), 0.0, 1.0)
    s = x ** GAMMA
    amp, period, phase = plan.wobble
    if amp > 0:  # fluctuating prodrome: comes and goes before the crossing, then settles on the drift
        fade = np.clip((plan.t_plan_s - t) / (0.25 * plan.prodrome_s), 0.0, 1.0)
        s = np.clip(s * (1.0 + amp * fade * np.sin(2.0 * np.pi * (t - t0) / period + phase)), 0.0, 1.0)
    s = np.minimum(s, plan.peak)
    if plan.archetype == RECOVERY or plan.resolves:
        t_peak = t0 + (t_full - t0) * plan.peak ** (1.0 / GAMMA)
        u = np.clip((t - (t_peak + plan.plateau_s)) / plan.recover_s, 0.0, 1.0)
        s = s * (1.0 - u * u * (3.0 - 2.0 * u))
    return s


def fever_profile(plan: Plan, t: np.ndarray) -> np.ndarray:
    """Fever-archetype shape in [0, 1]: smooth rise, plateau, smooth fall."""
    rise, plateau, fall = plan.fever_shape_s
    x = t - plan.fever_start_s
    up = np.clip(x / rise, 0.0, 1.0)
    down = np.clip((x - rise - plateau) / fall, 0.0, 1.0)
    return up * up * (3 - 2 * up) * (1.0 - down * down * (3 - 2 * down))


#: How far beyond its threshold (``models.labels``: the NEWS2 "3" edges) the primary vital's mean path goes at
#: full severity (uniform range): the event phase of a deterioration that is not yet treated — septic or
#: bleeding tachycardia 133–140 /min (a secondary tachycardia stops at ``HR_CEILING``), shock with a systolic of
#: 78–85 mmHg, SpO2 76–83 % before oxygen (79–85 % on it), complete heart block with a 28–35 /min escape rhythm.
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
        d = {"temp": u(1.4, 2.2), "rr": u(8, 14), "spo2": -u(2, 5), "sbp": -u(22, 32), "hr": u(16, 28)}
    elif ep == RESPIRATORY:
        d = {"temp": u(0, 0.4), "rr": u(12, 20), "spo2": -6.0, "sbp": u(0, 8), "hr": u(12, 20)}
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
        d["hr"] = -min(max(need / s, 5.0), base.hr - 28.0)
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
    # breathing varies a lot within a patient and is right-skewed (Posthuma 2020: median 15, IQR 13–19 /min)
    rr = (base.rr * np.exp(ar1(rng, n, RR_WITHIN_LOG_SD, 20.0)) + 0.7 * c + 0.5 * arousal + sev * deltas.get("rr", 0.0)
          + FEVER_RR_PER_C * d_temp)
    spo2 = base.spo2 + ar1(rng, n, 0.6, 20.0) - 0.2 * arousal + sev * deltas.get("spo2", 0.0)
    temp = base.temp + 0.25 * c + ar1(rng, n, 0.12, 90.0) + d_temp
    # the resting rate a nurse counts over 30 s: without the minute-to-minute swings of the impedance signal
    rr_rest = base.rr + 0.7 * c + sev * deltas.get("rr", 0.0) + FEVER_RR_PER_C * d_temp
    return {"hr": hr, "sbp": sbp, "rr": rr, "spo2": spo2, "temp": temp, "sev": sev, "rr_rest": rr_rest}


@dataclass(frozen=True)
class Benign:
    """Brief physiological events of any ward patient: (start_s, duration_s, amplitude) arrays.

    Rates and sizes follow continuous ward-monitoring studies (the realism report states each source
    and compares the simulated rates with it): most episodes are brief and never make a sustained
    event; a few touch or cross a threshold, and the label (``models.labels``) decides what they are.
    """

    tachy: np.ndarray  # HR +15–35 bpm for 1–4 min (mobilising, toilet, pain), 4 per day
    desat: np.ndarray  # SpO2 −5 to −14 % for 0.5–2.5 min (position, sleep apnoea), 6 per day; with
    #                    ``Baseline.night_dips_per_h``: also −4 to −10 % for 20–60 s, 6–20 per hour of sleep;
    #                    with ``Baseline.opioid``: −6 to −12 % with each respiratory-depression episode
    hypox: np.ndarray  # SpO2 lowered to a nadir (amplitude = baseline − nadir) for 30–180 min (atelectasis,
    #                    position, hypoventilation), ``HYPOX_PER_DAY``; nadir 90.5–92.5 %, in 10 % of them 88.5–90.5 %
    #                    for 6–14 min (a brief touch of the 90 % line)
    fast_rr: np.ndarray  # RR +6–14 /min for 3–15 min (exertion, pain, anxiety), ``FAST_RR_PER_DAY``
    slow_rr: np.ndarray  # RR × factor: × 0.55–0.75 for 5–15 min in sleep (``SLOW_RR_PER_NIGHT``); with
    #                      ``Baseline.opioid`` also × 0.2–0.4 for 3–8 min, 0–2 per night (respiratory depression)


HYPOX_PER_DAY = 0.7
HYPOX_TOUCH_SHARE = 0.1


def _poisson_events(rng: np.random.Generator, horizon_s: float, per_day: float, dur: tuple[float, float],
                    amp: tuple[float, float]) -> np.ndarray:
    k = int(rng.poisson(per_day * horizon_s / DAY))
    out = np.empty((k, 3))
    out[:, 0] = np.sort(rng.uniform(0.0, horizon_s, k))
    out[:, 1] = rng.uniform(*dur, k)
    out[:, 2] = rng.uniform(*amp, k)
    return out


def _at_night(events: np.ndarray, start_s: float) -> np.ndarray:
    hour = ((start_s + events[:, 0]) / HOUR) % 24.0
    return events[(hour >= NIGHT_HOURS[0]) | (hour < NIGHT_HOURS[1])]


def _merge(*parts: np.ndarray) -> np.ndarray:
    out = np.vstack(parts)
    return out[np.argsort(out[:, 0], kind="stable")]


def draw_benign(rng: np.random.Generator, horizon_s: float, start_s: float = 0.0,
                base: Baseline | None = None) -> Benign:
    desat = _poisson_events(rng, horizon_s, 6.0, (30, 150), (5, 14))
    slow_rr = _at_night(_poisson_events(rng, horizon_s, SLOW_RR_PER_NIGHT * 24 / 7, (300, 900), (0.55, 0.75)), start_s)
    if base is not None and base.night_dips_per_h > 0:
        dips = _poisson_events(rng, horizon_s, base.night_dips_per_h * 24.0, (20, 60), (5, 14))
        desat = _merge(desat, _at_night(dips, start_s))
    if base is not None and base.opioid:
        # opioid-induced respiratory depression: slow shallow breathing for minutes, with a desaturation
        per_night = float(rng.uniform(0.0, 2.0))
        rd = _at_night(_poisson_events(rng, horizon_s, per_night * 24 / 7, (180, 480), (0.2, 0.4)), start_s)
        slow_rr = _merge(slow_rr, rd)
        with_desat = rd.copy()
        with_desat[:, 2] = rng.uniform(6, 12, len(rd))
        desat = _merge(desat, with_desat)
    hypox = _poisson_events(rng, horizon_s, HYPOX_PER_DAY, (1800, 10800), (0, 0))
    spo2 = 97.0 if base is None else base.spo2
    touch = rng.random(len(hypox)) < HYPOX_TOUCH_SHARE
    nadir = np.where(touch, rng.uniform(88.5, 90.5, len(hypox)), rng.uniform(90.5, 92.5, len(hypox)))
    hypox[:, 1] = np.where(touch, rng.uniform(360, 840, len(hypox)), hypox[:, 1])
    hypox[:, 2] = np.maximum(spo2 - nadir, 0.0)
    return Benign(
        tachy=_poisson_events(rng, horizon_s, 4.0, (60, 240), (15, 35)),
        desat=desat,
        hypox=hypox[hypox[:, 2] > 0],
        fast_rr=_poisson_events(rng, horizon_s, FAST_RR_PER_DAY, (180, 900), (6, 14)),
        slow_rr=slow_rr,
    )


def add_bumps(t: np.ndarray, y: np.ndarray, events: np.ndarray, *, multiply: bool = False,
              ramp: float = 3.0) -> None:
    """Add (or, with ``multiply``, scale toward a factor) a flat-topped bump per event, in place. ``t`` sorted.

    The bump is ``min(1, ramp · sin(π (t − start) / duration))``: ``ramp`` 3 is nearly flat-topped, 1 a sine."""
    for start, dur, amp in events:
        i, j = np.searchsorted(t, [start, start + dur])
        if i == j:
            continue
        shape = np.clip(ramp * np.sin(np.pi * (t[i:j] - start) / dur), 0.0, 1.0)
        if multiply:
            y[i:j] *= 1.0 - shape * (1.0 - amp)
        else:
            y[i:j] += amp * shape


__all__ = [
    "TRANSFERRED", "Baseline", "Benign", "Plan", "add_bumps", "ar1", "circadian", "draw_baseline", "draw_benign",
    "draw_demographics", "draw_plan", "episode_course", "episode_deltas", "fever_profile", "latent_paths", "severity",
]
