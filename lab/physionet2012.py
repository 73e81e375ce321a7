"""PhysioNet/CinC Challenge 2012 set A → readings in the reading contract (``models.schema``). Pure: no app imports.

Source: one file per ICU stay (``set-a/RECORDID.txt``, CSV ``Time,Parameter,Value``, ``Time`` = ``HH:MM`` since ICU
admission, 0–48 h) read from the published ``set-a.tar.gz`` (streamed member by member, never extracted) or from a
folder of such files; ``Outcomes-a.txt`` gives ``RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death``.
``-1`` means unknown and becomes ``None``.

Admission time (stated): every stay is admitted at ``ADMISSION_AT`` (2012-01-01 00:00 UTC), so a row at ``HH:MM``
has ``ts = ADMISSION_AT + HH h MM min``. The real dates are not published; all 4,000 stays share the same 48 h.
The patient id is ``pn2012-RECORDID``.

Mappings (PhysioNet parameter → reading ``vital``; every charted value is passed on as it is, zeros and implausible
values included: the importer and the evaluation send them through the API's validation, which rejects them):

=====================  ===================================================================================
``HR``                 ``hr`` (bpm)
``RespRate``           ``rr`` (/min)
``NISysABP/NIDiasABP`` ``sbp``/``dbp`` (mmHg), cuff. At a time when neither non-invasive value is charted,
``SysABP/DiasABP``     the arterial-line values are used instead. The source of every reading is kept in
                       :attr:`Charted.source` (a per-reading note; ``quality`` stays ``"ok"`` because any other
                       quality means "artefact, do not score")
``Temp``               ``temp`` (°C)
``SaO2``               ``spo2`` (%): **arterial blood-gas saturation, not pulse oximetry** (set A has no SpO2);
                       charted only when a blood gas is drawn, a few times a day at most
``GCS``                ``acvpu`` by ``GCS_TO_ACVPU``: 15 → A, 13–14 → C (new confusion), 9–12 → V, 6–8 → P,
                       3–5 → U. The bands are ours. They follow the published GCS–AVPU correspondence
                       (McNarry & Goldhill, Anaesthesia 2004;59:34–37: median GCS 15 for A, 13 for V, 8 for P,
                       3 for U; Kelly et al., Emerg Med J 2004;21:588–589) and put 13–14 at C. NEWS2 and the twin
                       use only "Alert or not" (any GCS below 15 scores 3 / sets ``not_alert``), so the inner
                       band edges do not change any score here. In an ICU a low GCS is often sedation, not new
                       confusion: this mapping over-reads it (stated in the evaluation report). A GCS outside
                       3–15 cannot be mapped and is counted in :attr:`Stay.unmapped`.
``FiO2``, ``MechVent`` ``o2``: at a time with ``FiO2 > 0.21`` or ``MechVent = 1`` the patient is on supplemental
                       oxygen, charted as the nominal flow ``NOMINAL_O2_L_MIN`` (2 L/min: FiO2 is a fraction, not
                       a flow, so the flow value carries no information beyond "on oxygen"); ``FiO2 = 0.21``
                       without ventilation → ``o2 = 0`` (room air). FiO2 outside 0.21–1 cannot be mapped and is
                       counted in :attr:`Stay.unmapped`.
=====================  ===================================================================================

Everything else (MAP, urine, laboratory values, Height, Weight) is not a reading; the descriptors ``Age``,
``Gender`` (0 female, 1 male), ``Height``, ``ICUType`` (1 coronary care, 2 cardiac surgery recovery, 3 medical,
4 surgical) and ``Weight`` at ``00:00`` go to :class:`Stay`.

Data: PhysioNet challenge-2012 1.0.0, Open Data Commons Attribution License v1.0. Silva I, Moody G, Scott DJ,
Celi LA, Mark RG. Predicting In-Hospital Mortality of ICU Patients: The PhysioNet/Computing in Cardiology
Challenge 2012. Computing in Cardiology 2012;39:245-248.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from models.schema import QUALITY_OK

ADMISSION_AT: Final[datetime] = datetime(2012, 1, 1, tzinfo=UTC)
STAY_HOURS: Final[int] = 48
PATIENT_PREFIX: Final[str] = "pn2012-"
NOMINAL_O2_L_MIN: Final[float] = 2.0
ROOM_AIR_FIO2: Final[float] = 0.21

#: (lowest GCS, highest GCS, ACVPU code 0..4 = A, C, V, P, U)
GCS_TO_ACVPU: Final[tuple[tuple[int, int, int], ...]] = ((15, 15, 0), (13, 14, 1), (9, 12, 2), (6, 8, 3), (3, 5, 4))

#: PhysioNet parameter → vital, for the one-to-one mappings.
DIRECT: Final[dict[str, str]] = {"HR": "hr", "RespRate": "rr", "Temp": "temp", "SaO2": "spo2"}
NON_INVASIVE_BP: Final[dict[str, str]] = {"NISysABP": "sbp", "NIDiasABP": "dbp"}
ARTERIAL_BP: Final[dict[str, str]] = {"SysABP": "sbp", "DiasABP": "dbp"}
DESCRIPTORS: Final[tuple[str, ...]] = ("RecordID", "Age", "Gender", "Height", "ICUType", "Weight")
OUTCOME_COLUMNS: Final[tuple[str, ...]] = ("RecordID", "SAPS-I", "SOFA", "Length_of_stay", "Survival",
                                           "In-hospital_death")


@dataclass(frozen=True, slots=True)
class Charted:
    """One mapped observation; ``source`` names the PhysioNet parameter(s) it came from (e.g. ``"SysABP"``
    for an arterial-line systolic pressure, ``"FiO2"``/``"MechVent"``/``"FiO2+MechVent"`` for oxygen)."""

    ts: datetime
    vital: str
    value: float
    source: str


@dataclass(frozen=True)
class Stay:
    record_id: int
    age: float | None
    gender: int | None
    height: float | None
    icu_type: int | None
    weight: float | None
    readings: tuple[Charted, ...]
    #: reason → count of charted values that could not be mapped to a reading (GCS or FiO2 out of domain).
    unmapped: dict[str, int] = field(default_factory=dict)

    @property
    def patient_id(self) -> str:
        return f"{PATIENT_PREFIX}{self.record_id}"

    def items(self) -> list[dict[str, Any]]:
        """The readings in the API's JSON shape (``POST /v1/readings`` items), for ``app.ingest.validate_batch``."""
        pid = self.patient_id
        return [{"patient_id": pid, "vital": r.vital, "value": r.value,
                 "ts": r.ts.isoformat().replace("+00:00", "Z"), "quality": QUALITY_OK} for r in self.readings]

    def sources(self) -> Counter[str]:
        """``"vital<-Parameter"`` → number of readings (e.g. ``"sbp<-SysABP"``: arterial fallbacks)."""
        return Counter(f"{r.vital}<-{r.source}" for r in self.readings)


@dataclass(frozen=True)
class Outcome:
    record_id: int
    saps1: float | None
    sofa: float | None
    length_of_stay_d: float | None
    survival_d: float | None
    in_hospital_death: int | None


def acvpu_from_gcs(gcs: float) -> int | None:
    """ACVPU code (0 = A .. 4 = U) for a Glasgow Coma Scale total by ``GCS_TO_ACVPU``; None outside 3–15 or
    not a whole number."""
    if gcs != gcs or not float(gcs).is_integer():
        return None
    g = int(gcs)
    for lo, hi, code in GCS_TO_ACVPU:
        if lo <= g <= hi:
            return code
    return None


def _minutes(stamp: str) -> int:
    hours, minutes = stamp.strip().split(":")
    return int(hours) * 60 + int(minutes)


def _known(value: float | None) -> float | None:
    return None if value is None or value == -1 else value


def parse_stay(text: str) -> Stay:
    """One stay's file (``Time,Parameter,Value``) → :class:`Stay`; readings in time order, then vital order."""
    rows: dict[int, list[tuple[str, float]]] = {}
    descriptors: dict[str, float] = {}
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["Time", "Parameter", "Value"]:
        raise ValueError(f"not a PhysioNet 2012 record (header {header!r})")
    for row in reader:
        if len(row) != 3 or not row[1]:
            continue
        minute, param, raw = _minutes(row[0]), row[1].strip(), row[2].strip()
        try:
            value = float(raw)
        except ValueError:
            continue
        if minute == 0 and param in DESCRIPTORS and param not in descriptors:
            descriptors[param] = value
            continue
        rows.setdefault(minute, []).append((param, value))
    if "RecordID" not in descriptors:
        raise ValueError("record has no RecordID descriptor")
    readings: list[Charted] = []
    unmapped: Counter[str] = Counter()
    for minute in sorted(rows):
        ts = ADMISSION_AT + timedelta(minutes=minute)
        obs = rows[minute]
        params = {p for p, _ in obs}
        bp = NON_INVASIVE_BP if params & set(NON_INVASIVE_BP) else ARTERIAL_BP
        oxygen_sources: list[str] = []
        room_air = False
        for param, value in obs:
            if param in DIRECT:
                readings.append(Charted(ts, DIRECT[param], value, param))
            elif param in bp:
                readings.append(Charted(ts, bp[param], value, param))
            elif param == "GCS":
                code = acvpu_from_gcs(value)
                if code is None:
                    unmapped["GCS outside 3–15"] += 1
                else:
                    readings.append(Charted(ts, "acvpu", float(code), "GCS"))
            elif param == "FiO2":
                if not ROOM_AIR_FIO2 <= value <= 1.0:
                    unmapped["FiO2 outside 0.21–1"] += 1
                elif value > ROOM_AIR_FIO2:
                    oxygen_sources.append("FiO2")
                else:
                    room_air = True
            elif param == "MechVent" and value == 1:
                oxygen_sources.append("MechVent")
        if oxygen_sources:
            source = "+".join(sorted(set(oxygen_sources)))
            readings.append(Charted(ts, "o2", NOMINAL_O2_L_MIN, source))
        elif room_air:
            readings.append(Charted(ts, "o2", 0.0, "FiO2"))
    d = {k: _known(v) for k, v in descriptors.items()}
    as_int = {k: (int(v) if v is not None else None) for k, v in d.items() if k in ("Gender", "ICUType")}
    return Stay(record_id=int(descriptors["RecordID"]), age=d.get("Age"), gender=as_int.get("Gender"),
                height=d.get("Height"), icu_type=as_int.get("ICUType"), weight=d.get("Weight"),
                readings=tuple(readings), unmapped=dict(unmapped))


def iter_stays(path: str | Path, limit: int | None = None) -> Iterator[Stay]:
    """Stays from ``set-a.tar.gz`` (streamed in archive order, nothing extracted) or a folder of ``*.txt``
    records (sorted by name); at most ``limit`` of them."""
    p = Path(path)
    count = 0
    if limit is not None and limit <= 0:
        return
    if p.is_dir():
        for f in sorted(p.glob("*.txt")):
            yield parse_stay(f.read_text(encoding="utf-8"))
            count += 1
            if limit is not None and count >= limit:
                return
        return
    with tarfile.open(p, mode="r|*") as archive:
        for member in archive:
            if not member.isfile() or not member.name.endswith(".txt"):
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            yield parse_stay(handle.read().decode("utf-8"))
            count += 1
            if limit is not None and count >= limit:
                return


def read_outcomes(path: str | Path) -> dict[int, Outcome]:
    """``Outcomes-a.txt`` → RecordID → :class:`Outcome` (``-1`` → None)."""
    out: dict[int, Outcome] = {}
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != OUTCOME_COLUMNS:
            raise ValueError(f"not an Outcomes file: columns {reader.fieldnames!r}, expected {OUTCOME_COLUMNS}")
        for row in reader:
            v = {k: _known(float(row[k])) for k in OUTCOME_COLUMNS}
            rid = int(row["RecordID"])
            death = v["In-hospital_death"]
            out[rid] = Outcome(rid, v["SAPS-I"], v["SOFA"], v["Length_of_stay"], v["Survival"],
                               None if death is None else int(death))
    return out


__all__ = ["ADMISSION_AT", "ARTERIAL_BP", "DIRECT", "GCS_TO_ACVPU", "NOMINAL_O2_L_MIN", "NON_INVASIVE_BP",
           "PATIENT_PREFIX", "STAY_HOURS", "Charted", "Outcome", "Stay", "acvpu_from_gcs", "iter_stays", "parse_stay",
           "read_outcomes"]


def records_sha256(path: Path) -> str:
    """sha256 of the records archive (or of a folder's ``*.txt`` names and bytes, in name order)."""
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(path.glob("*.txt")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
        return h.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()
