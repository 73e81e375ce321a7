"""One patient's stream: the unit every mode (cohort, live ward) is built from.

``generate_patient`` is a pure function of its seed key: it draws the archetype (unless given),
demographics and the planned course from the key's first child stream, then physiology, nurse
charting and devices from the next child. Nothing is redrawn: the patient's ``events`` are whatever
the sampled, artefact-free readings show — the first sustained threshold crossing (``detect``, the
rule of ``models.labels``) of *any* patient, with the archetype as ``kind``. A stable patient may
cross (a hard negative that the label calls an event), and a deteriorating one may stop short of its
threshold (treated in time) or cross and resolve on the ward.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from models.schema import VITALS
from simulator import detect, devices, nurse, physiology
from simulator.archetypes import EVENT_ARCHETYPES, TRANSFERRED, draw_archetype, normalise_mix
from simulator.devices import Q_OK, QUALITIES, DeviceSpec, Samples

logger = logging.getLogger(__name__)

DEFAULT_DEVICES: Final[DeviceSpec] = DeviceSpec()


@dataclass
class PatientStream:
    """A patient's readings as arrays, in delivery order (duplicates included)."""

    patient: dict
    events: list[dict]
    start_ms: int  # admission, epoch ms
    end_ms: int  # end of monitoring (horizon, or transfer out), epoch ms
    ts_ms: np.ndarray  # measurement time, epoch ms (int64)
    deliver_ms: np.ndarray  # delivery time, epoch ms (int64), non-decreasing
    vital: np.ndarray  # int8 codes into models.schema.VITALS
    value: np.ndarray  # float64
    quality: np.ndarray  # int8 codes into devices.QUALITIES
    spo2_scale: int = 1  # the NEWS2 SpO2 scale the ward charts this patient on (2: hypercapnic COPD, 88–92 %)
    #: the respiratory rate the nurse counted at each round (bedside time, epoch ms; /min): not a reading (the
    #: schema has one ``rr``, the monitor's), kept for the realism report's charted NEWS2
    nurse_rr_ms: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    nurse_rr: np.ndarray = field(default_factory=lambda: np.empty(0))
    nurse_doc_ms: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # the set's reading ts
    traits: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts_ms)

    def frame(self) -> pd.DataFrame:
        """Readings as a DataFrame: patient_id, ts (datetime64[ns, UTC]), vital, value, quality."""
        n = len(self.ts_ms)
        return pd.DataFrame({
            "patient_id": pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [self.patient["patient_id"]]),
            "ts": pd.to_datetime(self.ts_ms, unit="ms", utc=True).astype("datetime64[ns, UTC]"),
            "vital": pd.Categorical.from_codes(self.vital, list(VITALS)),
            "value": self.value,
            "quality": pd.Categorical.from_codes(self.quality, list(QUALITIES)),
        })


def to_epoch_ms(ts: pd.Timestamp | str) -> int:
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:
        raise ValueError("start must be timezone-aware (e.g. '2026-01-05T00:00Z')")
    return int(stamp.tz_convert("UTC").value // 1_000_000)


def generate_patient(patient_id: str, seed_key: Sequence[int], start_ms: int, hours: float, *,
                     archetype: str | None = None, archetype_mix: Mapping[str, float] | None = None,
                     onset_window_h: tuple[float, float] | None = None,
                     spec: DeviceSpec = DEFAULT_DEVICES) -> PatientStream:
    if hours <= 0:
        raise ValueError("hours must be positive")
    horizon_s = float(hours) * 3600.0
    children = np.random.SeedSequence([int(k) for k in seed_key]).spawn(2)
    meta = np.random.default_rng(children[0])
    mix = normalise_mix(archetype_mix)
    arche = archetype or draw_archetype(meta, mix)
    age, sex = physiology.draw_demographics(meta)
    window_s = None if onset_window_h is None else (onset_window_h[0] * 3600.0, onset_window_h[1] * 3600.0)
    plan = physiology.draw_plan(meta, arche, horizon_s, window_s)
    start_s = start_ms / 1000.0
    tm = np.arange(0.0, horizon_s + 60.0, 60.0)
    wants_event = arche in EVENT_ARCHETYPES

    rng = np.random.default_rng(children[1])
    base = physiology.draw_baseline(rng, age, sex, arche)
    c_plan = float(physiology.circadian(start_s + plan.t_plan_s)) if wants_event else 0.0
    course = physiology.episode_course(rng, plan, base, c_plan)
    latent = physiology.latent_paths(rng, base, course, tm, start_s)
    benign = physiology.draw_benign(rng, horizon_s, start_s, base)
    charted = nurse.chart(rng, latent, tm, horizon_s, base, course)
    latent["spo2"] = latent["spo2"] + charted.spo2_lift
    samples = devices.sample(rng, latent, tm, horizon_s, base, benign, charted, spec)
    clean = samples.quality == Q_OK
    onset = detect.first_onset(samples.t_ms[clean] + start_ms, samples.vital[clean], samples.value[clean])

    end_ms = start_ms + round(horizon_s * 1000.0)
    events: list[dict] = []
    if onset is not None:
        onset_ms, criterion = onset
        events.append({"patient_id": patient_id, "kind": arche,
                       "onset": pd.Timestamp(onset_ms, unit="ms", tz="UTC"), "criterion": criterion})
        if arche in TRANSFERRED and not course.resolves:
            end_ms = min(end_ms, onset_ms + int(course.transfer_after_s * 1000.0))
            samples = samples.take(samples.t_ms + start_ms < end_ms)
    delivered, at = devices.deliver(rng, samples, horizon_s, spec)
    patient = {"patient_id": patient_id, "age": age, "sex": sex, "archetype": arche, "spo2_scale": base.spo2_scale}
    logger.debug("patient=%s archetype=%s events=%d rows=%d", patient_id, arche, len(events), len(at))
    counted = charted.t_s * 1000.0 + start_ms < end_ms
    return PatientStream(patient=patient, events=events, start_ms=start_ms, end_ms=end_ms,
                         ts_ms=delivered.t_ms + start_ms, deliver_ms=at + start_ms, vital=delivered.vital,
                         value=delivered.value, quality=delivered.quality, spo2_scale=base.spo2_scale,
                         nurse_rr_ms=np.round(charted.t_s[counted] * 1000.0).astype(np.int64) + start_ms,
                         nurse_rr=charted.rr[counted],
                         nurse_doc_ms=np.round(charted.doc_s[counted] * 1000.0).astype(np.int64) + start_ms,
                         traits=_traits(base, course))


def _traits(base: physiology.Baseline, course: physiology.Plan) -> dict[str, object]:
    """What the simulator knows about the patient and no reading says (for the realism report, never a feature)."""
    return {"chronic": base.chronic, "opioid": base.opioid, "delirium": base.delirium, "af": base.af_cv > 0,
            "shape": course.shape if course.archetype in EVENT_ARCHETYPES else "",
            "stops_short": course.peak < 1.0, "resolves": course.resolves}


__all__ = ["PatientStream", "Samples", "generate_patient", "to_epoch_ms"]
