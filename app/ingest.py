"""Validation of incoming readings: schema, plausible range, timestamp sanity.

A batch is validated item by item. **Valid items of a batch are stored even when other items are
bad**: one implausible reading from one bed must not drop the rest of the ward's vitals. The 422
answer lists every bad item by index and reason and says how many were accepted; re-sending the
whole batch is safe because writes are idempotent on (patient_id, vital, ts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain import Reading
from models.schema import (
    ACVPU_CODES,
    PATIENT_ID_PATTERN,
    PLAUSIBLE_RANGES,
    QUALITY_OK,
    QUALITY_PATTERN,
    VITAL_NAMES,
    VITAL_UNITS,
    VITALS,
)

_FIELDS = ("patient_id", "vital", "value", "ts", "quality")


@dataclass(frozen=True, slots=True)
class BatchResult:
    readings: list[Reading]
    errors: list[dict[str, Any]]


def _error(index: int, field: str | None, msg: str, type_: str) -> dict[str, Any]:
    loc: list[str | int] = ["body", "readings", index]
    if field:
        loc.append(field)
    return {"loc": loc, "msg": msg, "type": type_}


def parse_ts(raw: Any) -> datetime:
    """ISO 8601 with an offset (``Z`` allowed) → UTC, truncated to the millisecond."""
    if not isinstance(raw, str):
        raise ValueError("timestamp must be an ISO 8601 string")
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"timestamp {raw[:40]!r} is not ISO 8601") from None
    if ts.tzinfo is None:
        raise ValueError("timestamp must carry a timezone offset (e.g. Z)")
    ts = ts.astimezone(UTC)
    return ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000)


def _value(vital: str, raw: Any) -> float:
    if vital == "acvpu" and isinstance(raw, str):
        if raw.upper() not in ACVPU_CODES:
            raise ValueError(f"consciousness {raw!r} is not one of A, C, V, P, U")
        return float(ACVPU_CODES.index(raw.upper()))
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise TypeError("value must be a number")
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("value must be finite")
    lo, hi = PLAUSIBLE_RANGES[vital]
    if not lo <= value <= hi:
        unit = VITAL_UNITS[vital]
        raise ValueError(f"{VITAL_NAMES[vital]} {value:g}{' ' + unit if unit else ''} is outside {lo:g}–{hi:g}")
    if vital == "acvpu" and not value.is_integer():
        raise ValueError("consciousness code must be a whole number 0–4 (A, C, V, P, U)")
    return value


def validate_batch(items: Sequence[Any], now: datetime, max_future_skew: timedelta) -> BatchResult:
    """Split a batch into valid readings and FastAPI-shaped errors (one or more per bad item)."""
    horizon = now + max_future_skew
    readings: list[Reading] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(_error(index, None, "reading must be an object", "type_error"))
            continue
        item_errors = []
        unknown = set(item) - set(_FIELDS)
        if unknown:
            item_errors.append(_error(index, None, f"unknown field(s) {sorted(unknown)}", "extra_forbidden"))
        patient_id = item.get("patient_id")
        if not isinstance(patient_id, str) or not PATIENT_ID_PATTERN.match(patient_id):
            item_errors.append(_error(index, "patient_id", "patient_id must be 1–64 of [A-Za-z0-9_-]", "pattern"))
        vital = item.get("vital")
        if vital not in VITALS:
            item_errors.append(_error(index, "vital", f"vital must be one of {', '.join(VITALS)}", "enum"))
        value = None
        if vital in VITALS:
            try:
                value = _value(vital, item.get("value"))
            except TypeError as exc:
                item_errors.append(_error(index, "value", str(exc), "type_error"))
            except ValueError as exc:
                item_errors.append(_error(index, "value", str(exc), "implausible"))
        ts = None
        try:
            ts = parse_ts(item.get("ts"))
            if ts > horizon:
                item_errors.append(_error(index, "ts", f"timestamp {ts.isoformat()} is in the future", "future"))
        except ValueError as exc:
            item_errors.append(_error(index, "ts", str(exc), "datetime"))
        quality = item.get("quality", QUALITY_OK)
        if not isinstance(quality, str) or not QUALITY_PATTERN.match(quality):
            item_errors.append(_error(index, "quality", "quality must be 1–32 of [a-z_]", "pattern"))
        if item_errors:
            errors.extend(item_errors)
            continue
        readings.append(Reading(patient_id, vital, ts, value, quality))  # type: ignore[arg-type]
    return BatchResult(readings, errors)
