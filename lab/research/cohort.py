"""One loader for the research routes: per-patient 5-minute windows with outcome labels and patient attributes.

Three sources, each giving the same :class:`ResearchCohort`:

- ``from_cohort_dir``: a directory written by ``wardtwin simulate cohort`` (``readings.parquet``,
  ``patients.parquet``, ...), aggregated to windows one patient at a time (``models.windows.build``).
- ``from_physionet``: PhysioNet 2012 set A (``lab.physionet2012``) through the API's own validation
  (``lab.physionet_cmd.validated``), with ``Outcomes-a.txt``.
- ``from_store``: the configured store's patients (``app.main.make_store``), every stored window.

``windows``: ``models.windows.WINDOW_COLUMNS`` plus ``window_end`` and the twin's label (``label``: a deterioration
by ``models.labels`` within 6 h; ``eligible``), rows in (patient, start) order.
``patients``: one row per patient: ``patient_id``, ``age`` (years, NaN unknown), ``sex`` ("F", "M" or None),
``ward``, ``admitted_at`` (UTC), ``outcome`` (0/1, the patient-level outcome named by ``outcome_name``).

What each source knows (stated, never invented): the simulator gives age and sex but no ward or admission date (one
simulated ward, every patient admitted at the cohort's start), so ``ward`` is ``"simulated"`` and ``admitted_at`` the
first window; set A gives age, sex and the ICU type (taken as the ward) and every stay starts at
``lab.physionet2012.ADMISSION_AT``; the store holds readings only, so age and sex are unknown and ``ward`` is
``"store"``. The outcome is ``deteriorated`` (any ``models.labels`` event during the stay) for the simulator and the
store, and ``in_hospital_death`` for set A.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd

from app.research import source as S
from models import windows as W

Progress = Callable[[str], None]

ICU_TYPES: Final[dict[int, str]] = {1: "coronary care", 2: "cardiac surgery recovery", 3: "medical", 4: "surgical"}
PATIENT_COLUMNS: Final[tuple[str, ...]] = ("patient_id", "age", "sex", "ward", "admitted_at", "outcome")


def _quiet(_: str) -> None:
    return None


@dataclass
class ResearchCohort:
    """Windows and patients of one data set (module docstring), and what it is."""

    windows: pd.DataFrame
    patients: pd.DataFrame
    source: str
    outcome_name: str
    fingerprint: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset_id(self) -> str:
        """A stable name for the privacy-budget ledger: the source and its fingerprint."""
        import hashlib

        digest = hashlib.sha256(json.dumps(self.fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return f"{self.source}:{digest}"


_labelled = S.labelled
_patients = S.patients_table


def from_cohort_dir(directory: Path, progress: Progress = _quiet) -> ResearchCohort:
    """A simulated cohort directory (``wardtwin simulate cohort``)."""
    from simulator import cohort as C

    root = Path(directory)
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    total = len(pd.read_parquet(root / "patients.parquet"))
    frames, rows = [], []
    for i, record in enumerate(C.iter_cohort_files(root), start=1):
        frames.append(W.build(record.readings))
        p = record.patient
        rows.append({"patient_id": str(p["patient_id"]), "age": p.get("age"),
                     "sex": {"female": "F", "male": "M"}.get(str(p.get("sex")).lower(), p.get("sex")),
                     "ward": "simulated"})
        if i % max(1, total // 10) == 0 or i == total:
            progress(f"cohort → windows: {i}/{total} patients")
    windows, events = _labelled(pd.concat(frames, ignore_index=True) if frames else W.empty_windows())
    patients = _patients(rows, windows)
    patients["outcome"] = patients["patient_id"].isin(set(events["patient_id"])).astype(int)
    fingerprint = {k: manifest[k] for k in ("simulator_version", "seed", "n_patients", "hours", "start")
                   if k in manifest}
    fingerprint["directory"] = root.name
    return ResearchCohort(windows, patients, "simulated-cohort", "deteriorated", fingerprint)


def from_physionet(records: Path, outcomes: Path, limit: int | None = None,
                   progress: Progress = _quiet) -> ResearchCohort:
    """PhysioNet 2012 set A stays (validated as the API validates) with their in-hospital outcome."""
    from app.domain import Reading
    from lab import physionet2012 as P
    from lab.physionet_cmd import Tally, _skew, validated
    from models.schema import READING_COLUMNS

    outcome_of = P.read_outcomes(outcomes)
    tally = Tally()
    frames, rows, batch = [], [], []
    for stay, readings in validated(P.iter_stays(records, limit), tally, _skew()):
        death = outcome_of.get(stay.record_id)
        if death is None or death.in_hospital_death is None or not readings:
            continue  # no outcome, or nothing the API would store: not a research record
        batch.extend(readings)
        rows.append({"patient_id": stay.patient_id, "age": stay.age,
                     "sex": {0: "F", 1: "M"}.get(stay.gender) if stay.gender is not None else None,
                     "ward": ICU_TYPES.get(stay.icu_type or 0, "unknown"),
                     "outcome": int(death.in_hospital_death)})
        if len(rows) % 200 == 0:
            frames.append(W.build(pd.DataFrame(batch, columns=list(Reading._fields)).loc[:, list(READING_COLUMNS)]))
            batch = []
            progress(f"set A → windows: {len(rows)} stays")
    if batch:
        frames.append(W.build(pd.DataFrame(batch, columns=list(Reading._fields)).loc[:, list(READING_COLUMNS)]))
    progress(f"set A → windows: {len(rows)} stays")
    windows, _ = _labelled(pd.concat(frames, ignore_index=True) if frames else W.empty_windows())
    outcome = {r["patient_id"]: r.pop("outcome") for r in rows}
    patients = _patients(rows, windows)
    patients["outcome"] = patients["patient_id"].map(outcome).astype(int)
    fingerprint = {"records": P.records_sha256(Path(records))[:16], "limit": limit, "stays": len(patients)}
    return ResearchCohort(windows, patients, "physionet2012-set-a", "in_hospital_death", fingerprint)


def from_windows(windows: pd.DataFrame, source: str = "store", progress: Progress = _quiet) -> ResearchCohort:
    """Windows read from a store (readings only: age and sex unknown, one ward)."""
    patients, labelled = S.from_store_windows(windows, source)
    progress(f"store: {len(patients)} patients, {len(labelled)} windows")
    fingerprint = {"patients": len(patients), "first": str(labelled["start"].min()),
                   "last": str(labelled["start"].max())}
    return ResearchCohort(labelled, patients, source, "deteriorated", fingerprint)


async def store_windows(store: Any, start: Any = None, end: Any = None) -> pd.DataFrame:
    """Every stored window of every patient (``VitalStore.windows``) between ``start`` and ``end`` (default: all)."""
    from datetime import UTC, datetime

    start = start or datetime(2000, 1, 1, tzinfo=UTC)
    end = end or datetime(2100, 1, 1, tzinfo=UTC)
    return await store.windows(None, start, end)


def from_store(progress: Progress = _quiet) -> ResearchCohort:
    """The configured store (``WARDTWIN_*`` settings) read once, then closed."""
    from app.main import make_store
    from app.settings import Settings

    async def read() -> pd.DataFrame:
        store = make_store(Settings())
        await store.open()
        try:
            return await store_windows(store)
        finally:
            await store.close()

    return from_windows(asyncio.run(read()), "store", progress)


def load(*, cohort: Path | None = None, store: bool = False, physionet_records: Path | None = None,
         physionet_outcomes: Path | None = None, limit: int | None = None,
         progress: Progress = _quiet) -> ResearchCohort:
    """The one source the options name (the CLI's ``--cohort`` / ``--store`` / ``--physionet-records``)."""
    given = [cohort is not None, store, physionet_records is not None]
    if sum(given) != 1:
        raise ValueError("give exactly one of --cohort, --store, --physionet-records")
    if cohort is not None:
        return from_cohort_dir(cohort, progress)
    if physionet_records is not None:
        if physionet_outcomes is None:
            raise ValueError("--physionet-records needs --physionet-outcomes")
        return from_physionet(physionet_records, physionet_outcomes, limit, progress)
    return from_store(progress)



__all__ = ["ICU_TYPES", "PATIENT_COLUMNS", "ResearchCohort", "from_cohort_dir", "from_physionet", "from_store",
           "from_windows", "load", "store_windows"]
