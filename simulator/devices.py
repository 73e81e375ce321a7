"""Bedside devices: sampling rates, artefacts with data-quality flags, gaps, and delivery to the ward network.

==============  =========  ===================================================================
device          vitals     rate and behaviour
==============  =========  ===================================================================
ECG monitor     hr         1 Hz; beat-to-beat AR(1) spread 2–4.5 bpm (falls with age and illness);
                           motion artefact spikes flagged ``motion``; leads-off gaps (no readings)
impedance       rr         every minute, from the ECG leads (shares their gaps); minute-to-minute spread
                           1.5 /min, nearly independent from minute to minute (a 5-minute mean
                           varies far less than a reading); talking and moving read 5–18 /min
                           high, 4 per day, flagged ``motion`` (the monitor's motion detection on
                           the impedance signal), as are the ECG's motion spells
pulse oximeter  spo2       every 30 s, whole per cent; probe-off drops read 50–82 % flagged
                           ``probe_off``; motion flagged ``motion``; cold peripheries ``low_perfusion``
temperature     temp       every 5 min (continuous probe), 0.1 °C; probe gaps
NIBP cuff       sbp, dbp   every 15 min; 3 % failed cycles (no reading); 1 % motion-flagged
nurse           a full     at NEWS2-paced rounds (``nurse``): rr (her count), spo2, hr, sbp, temp, acvpu,
                set        o2, source ``charted``, all stamped when documented (1–30 min after the
                           observation) and forwarded together within seconds (one delivery per set)
==============  =========  ===================================================================

Every device has its own phase (ms offset), so timestamps carry milliseconds. The patient also
leaves the ward now and then (0.15 per day, 30–90 min: no monitor readings at all).

Delivery (``deliver``): monitor readings reach the network after a log-normal latency (median
0.6 s, so consecutive 1 Hz readings sometimes overtake each other), NIBP after ~2 s, a charted set
whole after ~2 s (its ``ts`` is already its documentation time, 1–30 min after the bedside
observation); network outages (3 per day per monitor, 10 s–5 min) buffer monitor readings and flush them
late at the outage end; 0.1 % of monitor readings are delivered twice (a retransmission 1–60 s later: a
duplicate row with the same patient, vital, ts, value, quality and source).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from models.schema import PLAUSIBLE_RANGES, VITALS
from simulator.nurse import Charted
from simulator.physiology import DAY, Baseline, Benign, add_bumps, ar1

HYPOX_RAMP = 1.3  # slow desaturations: gentler flanks than the brief dips (see ``add_bumps``)

QUALITIES: Final[tuple[str, ...]] = ("ok", "probe_off", "motion", "low_perfusion")
Q_OK, Q_PROBE_OFF, Q_MOTION, Q_LOW_PERFUSION = range(4)
#: reading sources (``models.schema.SOURCES`` order): the monitor's stream, or a nurse's charted set
SOURCES: Final[tuple[str, ...]] = ("monitor", "charted")
S_MONITOR, S_CHARTED = range(2)
#: the vitals of a charted set, in the order its readings are written
CHARTED_VITALS: Final[tuple[str, ...]] = ("rr", "spo2", "o2", "sbp", "hr", "acvpu", "temp")
VCODE: Final[dict[str, int]] = {v: i for i, v in enumerate(VITALS)}
MONITOR_VITALS: Final[tuple[str, ...]] = ("hr", "spo2", "rr", "temp", "sbp", "dbp")


@dataclass(frozen=True)
class DeviceSpec:
    hr_interval_s: float = 1.0
    spo2_interval_s: float = 30.0
    rr_interval_s: float = 60.0
    rr_noise_sd: float = 1.5  # /min, minute-to-minute spread of the impedance rate (breath-to-breath: averages out)
    rr_overcount_per_day: float = 4.0  # talking, eating, moving: the impedance rate reads 5–18 /min high
    temp_interval_s: float = 300.0
    nibp_interval_s: float = 900.0
    motion_per_day: float = 8.0
    probe_off_per_day: float = 4.0
    low_perfusion_per_day: float = 1.0
    ecg_gaps_per_day: float = 1.5
    oximeter_gaps_per_day: float = 2.0
    temp_gaps_per_day: float = 0.5
    off_ward_per_day: float = 0.15
    nibp_fail_prob: float = 0.03
    nibp_motion_prob: float = 0.01
    outages_per_day: float = 3.0
    duplicate_prob: float = 0.001


@dataclass
class Samples:
    """Measured readings of one patient: ``t_ms`` since admission, vital and quality codes."""

    t_ms: np.ndarray  # int64
    vital: np.ndarray  # int8, index into VITALS
    value: np.ndarray  # float64
    quality: np.ndarray  # int8, index into QUALITIES
    source: np.ndarray  # int8, index into SOURCES

    def take(self, keep: np.ndarray) -> Samples:
        return Samples(self.t_ms[keep], self.vital[keep], self.value[keep], self.quality[keep], self.source[keep])


def _intervals(rng: np.random.Generator, horizon_s: float, per_day: float, dur: tuple[float, float]) -> np.ndarray:
    k = int(rng.poisson(per_day * horizon_s / DAY))
    start = np.sort(rng.uniform(0.0, horizon_s, k))
    return np.column_stack([start, start + rng.uniform(*dur, k)]) if k else np.empty((0, 2))


def _gap_durations(rng: np.random.Generator, horizon_s: float, per_day: float) -> np.ndarray:
    k = int(rng.poisson(per_day * horizon_s / DAY))
    start = np.sort(rng.uniform(0.0, horizon_s, k))
    dur = np.clip(rng.lognormal(np.log(180.0), 1.0, k), 20.0, 2700.0)
    return np.column_stack([start, start + dur]) if k else np.empty((0, 2))


def _inside(t: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Mask of sorted times ``t`` inside any [a, b) span."""
    mask = np.zeros(len(t), dtype=bool)
    for a, b in spans:
        i, j = np.searchsorted(t, [a, b])
        mask[i:j] = True
    return mask


def _grid(rng: np.random.Generator, horizon_s: float, interval_s: float) -> np.ndarray:
    """Device sample times (s since admission) with a ms phase of its own."""
    phase = round(float(rng.uniform(0.0, interval_s)), 3)
    return np.arange(phase, horizon_s, interval_s)


def _clip(vital: str, x: np.ndarray) -> np.ndarray:
    lo, hi = PLAUSIBLE_RANGES[vital]
    return np.clip(x, lo, hi)


def sample(rng: np.random.Generator, latent: dict[str, np.ndarray], tm: np.ndarray, horizon_s: float,
           base: Baseline, benign: Benign, charted: Charted, spec: DeviceSpec = DeviceSpec()) -> Samples:
    parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    off_ward = _intervals(rng, horizon_s, spec.off_ward_per_day, (1800.0, 5400.0))
    motion = _intervals(rng, horizon_s, spec.motion_per_day, (5.0, 60.0))
    ecg_gaps = np.vstack([_gap_durations(rng, horizon_s, spec.ecg_gaps_per_day), off_ward])

    # ECG heart rate, 1 Hz
    t = _grid(rng, horizon_s, spec.hr_interval_s)
    hr = np.interp(t, tm, latent["hr"])
    calm = 1.0 - 0.4 * np.interp(t, tm, latent["sev"])
    hr += ar1(rng, len(t), base.hr_fast_sd, 3.0) * calm
    if base.af_cv > 0:  # atrial fibrillation: rate = 60 / R–R interval, the interval irregular from beat to beat
        hr /= 1.0 + base.af_cv * np.clip(rng.standard_normal(len(t)), -2.5, 2.5)
    add_bumps(t, hr, benign.tachy)
    q = np.zeros(len(t), dtype=np.int8)
    for a, b in motion:
        i, j = np.searchsorted(t, [a, b])
        hr[i:j] += rng.uniform(-20.0, 50.0) + rng.normal(0.0, 20.0, j - i)
        q[i:j] = Q_MOTION
    keep = ~_inside(t, ecg_gaps)
    parts.append(("hr", t[keep], _clip("hr", np.round(hr[keep])), q[keep]))

    # impedance respiratory rate (ECG leads), every minute: breath-to-breath spread, and talking, eating or
    # moving read as fast breathing by the impedance monitor, flagged as motion (never scored)
    t = _grid(rng, horizon_s, spec.rr_interval_s)
    rr = np.interp(t, tm, latent["rr"])
    add_bumps(t, rr, benign.fast_rr)
    add_bumps(t, rr, benign.slow_rr, multiply=True)
    rr += ar1(rng, len(t), spec.rr_noise_sd, 0.5)
    q = np.zeros(len(t), dtype=np.int8)
    for a, b in _intervals(rng, horizon_s, spec.rr_overcount_per_day, (60.0, 240.0)):
        i, j = np.searchsorted(t, [a, b])
        rr[i:j] += rng.uniform(5.0, 18.0)
        q[i:j] = Q_MOTION
    q[_inside(t, motion)] = Q_MOTION
    keep = ~_inside(t, ecg_gaps)
    parts.append(("rr", t[keep], _clip("rr", np.round(rr[keep])), q[keep]))

    # pulse oximeter, every 30 s
    t = _grid(rng, horizon_s, spec.spo2_interval_s)
    spo2 = np.interp(t, tm, latent["spo2"]) + rng.normal(0.0, 0.5, len(t))
    desat = benign.desat.copy()
    desat[:, 2] *= -1.0
    add_bumps(t, spo2, desat)
    # slow desaturations set a nadir (amplitude = baseline − nadir): overlapping ones take the deeper, never the sum
    hypox = np.zeros(len(t))
    for episode in benign.hypox:
        one = np.zeros(len(t))
        add_bumps(t, one, episode[None, :], ramp=HYPOX_RAMP)
        np.maximum(hypox, one, out=hypox)
    spo2 -= hypox
    spo2 = np.minimum(spo2, 100.0)
    q = np.zeros(len(t), dtype=np.int8)
    for a, b in _intervals(rng, horizon_s, spec.low_perfusion_per_day, (120.0, 900.0)):
        i, j = np.searchsorted(t, [a, b])
        spo2[i:j] += rng.normal(-2.0, 3.0, j - i)
        q[i:j] = Q_LOW_PERFUSION
    for a, b in motion:
        i, j = np.searchsorted(t, [a, b])
        spo2[i:j] -= rng.uniform(0.0, 8.0, j - i)
        q[i:j] = Q_MOTION
    for a, b in _intervals(rng, horizon_s, spec.probe_off_per_day, (30.0, 600.0)):
        i, j = np.searchsorted(t, [a, b])
        spo2[i:j] = rng.uniform(50.0, 82.0, j - i)
        q[i:j] = Q_PROBE_OFF
    gaps = np.vstack([_gap_durations(rng, horizon_s, spec.oximeter_gaps_per_day), off_ward])
    keep = ~_inside(t, gaps)
    parts.append(("spo2", t[keep], _clip("spo2", np.round(spo2[keep])), q[keep]))

    # temperature probe, every 5 min
    t = _grid(rng, horizon_s, spec.temp_interval_s)
    temp = np.interp(t, tm, latent["temp"]) + rng.normal(0.0, 0.05, len(t))
    gaps = np.vstack([_gap_durations(rng, horizon_s, spec.temp_gaps_per_day), off_ward])
    keep = ~_inside(t, gaps)
    parts.append(("temp", t[keep], _clip("temp", np.round(temp[keep], 1)), np.zeros(int(keep.sum()), dtype=np.int8)))

    # NIBP cuff, every 15 min
    t = _grid(rng, horizon_s, spec.nibp_interval_s)
    sbp_lat = np.interp(t, tm, latent["sbp"])
    sbp = sbp_lat + rng.normal(0.0, 4.0, len(t))
    dbp = np.minimum(0.45 * sbp_lat + base.dbp_offset + rng.normal(0.0, 3.0, len(t)), sbp - 15.0)
    q = np.where(rng.random(len(t)) < spec.nibp_motion_prob, Q_MOTION, Q_OK).astype(np.int8)
    jolt = np.where(q == Q_MOTION, rng.uniform(-30.0, 40.0, len(t)), 0.0)
    keep = (rng.random(len(t)) >= spec.nibp_fail_prob) & ~_inside(t, off_ward)
    parts.append(("sbp", t[keep], _clip("sbp", np.round(sbp + jolt)[keep]), q[keep]))
    parts.append(("dbp", t[keep], _clip("dbp", np.round(dbp + 0.6 * jolt)[keep]), q[keep]))

    # the nurse's charted sets: every value of a set stamped with its documentation time
    doc_s = charted.doc_s if len(charted.doc_s) == len(charted.t_s) else charted.t_s
    keep = doc_s < horizon_s
    values = charted.values()
    n_monitor = sum(len(p[1]) for p in parts)
    for v in CHARTED_VITALS:
        x = values[v] if v in ("acvpu", "o2") else _clip(v, values[v])
        if len(x) == len(doc_s):
            parts.append((v, doc_s[keep], x[keep], np.zeros(int(keep.sum()), dtype=np.int8)))
    t_ms = np.concatenate([np.round(p[1] * 1000.0).astype(np.int64) for p in parts])
    source = np.full(len(t_ms), S_CHARTED, dtype=np.int8)
    source[:n_monitor] = S_MONITOR
    return Samples(
        t_ms=t_ms,
        vital=np.concatenate([np.full(len(p[1]), VCODE[p[0]], dtype=np.int8) for p in parts]),
        value=np.concatenate([p[2].astype(np.float64) for p in parts]),
        quality=np.concatenate([p[3] for p in parts]),
        source=source,
    )


def deliver(rng: np.random.Generator, s: Samples, horizon_s: float,
            spec: DeviceSpec = DeviceSpec()) -> tuple[Samples, np.ndarray]:
    """Delivery times (ms since admission) with outages and duplicates; returned sorted by delivery."""
    n = len(s.t_ms)
    nurse = s.source == S_CHARTED
    nibp = ((s.vital == VCODE["sbp"]) | (s.vital == VCODE["dbp"])) & ~nurse
    latency = rng.lognormal(np.log(600.0), 0.5, n)
    latency[nibp] = rng.lognormal(np.log(2000.0), 0.4, int(nibp.sum()))
    # charted sets are stamped when documented (``nurse.DOCUMENT_DELAY_MIN`` after the observation): the record
    # system forwards each set whole within seconds, so training and serving see it at the same time
    sets, which = np.unique(s.t_ms[nurse], return_inverse=True)
    latency[nurse] = rng.lognormal(np.log(2000.0), 0.5, len(sets))[which]
    at = s.t_ms + np.round(latency).astype(np.int64)
    order = np.argsort(s.t_ms, kind="stable")
    for a, b in _intervals(rng, horizon_s, spec.outages_per_day, (10.0, 300.0)):
        i, j = np.searchsorted(s.t_ms[order], [a * 1000.0, b * 1000.0])
        idx = order[i:j]
        idx = idx[~nurse[idx]]
        at[idx] = np.maximum(at[idx], int(b * 1000.0) + np.round(rng.lognormal(np.log(300.0), 0.5, len(idx))))
    dup = np.flatnonzero((rng.random(n) < spec.duplicate_prob) & ~nurse)  # a set is never half re-sent
    if len(dup):
        s = Samples(np.r_[s.t_ms, s.t_ms[dup]], np.r_[s.vital, s.vital[dup]], np.r_[s.value, s.value[dup]],
                    np.r_[s.quality, s.quality[dup]], np.r_[s.source, s.source[dup]])
        at = np.r_[at, at[dup] + rng.integers(1_000, 60_000, len(dup))]
    by_delivery = np.argsort(at, kind="stable")
    return s.take(by_delivery), at[by_delivery]
