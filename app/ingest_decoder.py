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

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Union

import msgspec

from app.domain import Reading
from app.ingest import fast_utc_ts
from models.schema import (
    EARLIEST_READING_AT,
    PATIENT_ID_PATTERN,
    PLAUSIBLE_RANGES,
    QUALITY_OK,
    QUALITY_PATTERN,
    SOURCE_MONITOR,
    SOURCES,
    VITALS,
)


def _item_type(vital: str) -> type[msgspec.Struct]:
    lo, hi = PLAUSIBLE_RANGES[vital]
    # ACVPU as a whole-number code only; its letters (and 2.0) take the full path, which converts them.
    value: Any = Annotated[int, msgspec.Meta(ge=int(lo), le=int(hi))] if vital == "acvpu" else \
        Annotated[float, msgspec.Meta(ge=lo, le=hi)]
    return msgspec.defstruct(f"Reading_{vital}", [("patient_id", str), ("value", value), ("ts", str),
                                                  ("quality", str, QUALITY_OK),
                                                  ("source", Literal[SOURCES], SOURCE_MONITOR)],  # type: ignore[valid-type]
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
    vital_of = _VITAL_OF
    id_ok, quality_ok = PATIENT_ID_PATTERN.fullmatch, QUALITY_PATTERN.fullmatch
    readings: list[Reading] = []
    append, new = readings.append, tuple.__new__
    times: dict[str, datetime] = {}  # ts text → its UTC time: each distinct text parsed once a batch
    for item in items:
        patient_id, quality, raw_ts = item.patient_id, item.quality, item.ts
        if patient_id not in known:
            if not id_ok(patient_id):
                return None
            known.add(patient_id)
        if quality != QUALITY_OK and not quality_ok(quality):
            return None
        ts = times.get(raw_ts)
        if ts is None:
            ts = fast_utc_ts(raw_ts, earliest, horizon)
            if ts is None:
                return None
            times[raw_ts] = ts
        append(new(Reading, (patient_id, vital_of[type(item)], ts, float(item.value), quality,  # no Python __new__
                             item.source)))
    return readings
