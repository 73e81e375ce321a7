"""Live mode: a ward of beds whose readings are handed out by *delivery* time.

Each bed holds a sequence of admissions. The first admission of every bed starts at ``start``;
its archetype comes from a quota of the mix (default: the enriched mix, so that a demo shows
deteriorations within hours; a 24-bed ward then has 20 stable, one fever and three deteriorating
patients), and deteriorating first admissions are planned to cross a threshold 2–8 h after ``start``
so a demo shows alerts early. An admission is monitored
for ``block_hours`` (default 24 h); a deteriorating patient is transferred out 3–10 h after onset
(``physiology.TRANSFER_AFTER_H``: escalation, review and an ICU bed take hours).
The bed is then taken by a new admission (after 30–90 min when someone was transferred) whose
archetype is drawn from the mix. Admission ``k`` of bed ``b`` is a pure function of
``(seed, b, k)``, so ``advance`` is deterministic whatever the sequence of ``until`` values: it only
decides which deliveries fall in which call.

Readings carry their ``source``: the monitor's, or ``charted`` — the values of a nurse's observation set, all
delivered at once, which a sink rebuilds into the set (``simulator.sinks.split_observations``, with the patient's
SpO2 scale from ``Ward.spo2_scale``) and sends through ``POST /v1/observations``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

import numpy as np
import pandas as pd

from models.schema import VITALS
from simulator.archetypes import ENRICHED_MIX, EVENT_ARCHETYPES, normalise_mix, quota_archetypes
from simulator.devices import QUALITIES, SOURCES
from simulator.patient import PatientStream, generate_patient, to_epoch_ms

logger = logging.getLogger(__name__)

FIRST_ONSET_WINDOW_H: Final[tuple[float, float]] = (2.0, 8.0)
_QUOTA_KEY: Final[int] = 0x5EED


class Ward:
    def __init__(self, n_beds: int, seed: int, start: pd.Timestamp, archetype_mix: Mapping[str, float] | None = None,
                 block_hours: float = 24.0) -> None:
        if not 1 <= n_beds <= 99:
            raise ValueError("n_beds must be 1..99")
        self.n_beds, self.seed, self.block_hours = n_beds, int(seed), float(block_hours)
        self.start = pd.Timestamp(start).tz_convert("UTC")
        self.mix = normalise_mix(ENRICHED_MIX if archetype_mix is None else archetype_mix)
        self.bed_ids = [f"bed-{b + 1:02d}" for b in range(n_beds)]
        first = quota_archetypes(n_beds, self.mix, np.random.default_rng([self.seed, _QUOTA_KEY]))
        self._until_ms = to_epoch_ms(self.start)
        self._streams: list[list[PatientStream]] = [[] for _ in range(n_beds)]
        self._admissions = [0] * n_beds
        self.patients: list[dict] = []
        self.events: list[dict] = []
        for b in range(n_beds):
            self._admit(b, self._until_ms, first[b])
        self.patients = [self._streams[b][-1].patient for b in range(n_beds)]

    @property
    def until(self) -> pd.Timestamp:
        """The time up to which deliveries have been handed out."""
        return pd.Timestamp(self._until_ms, unit="ms", tz="UTC")

    def _admit(self, bed: int, start_ms: int, archetype: str | None) -> None:
        k = self._admissions[bed]
        window = FIRST_ONSET_WINDOW_H if k == 0 and archetype in EVENT_ARCHETYPES else None
        stream = generate_patient(self.bed_ids[bed], (self.seed, bed, k), start_ms, self.block_hours,
                                  archetype=archetype, archetype_mix=self.mix, onset_window_h=window)
        stream.patient["admitted_at"] = pd.Timestamp(start_ms, unit="ms", tz="UTC")
        self._admissions[bed] = k + 1
        self._streams[bed].append(stream)
        self.events.extend(stream.events)
        logger.info("ward admit bed=%s admission=%d archetype=%s events=%d", self.bed_ids[bed], k,
                    stream.patient["archetype"], len(stream.events))

    def _ensure(self, until_ms: int) -> None:
        for b in range(self.n_beds):
            while self._streams[b][-1].end_ms <= until_ms:
                last = self._streams[b][-1]
                gap_ms = 0
                if last.events and last.end_ms < last.start_ms + int(self.block_hours * 3_600_000):
                    rng = np.random.default_rng([self.seed, b, self._admissions[b], 1])
                    gap_ms = int(rng.uniform(30, 90) * 60_000)
                self._admit(b, last.end_ms + gap_ms, None)
            if len(self.patients) == self.n_beds:
                self.patients[b] = self._streams[b][-1].patient

    def advance_arrays(self, until: pd.Timestamp) -> dict[str, np.ndarray]:
        """Deliveries in (previous until, until] as arrays (bed index, ts/delivery ms, codes), delivery order."""
        until_ms = to_epoch_ms(until)
        if until_ms < self._until_ms:
            raise ValueError(f"advance: until {until} is before the previous call's {self.until}")
        self._ensure(until_ms)
        parts: list[tuple[int, PatientStream, int, int]] = []
        for b, streams in enumerate(self._streams):
            for s in streams:
                i = int(np.searchsorted(s.deliver_ms, self._until_ms, side="right"))
                j = int(np.searchsorted(s.deliver_ms, until_ms, side="right"))
                if j > i:
                    parts.append((b, s, i, j))
            # drop admissions fully delivered (keep the current one)
            self._streams[b] = [s for s in streams[:-1] if len(s) and s.deliver_ms[-1] > until_ms] + [streams[-1]]
        self._until_ms = until_ms
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return {"bed": empty, "ts_ms": empty, "deliver_ms": empty, "vital": empty.astype(np.int8),
                    "value": empty.astype(float), "quality": empty.astype(np.int8), "source": empty.astype(np.int8),
                    "spo2_scale": empty.astype(np.int8)}
        out = {
            "bed": np.concatenate([np.full(j - i, b, dtype=np.int64) for b, _, i, j in parts]),
            "ts_ms": np.concatenate([s.ts_ms[i:j] for _, s, i, j in parts]),
            "deliver_ms": np.concatenate([s.deliver_ms[i:j] for _, s, i, j in parts]),
            "vital": np.concatenate([s.vital[i:j] for _, s, i, j in parts]),
            "value": np.concatenate([s.value[i:j] for _, s, i, j in parts]),
            "quality": np.concatenate([s.quality[i:j] for _, s, i, j in parts]),
            "source": np.concatenate([s.source[i:j] for _, s, i, j in parts]),
            "spo2_scale": np.concatenate([np.full(j - i, s.spo2_scale, dtype=np.int8) for _, s, i, j in parts]),
        }
        order = np.argsort(out["deliver_ms"], kind="stable")
        return {k: v[order] for k, v in out.items()}

    def advance_frame(self, until: pd.Timestamp) -> pd.DataFrame:
        """Like ``advance`` as a DataFrame (patient_id, ts, vital, value, quality, source, delivered_at)."""
        a = self.advance_arrays(until)
        return pd.DataFrame({
            "patient_id": pd.Categorical.from_codes(a["bed"], self.bed_ids),
            "ts": pd.to_datetime(a["ts_ms"], unit="ms", utc=True).astype("datetime64[ns, UTC]"),
            "vital": pd.Categorical.from_codes(a["vital"], list(VITALS)),
            "value": a["value"],
            "quality": pd.Categorical.from_codes(a["quality"], list(QUALITIES)),
            "source": pd.Categorical.from_codes(a["source"], list(SOURCES)),
            "delivered_at": pd.to_datetime(a["deliver_ms"], unit="ms", utc=True).astype("datetime64[ns, UTC]"),
        })

    def advance(self, until: pd.Timestamp) -> list[dict]:
        """Readings *delivered* in (last until, until] as JSON-ready dicts, in delivery order.

        ``ts`` is the measurement time (ISO 8601, ms, ``Z``); delivery can be seconds to minutes later,
        so readings arrive late, out of order and occasionally twice. Calls must not go back in time.
        """
        a = self.advance_arrays(until)
        ts = np.datetime_as_string(a["ts_ms"].astype("datetime64[ms]"), unit="ms", timezone="UTC")
        bed_ids, vitals, qualities = self.bed_ids, VITALS, QUALITIES
        return [
            {"patient_id": bed_ids[b], "vital": vitals[v], "ts": t, "value": x, "quality": qualities[q],
             "source": SOURCES[src]}
            for b, v, t, x, q, src in zip(a["bed"].tolist(), a["vital"].tolist(), ts.tolist(), a["value"].tolist(),
                                          a["quality"].tolist(), a["source"].tolist(), strict=True)
        ]

    def spo2_scale(self, patient_id: str) -> int:
        """The NEWS2 SpO2 scale the ward charts the bed's current patient on (2: hypercapnic COPD, 88–92 %)."""
        return self._streams[self.bed_ids.index(patient_id)][-1].spo2_scale


__all__ = ["Ward"]
