"""Validation of one charted NEWS2 observation set (``POST /v1/observations``) into readings and its NEWS2.

A set is ``{patient_id, ts, rr, spo2, spo2_scale, o2, sbp, hr, acvpu, temp, by}``; every vital is optional but at
least one must be given, and the set is ``partial`` when any NEWS2 parameter is missing (``models.news2``: an
unobserved parameter scores 0). The rules are ingest's (``app.ingest``): the patient id pattern, the plausible range
of each vital (same messages), a timestamp with an offset within ``[max(EARLIEST_READING_AT, now - max_age),
now + max_future_skew]`` (absent: the service's clock).

**A set is atomic.** A nurse charts the parameters together and NEWS2 is defined on them together, so a set with any
bad field is refused whole (422 naming every bad field, ``loc = ["body", field]``): storing its good members alone
would store a set that was never charted, and score it. Nothing is stored, no alert is raised.

``o2`` is whether the patient is on supplemental oxygen: ``false`` or ``0`` is room air, a number is the flow in
L/min, ``true`` is oxygen at an unstated flow, stored as 1 L/min (a reading is a number; NEWS2 scores any flow 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from app.domain import Reading
from app.ingest import check_value, parse_ts
from models import news2
from models.schema import (
    ACVPU_CODES,
    EARLIEST_READING_AT,
    PATIENT_ID_PATTERN,
    PATIENT_ID_RULE,
    QUALITY_OK,
    SOURCE_CHARTED,
)

#: The set's vitals, in the order NEWS2 lists its parameters.
VITALS: Final[tuple[str, ...]] = news2.PARAMETERS
FIELDS: Final[tuple[str, ...]] = ("patient_id", "ts", *VITALS, "spo2_scale", "by")
BY_MAX: Final[int] = 64
#: The flow stored for ``o2: true`` (on oxygen, flow not stated).
O2_UNSTATED_L_MIN: Final[float] = 1.0


@dataclass(frozen=True)
class Observation:
    """A valid charted set: its readings (source ``charted``), its NEWS2, and what was not observed."""

    patient_id: str
    ts: datetime
    by: str | None
    readings: list[Reading]
    news2: news2.News2
    missing: tuple[str, ...]


def _error(field: str | None, msg: str, type_: str) -> dict[str, Any]:
    return {"loc": ["body", *([field] if field else [])], "msg": msg, "type": type_}


def _o2(raw: Any) -> tuple[bool, float]:
    """(on oxygen, flow L/min) of an ``o2`` field."""
    if isinstance(raw, bool):
        return raw, O2_UNSTATED_L_MIN if raw else 0.0
    flow = check_value("o2", raw)
    return flow > 0, flow


def parse_observation(body: Any, now: datetime, max_future_skew: timedelta,
                      max_age: timedelta | None = None) -> Observation | list[dict[str, Any]]:
    """The observation set of a request body, or every problem with its location (nothing half-accepted)."""
    if not isinstance(body, dict):
        return [_error(None, "an observation set must be a JSON object", "type_error")]
    errors: list[dict[str, Any]] = []
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        errors.append(_error(None, f"unknown field(s) {unknown}; a set has {', '.join(FIELDS)}", "extra_forbidden"))
    patient_id = body.get("patient_id")
    if not isinstance(patient_id, str) or not PATIENT_ID_PATTERN.fullmatch(patient_id):
        errors.append(_error("patient_id", f"patient_id must be {PATIENT_ID_RULE}", "pattern"))
    ts = now
    if body.get("ts") is not None:
        earliest = EARLIEST_READING_AT if max_age is None else max(EARLIEST_READING_AT, now - max_age)
        try:
            ts = parse_ts(body["ts"])
        except ValueError as exc:
            errors.append(_error("ts", str(exc), "datetime"))
        else:
            if ts < earliest:
                errors.append(_error("ts", f"timestamp {ts.isoformat()} is before {earliest.isoformat()}, the "
                                           "earliest reading accepted", "too_early"))
            elif ts > now + max_future_skew:
                errors.append(_error("ts", f"timestamp {ts.isoformat()} is in the future", "future"))
    by = body.get("by")
    if by is not None and (not isinstance(by, str) or not 1 <= len(by.strip()) <= BY_MAX
                           or not by.isprintable()):
        errors.append(_error("by", f"by (who charted) must be printable text of 1–{BY_MAX} characters", "string"))
    scale = body.get("spo2_scale", 1)
    if isinstance(scale, bool) or scale not in (1, 2):
        errors.append(_error("spo2_scale", "spo2_scale must be 1 (target 94–98 %) or 2 (hypercapnic respiratory "
                                           "failure, target 88–92 %)", "enum"))
    values: dict[str, float] = {}
    on_oxygen: bool | None = None
    for vital in VITALS:
        raw = body.get(vital)
        if raw is None:
            continue
        try:
            if vital == "o2":
                on_oxygen, values[vital] = _o2(raw)
            elif vital == "acvpu" and not isinstance(raw, str):
                raise TypeError(f"consciousness must be one of {', '.join(ACVPU_CODES)}")
            else:
                values[vital] = check_value(vital, raw)
        except TypeError as exc:
            errors.append(_error(vital, str(exc), "type_error"))
        except ValueError as exc:
            errors.append(_error(vital, str(exc), "implausible"))
    if not any(body.get(v) is not None for v in VITALS):
        errors.append(_error(None, f"an observation set needs at least one of {', '.join(VITALS)}", "missing"))
    if errors:
        return errors
    acvpu = None if "acvpu" not in values else ACVPU_CODES[int(values["acvpu"])]
    result = news2.score(rr=values.get("rr"), spo2=values.get("spo2"), spo2_scale=scale, on_oxygen=on_oxygen,
                         sbp=values.get("sbp"), hr=values.get("hr"), acvpu=acvpu, temp=values.get("temp"))
    readings = [Reading(patient_id, vital, ts, value, QUALITY_OK, SOURCE_CHARTED)  # type: ignore[arg-type]
                for vital, value in values.items() if math.isfinite(value)]
    missing = tuple(v for v in VITALS if v not in values)
    return Observation(patient_id, ts, by.strip() if by else None, readings, result, missing)  # type: ignore[arg-type]
