"""Cohort mode: many patients, generated independently and written as Parquet.

Patient ``i`` (0-based, id ``p0001`` …) is a pure function of ``(seed, i)``: its seed key is
``SeedSequence([seed, i])``, so a cohort can be generated in any order, in chunks or in parallel,
and the same arguments always give the same rows. ``write_cohort`` writes, with pyarrow and no
wall-clock metadata, byte-identical files for the same arguments:

- ``readings.parquet``: ``patient_id`` (dictionary), ``ts`` (timestamp[ns, UTC], ms precision),
  ``vital`` (dictionary), ``value`` (double), ``quality`` (dictionary), ``source`` (dictionary: ``monitor`` or
  ``charted``, a value of a nurse's set, as the service stores a set posted to ``POST /v1/observations``); one
  row group per chunk of patients, each patient's rows in *delivery* order (so late readings appear out of
  ``ts`` order, and a retransmitted reading appears twice).
- ``observations.parquet``: the nurse's charted sets whole (``simulator.patient.SET_COLUMNS``).
- ``patients.parquet``: ``patient_id, age, sex, archetype, spo2_scale`` (the NEWS2 SpO2 scale the ward
  charts the patient on: 2 for hypercapnic COPD with a prescribed 88–92 % target, else 1).
- ``events.parquet``: ``patient_id, kind, onset, criterion`` — ground truth: the first sustained
  threshold crossing (``detect``, the rule of ``models.labels``) of any patient who has one; ``kind`` is the
  patient's archetype (a ``stable`` kind is a hard negative that crossed).
- ``manifest.json``: the arguments, the mix and the simulator version (the cohort fingerprint).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import simulator
from models.schema import VITALS
from simulator.archetypes import normalise_mix
from simulator.devices import QUALITIES, SOURCES
from simulator.patient import SET_COLUMNS, PatientStream, generate_patient, to_epoch_ms

logger = logging.getLogger(__name__)

DEFAULT_START: Final[pd.Timestamp] = pd.Timestamp("2026-01-05T00:00Z")
CHUNK_PATIENTS: Final[int] = 16

READINGS_SCHEMA: Final[pa.Schema] = pa.schema([
    ("patient_id", pa.dictionary(pa.int32(), pa.string())),
    ("ts", pa.timestamp("ns", tz="UTC")),
    ("vital", pa.dictionary(pa.int8(), pa.string())),
    ("value", pa.float64()),
    ("quality", pa.dictionary(pa.int8(), pa.string())),
    ("source", pa.dictionary(pa.int8(), pa.string())),
])
PATIENTS_SCHEMA: Final[pa.Schema] = pa.schema([
    ("patient_id", pa.string()), ("age", pa.int32()), ("sex", pa.string()), ("archetype", pa.string()),
    ("spo2_scale", pa.int8()),
])
EVENTS_SCHEMA: Final[pa.Schema] = pa.schema([
    ("patient_id", pa.string()), ("kind", pa.string()), ("onset", pa.timestamp("ns", tz="UTC")),
    ("criterion", pa.string()),
])
_VITAL_DICT = pa.array(list(VITALS), pa.string())
_QUALITY_DICT = pa.array(list(QUALITIES), pa.string())
_SOURCE_DICT = pa.array(list(SOURCES), pa.string())


@dataclass(frozen=True)
class PatientRecord:
    patient: dict  # {"patient_id", "age", "sex", "archetype", "spo2_scale"}
    readings: pd.DataFrame  # patient_id, ts (datetime64[ns, UTC]), vital, value, quality — delivery order
    events: list[dict]  # [{"patient_id", "kind", "onset" (UTC Timestamp), "criterion"}]


def patient_id(i: int, n_patients: int) -> str:
    return f"p{i + 1:0{max(4, len(str(n_patients)))}d}"


def iter_streams(n_patients: int, hours: float, seed: int, start: pd.Timestamp = DEFAULT_START,
                 archetype_mix: Mapping[str, float] | None = None, progress: bool = False,
                 first: int = 0) -> Iterator[PatientStream]:
    """Patients ``first … n_patients − 1`` as arrays (the fast path ``write_cohort`` uses)."""
    if n_patients < 0:
        raise ValueError("n_patients must be non-negative")
    mix = normalise_mix(archetype_mix)
    start_ms = to_epoch_ms(start)
    meter = Progress(n_patients - first, hours / 24.0, "patients") if progress else None
    for i in range(first, n_patients):
        yield generate_patient(patient_id(i, n_patients), (seed, i), start_ms, hours, archetype_mix=mix)
        if meter:
            meter.step()
    if meter:
        meter.done()


def iter_cohort(n_patients: int, hours: float, seed: int, start: pd.Timestamp = DEFAULT_START,
                archetype_mix: Mapping[str, float] | None = None, progress: bool = False) -> Iterator[PatientRecord]:
    """One ``PatientRecord`` per patient, deterministic in ``(seed, i)``."""
    for stream in iter_streams(n_patients, hours, seed, start, archetype_mix, progress):
        yield PatientRecord(stream.patient, stream.frame(), stream.events)


class Progress:
    """A stderr progress line for long runs (rate in patient-days per minute)."""

    def __init__(self, total: int, days_each: float, unit: str) -> None:
        self.total, self.days_each, self.unit = total, days_each, unit
        self.count, self.t0, self.shown = 0, time.monotonic(), 0.0

    def step(self, k: int = 1) -> None:
        self.count += k
        now = time.monotonic()
        if now - self.shown >= 1.0 or self.count == self.total:
            self.shown = now
            rate = self.count * self.days_each / max(now - self.t0, 1e-9) * 60.0
            sys.stderr.write(f"\r  {self.count}/{self.total} {self.unit}  {rate:,.0f} patient-days/min ")
            sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def _readings_table(streams: list[PatientStream]) -> pa.Table:
    n = np.array([len(s) for s in streams])
    ids = pa.array([s.patient["patient_id"] for s in streams], pa.string())
    ts = np.concatenate([s.ts_ms for s in streams]) * 1_000_000
    return pa.Table.from_arrays([
        pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(len(streams), dtype=np.int32), n)), ids),
        pa.array(ts, pa.timestamp("ns", tz="UTC")),
        pa.DictionaryArray.from_arrays(pa.array(np.concatenate([s.vital for s in streams])), _VITAL_DICT),
        pa.array(np.concatenate([s.value for s in streams]), pa.float64()),
        pa.DictionaryArray.from_arrays(pa.array(np.concatenate([s.quality for s in streams])), _QUALITY_DICT),
        pa.DictionaryArray.from_arrays(pa.array(np.concatenate([s.source for s in streams])), _SOURCE_DICT),
    ], schema=READINGS_SCHEMA)


class CohortWriter:
    """Streams patients into ``readings.parquet`` (one row group per chunk); ``close`` writes the rest."""

    def __init__(self, out_dir: str | Path, chunk_patients: int = CHUNK_PATIENTS, compression: str = "zstd") -> None:
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.chunk_patients = chunk_patients
        self._writer = pq.ParquetWriter(self.out / "readings.parquet", READINGS_SCHEMA, compression=compression,
                                        write_statistics=True)
        self._pending: list[PatientStream] = []
        self.patients: list[dict] = []
        self.events: list[dict] = []
        self.sets: list[pd.DataFrame] = []
        self.rows = 0

    def add(self, stream: PatientStream) -> None:
        self._pending.append(stream)
        self.patients.append(stream.patient)
        self.events.extend(stream.events)
        self.sets.append(stream.charted_sets())
        if len(self._pending) >= self.chunk_patients:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            table = _readings_table(self._pending)
            self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
            self.rows += table.num_rows
            self._pending = []

    def close(self) -> None:
        self.flush()
        self._writer.close()
        write_patients(self.out / "patients.parquet", self.patients)
        write_events(self.out / "events.parquet", self.events)
        sets = [f for f in self.sets if len(f)]
        frame = pd.concat(sets, ignore_index=True) if sets else pd.DataFrame(columns=list(SET_COLUMNS))
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), self.out / "observations.parquet")


def write_patients(path: Path, patients: list[dict]) -> None:
    table = pa.Table.from_pylist([{k: p[k] for k in PATIENTS_SCHEMA.names} for p in patients], schema=PATIENTS_SCHEMA)
    pq.write_table(table, path)


def write_events(path: Path, events: list[dict]) -> None:
    rows = [{"patient_id": e["patient_id"], "kind": e["kind"], "onset": pd.Timestamp(e["onset"]).to_pydatetime(),
             "criterion": e.get("criterion", "")} for e in events]
    pq.write_table(pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA), path)


def write_cohort(out_dir: str | Path, n_patients: int, hours: float, seed: int, start: pd.Timestamp = DEFAULT_START,
                 archetype_mix: Mapping[str, float] | None = None, progress: bool = False,
                 chunk_patients: int = CHUNK_PATIENTS) -> dict:
    """Generate and write a cohort; returns a summary (rows, patients, events, archetype counts, speed)."""
    mix = normalise_mix(archetype_mix)
    out = Path(out_dir)
    t0 = time.perf_counter()
    writer = CohortWriter(out, chunk_patients)
    for stream in iter_streams(n_patients, hours, seed, start, mix, progress):
        writer.add(stream)
    writer.close()
    manifest = {
        "simulator_version": simulator.__version__, "seed": seed, "n_patients": n_patients, "hours": hours,
        "start": pd.Timestamp(start).tz_convert("UTC").isoformat(), "archetype_mix": mix,
        "files": ["readings.parquet", "patients.parquet", "events.parquet", "observations.parquet"],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    elapsed = time.perf_counter() - t0
    archetypes = pd.Series([p["archetype"] for p in writer.patients], dtype=object).value_counts()
    summary = {
        "out": str(out), "patients": n_patients, "hours": hours, "seed": seed, "rows": writer.rows,
        "events": len(writer.events), "archetypes": {str(k): int(v) for k, v in archetypes.items()},
        "seconds": elapsed, "patient_days_per_min": n_patients * hours / 24.0 / max(elapsed, 1e-9) * 60.0,
    }
    logger.info("cohort out=%s patients=%d rows=%d events=%d took_s=%.1f", out, n_patients, writer.rows,
                len(writer.events), elapsed)
    return summary


def _to_frame(table: pa.Table, categorical: bool) -> pd.DataFrame:
    if not categorical:
        table = pa.Table.from_arrays(
            [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns],
            names=table.column_names)
    frame = table.to_pandas()
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
            frame[name] = frame[name].astype("datetime64[ns, UTC]")
    return frame


def load_cohort(directory: str | Path, categorical: bool = False,
                patients: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(readings, patients, events) DataFrames. ``categorical`` keeps the dictionary columns as categories
    (much less memory for large cohorts); ``patients`` reads only those patients' readings."""
    d = Path(directory)
    filters = [("patient_id", "in", list(patients))] if patients is not None else None
    readings = _to_frame(pq.read_table(d / "readings.parquet", filters=filters), categorical)
    return readings, _to_frame(pq.read_table(d / "patients.parquet"), False), _to_frame(
        pq.read_table(d / "events.parquet"), False)


def iter_cohort_files(directory: str | Path, categorical: bool = False) -> Iterator[PatientRecord]:
    """``PatientRecord`` per patient from a written cohort, one row group at a time (bounded memory)."""
    d = Path(directory)
    patients = _to_frame(pq.read_table(d / "patients.parquet"), False)
    events = _to_frame(pq.read_table(d / "events.parquet"), False)
    by_patient: dict[str, list[dict]] = {}
    for e in events.to_dict("records"):
        by_patient.setdefault(e["patient_id"], []).append(e)
    info = {p["patient_id"]: p for p in patients.to_dict("records")}
    file = pq.ParquetFile(d / "readings.parquet")
    for g in range(file.num_row_groups):
        frame = _to_frame(file.read_row_group(g), categorical)
        for pid, rows in frame.groupby("patient_id", sort=False, observed=True):
            key = str(pid)
            yield PatientRecord(info[key], rows.reset_index(drop=True), by_patient.get(key, []))


__all__ = [
    "DEFAULT_START", "CohortWriter", "PatientRecord", "iter_cohort", "iter_cohort_files", "iter_streams",
    "load_cohort", "patient_id", "write_cohort",
]
