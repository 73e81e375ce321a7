"""Who may write which readings, and what a second value may not do (issue 21, finding 4).

Two checks on readings that passed validation, applied once by the service's ingest use case (``WardTwin.ingest``)
whatever the route (JSON, line protocol, observations, HL7):

- **scope**: a key created with a scope (patient-id patterns, ``app.security.keys.check_scope``) may write only
  the patients it matches; every other patient's readings are refused, one item error per patient naming it
  (``out_of_scope``). An unscoped key, the demo key and the MLLP listener (no key) write every patient.
- **first value kept**: a reading whose identity (patient, vital, time, source; issue 20a) already holds a
  *different* value is refused (``conflict``, naming patient, vital, time and both values), whoever sends it: the
  stores keep no writer per reading, so "from another key" is judged as "a different value". The same value
  again is an idempotent retry and is accepted. The check reads the stored readings of the batch's patients over
  the batch's time span before the write (one read per request); two concurrent requests for the same identity can
  still race between that read and the write (stated in the hazard log, H25).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.domain import Reading
from app.security.keys import Principal
from app.storage.codec import to_ms

#: How many patient ids a write's audit row names (the count of patients is always given).
AUDITED_PATIENTS = 5


def _error(patient_id: str, msg: str, type_: str) -> dict[str, Any]:
    return {"loc": ["body", "patient_id"], "msg": msg, "type": type_, "input": patient_id}


def split_scope(readings: Sequence[Reading], who: Principal | None) -> tuple[list[Reading], list[dict[str, Any]]]:
    """The readings ``who`` may write, and one ``out_of_scope`` error per patient it may not."""
    if who is None or who.scope is None:
        return list(readings), []
    allowed: dict[str, bool] = {}
    kept: list[Reading] = []
    refused: dict[str, int] = {}
    for reading in readings:
        pid = reading.patient_id
        ok = allowed.get(pid)
        if ok is None:
            ok = allowed[pid] = who.may_write(pid)
        if ok:
            kept.append(reading)
        else:
            refused[pid] = refused.get(pid, 0) + 1
    scope = ", ".join(who.scope)
    return kept, [_error(pid, f"key {who.name!r} may not write patient {pid!r}: outside its scope ({scope}); "
                              f"{n} reading(s) refused", "out_of_scope") for pid, n in refused.items()]


def split_conflicts(readings: Sequence[Reading], stored: Any) -> tuple[list[Reading], list[dict[str, Any]]]:
    """The readings whose identity holds no different value in ``stored`` (a frame of
    ``SOURCED_READING_COLUMNS``), and one ``conflict`` error per reading that would replace another value."""
    if stored is None or len(stored) == 0:
        return list(readings), []
    ms = stored["ts"].astype("int64").to_numpy() // 1_000_000
    held = {(p, v, int(t), s): float(x) for p, v, t, s, x in zip(
        stored["patient_id"], stored["vital"], ms, stored["source"], stored["value"], strict=True)}
    kept: list[Reading] = []
    errors: list[dict[str, Any]] = []
    for r in readings:
        old = held.get((r.patient_id, r.vital, to_ms(r.ts), r.source))
        if old is None or old == float(r.value):
            kept.append(r)
            continue
        errors.append(_error(r.patient_id, f"patient {r.patient_id!r} {r.vital} at {r.ts.isoformat()} ({r.source}) "
                                           f"already holds {old:g}: a second, different value ({float(r.value):g}) "
                                           "is refused, the first is kept", "conflict"))
    return kept, errors


def audit_summary(readings: Sequence[Reading]) -> str:
    """A write's audit target: how many readings were stored, for how many patients, and the first few."""
    patients = list(dict.fromkeys(r.patient_id for r in readings))
    first = ",".join(patients[:AUDITED_PATIENTS]) + (",…" if len(patients) > AUDITED_PATIENTS else "")
    return f"write:{len(readings)} readings;{len(patients)} patients;{first}"
