"""Validation of incoming readings: schema, plausible range, timestamp sanity.

A batch is validated item by item. **Valid items of a batch are stored even when other items are
bad**: one implausible reading from one bed must not drop the rest of the ward's vitals. The 422
answer lists every bad item by index and reason and says how many were accepted; re-sending the
whole batch is safe because writes are idempotent on (patient_id, vital, ts, source).

A timestamp must carry an offset and lie in ``[EARLIEST_READING_AT, now + max_future_skew]``
(``models.schema``); one whose UTC conversion leaves ``datetime``'s range is named like any other bad ``ts``.
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
    EARLIEST_READING_AT,
    PATIENT_ID_PATTERN,
    PATIENT_ID_RULE,
    PLAUSIBLE_RANGES,
    QUALITY_OK,
    QUALITY_PATTERN,
    QUALITY_RULE,
    SOURCE_MONITOR,
    SOURCES,
    VITAL_NAMES,
    VITAL_UNITS,
    VITALS,
)

_FIELDS = ("patient_id", "vital", "value", "ts", "quality", "source")
_SOURCE_RULE = f"source must be one of {', '.join(SOURCES)} (absent: monitor)"
_ACVPU_LETTERS = ", ".join(ACVPU_CODES)
_ACVPU_LO, _ACVPU_HI = PLAUSIBLE_RANGES["acvpu"]


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
    """ISO 8601 with an offset (``Z`` allowed) → UTC, truncated to the millisecond.

    Only the form is checked here; the accepted range (``EARLIEST_READING_AT`` .. horizon) is ``_check``'s.
    """
    if not isinstance(raw, str):
        raise ValueError("timestamp must be an ISO 8601 string")
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"timestamp {raw[:40]!r} is not ISO 8601") from None
    if ts.tzinfo is None:
        raise ValueError("timestamp must carry a timezone offset (e.g. Z)")
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00 or 0001-01-01T00:00:00+05:00
        raise ValueError(f"timestamp {raw[:40]!r} is out of range: in UTC it falls outside years 1–9999") from None
    return ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000)


def _value(vital: str, raw: Any) -> float:
    if vital == "acvpu" and isinstance(raw, str):
        if raw.upper() not in ACVPU_CODES:
            raise ValueError(f"consciousness {raw!r} is not one of {_ACVPU_LETTERS}")
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
        raise ValueError(f"consciousness code must be a whole number {_ACVPU_LO:g}–{_ACVPU_HI:g} ({_ACVPU_LETTERS})")
    return value


def check_value(vital: str, raw: Any) -> float:
    """A value for ``vital`` as ingest accepts it (what-if uses the same rule): the float, or TypeError/ValueError
    with a message naming the problem."""
    return _value(vital, raw)


def _fast(item: Any, known_ids: set[str], horizon: datetime,
          earliest: datetime = EARLIEST_READING_AT) -> Reading | None:
    """The common, valid case at about a microsecond an item.

    ``None`` means "not obviously valid": the item then goes through ``_check``, which accepts it
    or names every problem. Both apply the same rules; tests compare them on arbitrary items.
    """
    if type(item) is not dict:
        return None
    size = len(item)
    if size == 4:
        quality, source = QUALITY_OK, SOURCE_MONITOR
    elif size == 5 or size == 6:
        quality, source = item.get("quality", QUALITY_OK), item.get("source", SOURCE_MONITOR)
        if size - 4 != ("quality" in item) + ("source" in item):  # an unknown field: _check names it
            return None
        if quality != QUALITY_OK and not (type(quality) is str and QUALITY_PATTERN.fullmatch(quality)):
            return None
        if type(source) is not str or source not in SOURCES:
            return None
    else:
        return None
    try:
        patient_id, vital, value, raw_ts = item["patient_id"], item["vital"], item["value"], item["ts"]
    except KeyError:
        return None
    if type(patient_id) is not str or type(vital) is not str:  # a list or object is not hashable: _check names it
        return None
    if patient_id not in known_ids:
        if not PATIENT_ID_PATTERN.fullmatch(patient_id):
            return None
        known_ids.add(patient_id)
    bounds = PLAUSIBLE_RANGES.get(vital)
    kind = type(value)
    if bounds is None or (kind is not float and kind is not int):
        return None
    value = float(value)
    if not bounds[0] <= value <= bounds[1] or (vital == "acvpu" and not value.is_integer()):
        return None  # NaN fails the comparison too
    if type(raw_ts) is not str:
        return None
    ts = fast_utc_ts(raw_ts, earliest, horizon)
    return None if ts is None else Reading(patient_id, vital, ts, value, quality, source)


def fast_utc_ts(raw: str, earliest: datetime, horizon: datetime) -> datetime | None:
    """The UTC time of a timestamp string as ``validate_batch`` accepts it (offset required, truncated to the
    millisecond, within ``[earliest, horizon]``), or None: let the full check answer (and word the error)."""
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if ts.tzinfo is not UTC:  # "Z" parses to UTC itself; an offset is converted; naive goes to the full check
        if ts.utcoffset() is None:
            return None
        try:
            ts = ts.astimezone(UTC)
        except OverflowError:
            return None
    if ts.microsecond % 1000:
        ts = ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000)
    if not earliest <= ts <= horizon:
        return None
    return ts


def validate_batch(items: Sequence[Any], now: datetime, max_future_skew: timedelta,
                   max_age: timedelta | None = None) -> BatchResult:
    """Split a batch into valid readings and FastAPI-shaped errors (one or more per bad item). A reading older
    than ``max_age`` before ``now`` (the service's horizon) is refused; never one before ``EARLIEST_READING_AT``."""
    horizon = now + max_future_skew
    earliest = EARLIEST_READING_AT if max_age is None else max(EARLIEST_READING_AT, now - max_age)
    readings: list[Reading] = []
    errors: list[dict[str, Any]] = []
    known_ids: set[str] = set()
    for index, item in enumerate(items):
        reading = _fast(item, known_ids, horizon, earliest)
        if reading is not None:
            readings.append(reading)
            continue
        checked = _check(index, item, horizon, earliest)
        if isinstance(checked, Reading):
            readings.append(checked)
        else:
            errors.extend(checked)
    return BatchResult(readings, errors)


def _check(index: int, item: Any, horizon: datetime,
           earliest: datetime = EARLIEST_READING_AT) -> Reading | list[dict[str, Any]]:
    """The full check of one item: the reading, or every problem with its location."""
    if not isinstance(item, dict):
        return [_error(index, None, "reading must be an object", "type_error")]
    item_errors = []
    unknown = set(item) - set(_FIELDS)
    if unknown:
        item_errors.append(_error(index, None, f"unknown field(s) {sorted(unknown)}", "extra_forbidden"))
    patient_id = item.get("patient_id")
    if not isinstance(patient_id, str) or not PATIENT_ID_PATTERN.fullmatch(patient_id):
        item_errors.append(_error(index, "patient_id", f"patient_id must be {PATIENT_ID_RULE}", "pattern"))
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
    except ValueError as exc:
        item_errors.append(_error(index, "ts", str(exc), "datetime"))
    else:
        if ts < earliest:
            text = earliest.isoformat().replace("+00:00", "Z")
            item_errors.append(_error(index, "ts", f"timestamp {ts.isoformat()} is before {text}, "
                                                   "the earliest reading accepted", "too_early"))
        elif ts > horizon:
            item_errors.append(_error(index, "ts", f"timestamp {ts.isoformat()} is in the future", "future"))
    quality = item.get("quality", QUALITY_OK)
    if not isinstance(quality, str) or not QUALITY_PATTERN.fullmatch(quality):
        item_errors.append(_error(index, "quality", f"quality must be {QUALITY_RULE}", "pattern"))
    source = item.get("source", SOURCE_MONITOR)
    if not isinstance(source, str) or source not in SOURCES:
        item_errors.append(_error(index, "source", _SOURCE_RULE, "enum"))
    if item_errors:
        return item_errors
    return Reading(patient_id, vital, ts, value, quality, source)  # type: ignore[arg-type]
