"""One patient's stream: the unit every mode (cohort, live ward) is built from.

``generate_patient`` is a pure function of its seed key: it draws the archetype (unless given),
demographics and the planned course from the key's first child stream, then physiology, nurse
charting and devices from the next child. Nothing is redrawn: the patient's ``events`` are whatever
the sampled, artefact-free readings (monitor and charted, as the service stores them) show — the first
sustained threshold crossing (``detect``, the rule of ``models.labels``) of *any* patient, with the archetype
as ``kind``. The nurse's charted sets are readings with source ``charted`` and, whole, ``charted_sets`` /
``observation_sets`` (the ``POST /v1/observations`` bodies a live sink sends instead of those readings).
A stable patient may cross (a hard negative that the label calls an event), and a deteriorating one may stop
short of its threshold (treated in time) or cross and resolve on the ward.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from models.schema import ACVPU_CODES, VITALS
from simulator import detect, devices, nurse, physiology
from simulator.archetypes import EVENT_ARCHETYPES, TRANSFERRED, draw_archetype, normalise_mix
from simulator.devices import CHARTED_VITALS, QUALITIES, SOURCES, DeviceSpec, Samples

logger = logging.getLogger(__name__)

DEFAULT_DEVICES: Final[DeviceSpec] = DeviceSpec()
#: who charted a simulated set (the ``by`` of ``POST /v1/observations``)
NURSE: Final[str] = "sim-nurse"
SET_COLUMNS: Final[tuple[str, ...]] = ("patient_id", "ts", "observed_at", "rr", "spo2", "spo2_scale", "o2", "sbp",
                                       "hr", "acvpu", "temp", "by")


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
    source: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int8))  # int8 codes into SOURCES
    spo2_scale: int = 1  # the NEWS2 SpO2 scale the ward charts this patient on (2: hypercapnic COPD, 88–92 %)
    #: the nurse's rounds documented before monitoring ended: bedside time (epoch ms), the RR she counted (/min),
    #: the documentation time (the set's ``ts``, epoch ms) and every value of the set (``devices.CHARTED_VITALS``)
    nurse_rr_ms: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    nurse_rr: np.ndarray = field(default_factory=lambda: np.empty(0))
    nurse_doc_ms: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    nurse_values: dict[str, np.ndarray] = field(default_factory=dict)
    traits: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts_ms)

    def frame(self) -> pd.DataFrame:
        """Readings as a DataFrame: patient_id, ts (datetime64[ns, UTC]), vital, value, quality, source."""
        n = len(self.ts_ms)
        source = self.source if len(self.source) == n else np.zeros(n, dtype=np.int8)
        return pd.DataFrame({
            "patient_id": pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [self.patient["patient_id"]]),
            "ts": pd.to_datetime(self.ts_ms, unit="ms", utc=True).astype("datetime64[ns, UTC]"),
            "vital": pd.Categorical.from_codes(self.vital, list(VITALS)),
            "value": self.value,
            "quality": pd.Categorical.from_codes(self.quality, list(QUALITIES)),
            "source": pd.Categorical.from_codes(source, list(SOURCES)),
        })

    def observation_sets(self) -> list[tuple[int, dict]]:
        """The nurse's sets as ``POST /v1/observations`` bodies with their documentation time (epoch ms: the set's
        ``ts``, and when it is delivered, within seconds), in time order."""
        pid = self.patient["patient_id"]
        out = []
        for k, doc in enumerate(self.nurse_doc_ms.tolist()):
            v = {name: float(x[k]) for name, x in self.nurse_values.items()}
            body = {"patient_id": pid, "ts": _iso(doc), "rr": v["rr"], "spo2": v["spo2"], "spo2_scale": self.spo2_scale,
                    "o2": v["o2"], "sbp": v["sbp"], "hr": v["hr"], "acvpu": ACVPU_CODES[round(v["acvpu"])],
                    "temp": v["temp"], "by": NURSE}
            out.append((doc, body))
        return out

    def charted_sets(self) -> pd.DataFrame:
        """The nurse's sets as a DataFrame (``SET_COLUMNS``; ``ts`` documented, ``observed_at`` at the bedside)."""
        rows = [{**body, "ts": pd.Timestamp(doc, unit="ms", tz="UTC"),
                 "observed_at": pd.Timestamp(bedside, unit="ms", tz="UTC")}
                for (doc, body), bedside in zip(self.observation_sets(), self.nurse_rr_ms.tolist(), strict=True)]
        frame = pd.DataFrame(rows, columns=list(SET_COLUMNS))
        for c in ("ts", "observed_at"):
            frame[c] = pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]")
        return frame


def _iso(epoch_ms: int) -> str:
    """ISO 8601, ms, ``Z`` (as the ward's readings carry it)."""
    return str(np.datetime_as_string(np.datetime64(int(epoch_ms), "ms"), unit="ms", timezone="UTC"))


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
    ts, vital, value, is_charted = detect.clean_unique(samples.t_ms, samples.vital, samples.value, samples.quality,
                                                       samples.source)
    onset = detect.first_onset(ts + start_ms, vital, value, is_charted)

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
    doc_ms = np.round(charted.doc_s * 1000.0).astype(np.int64) + start_ms
    kept = (doc_ms < end_ms) & (charted.doc_s < horizon_s)  # documented while the patient is monitored here
    values = charted.values()
    return PatientStream(patient=patient, events=events, start_ms=start_ms, end_ms=end_ms,
                         ts_ms=delivered.t_ms + start_ms, deliver_ms=at + start_ms, vital=delivered.vital,
                         value=delivered.value, quality=delivered.quality, source=delivered.source,
                         spo2_scale=base.spo2_scale,
                         nurse_rr_ms=np.round(charted.t_s[kept] * 1000.0).astype(np.int64) + start_ms,
                         nurse_rr=charted.rr[kept], nurse_doc_ms=doc_ms[kept],
                         nurse_values={v: values[v][kept] for v in CHARTED_VITALS},
                         traits=_traits(base, course))


def _traits(base: physiology.Baseline, course: physiology.Plan) -> dict[str, object]:
    """What the simulator knows about the patient and no reading says (for the realism report, never a feature)."""
    return {"chronic": base.chronic, "opioid": base.opioid, "delirium": base.delirium, "af": base.af_cv > 0,
            "shape": course.shape if course.archetype in EVENT_ARCHETYPES else "",
            "stops_short": course.peak < 1.0, "resolves": course.resolves}


__all__ = ["NURSE", "SET_COLUMNS", "PatientStream", "Samples", "generate_patient", "to_epoch_ms"]
