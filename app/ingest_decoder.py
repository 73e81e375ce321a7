"""The typed fast path of ``POST /v1/readings``: msgspec decodes and validates a clean batch in one pass.

``decode_batch`` parses the body straight into per-vital structs (a tagged union on ``vital``, each with its
plausible range, unknown fields refused), then applies the rules a struct cannot state (patient id and quality
patterns, timestamp form and range) in one tight loop. It answers only for a batch in which **every** item is
valid; anything else (malformed JSON, a bad item, an ACVPU letter, a value msgspec will not coerce) returns
``None`` and the route runs the full validator (``app.ingest.validate_batch``), which names every problem. So
the fast path can only ever accept what the full validator accepts, with the same readings:
``tests/unit/test_ingest_decoder.py`` checks that on arbitrary batches (Hypothesis).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Union

import msgspec

from app.domain import Reading
from models.schema import EARLIEST_READING_AT, PATIENT_ID_PATTERN, PLAUSIBLE_RANGES, QUALITY_OK, QUALITY_PATTERN, VITALS


def _item_type(vital: str) -> type[msgspec.Struct]:
    lo, hi = PLAUSIBLE_RANGES[vital]
    # ACVPU as a whole-number code only; its letters (and 2.0) take the full path, which converts them.
    value: Any = Annotated[int, msgspec.Meta(ge=int(lo), le=int(hi))] if vital == "acvpu" else \
        Annotated[float, msgspec.Meta(ge=lo, le=hi)]
    return msgspec.defstruct(f"Reading_{vital}", [("patient_id", str), ("value", value), ("ts", str),
                                                  ("quality", str, QUALITY_OK)],
                             tag_field="vital", tag=vital, forbid_unknown_fields=True, gc=False)


_ITEMS = {vital: _item_type(vital) for vital in VITALS}
_VITAL_OF = {cls: vital for vital, cls in _ITEMS.items()}


_Item = Union[tuple(_ITEMS.values())]  # noqa: UP007 - built from a tuple at run time  # type: ignore[valid-type]
_Batch = msgspec.defstruct("_Batch", [("readings", list[_Item])], forbid_unknown_fields=True, gc=False)

_DECODER = msgspec.json.Decoder(_Batch)


def decode_batch(body: bytes, now: datetime, max_future_skew: timedelta, max_age: timedelta | None = None,
                 max_items: int | None = None) -> list[Reading] | None:
    """Every reading of a wholly valid batch body (``{"readings": [...]}``), or None: let the full path answer.

    The rules are ``app.ingest.validate_batch``'s with the same ``now``, skew and horizon."""
    try:
        items = _DECODER.decode(body).readings
    except msgspec.ValidationError:
        return None
    except msgspec.DecodeError:
        return None
    if max_items is not None and len(items) > max_items:
        return None
    horizon = now + max_future_skew
    earliest = EARLIEST_READING_AT if max_age is None else max(EARLIEST_READING_AT, now - max_age)
    known: set[str] = set()
    vital_of, fromisoformat, utc = _VITAL_OF, datetime.fromisoformat, UTC
    id_ok, quality_ok = PATIENT_ID_PATTERN.fullmatch, QUALITY_PATTERN.fullmatch
    readings: list[Reading] = []
    append = readings.append
    for item in items:
        patient_id, quality = item.patient_id, item.quality
        if patient_id not in known:
            if not id_ok(patient_id):
                return None
            known.add(patient_id)
        if quality != QUALITY_OK and not quality_ok(quality):
            return None
        try:
            ts = fromisoformat(item.ts)
        except ValueError:
            return None
        if ts.tzinfo is not utc:  # "Z" parses to UTC itself; an offset is converted; naive goes to the full path
            if ts.utcoffset() is None:
                return None
            try:
                ts = ts.astimezone(utc)
            except OverflowError:
                return None
        if ts.microsecond % 1000:
            ts = ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000)
        if not earliest <= ts <= horizon:
            return None
        append(Reading(patient_id, vital_of[type(item)], ts, float(item.value), quality))
    return readings
