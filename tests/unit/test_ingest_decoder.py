"""The typed fast path of ``POST /v1/readings`` (``app.ingest_decoder``) against the full validator
(``app.ingest.validate_batch``): on any body, the fast path either declines (None) or returns exactly the full
validator's readings for a batch in which the full validator finds no error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import given
from hypothesis import strategies as st

from app.ingest import validate_batch
from app.ingest_decoder import decode_batch
from models.schema import PLAUSIBLE_RANGES

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)
AGE = timedelta(days=365)


def full(body: bytes) -> list | None:
    """The full path's readings, or None where it answers 422 (any error, the body's shape included)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    items = parsed.get("readings") if isinstance(parsed, dict) else None
    if not isinstance(items, list):
        return None
    result = validate_batch(items, NOW, SKEW, AGE)
    return None if result.errors else result.readings


def _ts(moment: datetime, offset_min: int, style: int) -> str:
    local = moment.astimezone(timezone(timedelta(minutes=offset_min)))
    text = local.isoformat()
    return text.replace("+00:00", "Z") if style == 0 else text if style == 1 else text.replace("T", " ")


_moments = st.datetimes(min_value=datetime(2025, 11, 1), max_value=datetime(2026, 11, 25),
                        timezones=st.just(UTC))
_valid_ts = st.builds(_ts, _moments, st.sampled_from([0, 0, 60, -300, 330]), st.integers(0, 2))
_recent_ts = st.builds(_ts, st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 11, 24, 12),
                                         timezones=st.just(UTC)), st.sampled_from([0, 60, -300]), st.integers(0, 2))
_odd_ts = st.sampled_from(["2026-11-24T11:00:00", "nope", "2026-11-24T12:04:59.9999Z", "2026-11-24T12:05:00.001Z",
                           "2025-11-24T11:59:59.999Z", "2025-11-24T12:00:00Z", "20261124T110000Z",
                           "2026-11-24t11:00:00z", "2026-11-24T11:00:00.123456789Z", "9999-12-31T23:59:59-05:00"])


@st.composite
def _item(draw: st.DrawFn) -> dict:
    vital = draw(st.sampled_from([*PLAUSIBLE_RANGES, "bp"]))
    lo, hi = PLAUSIBLE_RANGES.get(vital, (0.0, 1.0))
    value = draw(st.one_of(
        st.floats(lo, hi), st.integers(int(lo), int(hi)), st.floats(lo - 50, hi + 50), st.floats(),
        st.booleans(), st.none(), st.sampled_from(["A", "v", "80", 2.0, 4.5, 10**30])))
    item = {"patient_id": draw(st.one_of(st.sampled_from(["bed-01", "p_2", "W1-bed-7", "x y", "", "bed-01\n",
                                                          "é", "a" * 65]), st.text(max_size=3))),
            "vital": vital, "value": value, "ts": draw(st.one_of(_valid_ts, _valid_ts, _odd_ts))}
    if draw(st.booleans()):
        item["quality"] = draw(st.sampled_from(["ok", "probe_off", "Bad", "", None, 3]))
    if draw(st.integers(0, 9)) == 0:
        item["extra"] = None
    if draw(st.integers(0, 9)) == 0:
        del item[draw(st.sampled_from(["patient_id", "vital", "value", "ts"]))]
    return item


_bodies = st.one_of(
    # json (not orjson) writes 10**30 and NaN/Infinity literals too: both parsers must then agree to refuse
    st.lists(_item(), max_size=6).map(lambda items: json.dumps({"readings": items}).encode()),
    st.lists(_item(), max_size=3).map(lambda items: json.dumps({"readings": items, "source": "gw-1"}).encode()),
    st.sampled_from([b"", b"[]", b"{}", b'{"readings": {}}', b'{"readings": [1]}', b"{bad json", b"null"]),
)


@given(_bodies)
def test_the_fast_path_never_disagrees_with_the_full_validator(body):
    fast = decode_batch(body, NOW, SKEW, AGE)
    if fast is not None:
        assert fast == full(body)


@given(st.lists(st.builds(dict, patient_id=st.sampled_from(["bed-01", "bed-02", "w2-bed-9"]),
                          vital=st.sampled_from(["hr", "rr", "temp"]), value=st.integers(30, 40),
                          ts=_recent_ts), min_size=1, max_size=20))
def test_a_clean_batch_takes_the_fast_path(items):
    body = orjson.dumps({"readings": items})
    assert decode_batch(body, NOW, SKEW, AGE) == full(body) is not None


#: A few times a batch repeats (the fast path parses each distinct text once a batch): good ones, the same instant
#: in another offset, and ones the full path refuses.
_shared_ts = st.sampled_from(["2026-11-24T11:00:00Z", "2026-11-24T11:00:00.0015Z", "2026-11-24T16:30:00+05:30",
                              "2026-11-24T11:00:00", "2026-11-24T12:06:00Z", "2025-01-01T00:00:00Z", "nope"])


@given(st.lists(st.builds(dict, patient_id=st.sampled_from(["bed-01", "bed-02", "x y"]),
                          vital=st.sampled_from(["hr", "spo2", "acvpu"]), value=st.sampled_from([0, 1, 80, 95.5]),
                          ts=_shared_ts), min_size=1, max_size=12))
def test_repeated_timestamps_give_the_full_validators_readings(items):
    body = orjson.dumps({"readings": items})
    fast = decode_batch(body, NOW, SKEW, AGE)
    if fast is not None:
        assert fast == full(body)
        assert [r.ts for r in fast] == [r.ts for r in full(body)]
        assert all(r.ts.tzinfo is UTC for r in fast)
    else:  # it declines only what the full path refuses
        assert full(body) is None


def test_the_fast_path_declines_what_only_the_full_path_converts_or_names():
    ok = {"patient_id": "bed-01", "vital": "hr", "value": 80, "ts": "2026-11-24T11:00:00Z"}
    assert decode_batch(orjson.dumps({"readings": [ok]}), NOW, SKEW, AGE) is not None
    for bad in ({**ok, "vital": "acvpu", "value": "V"}, {**ok, "value": 400}, {**ok, "ts": "2026-11-24T13:00:00Z"},
                {**ok, "patient_id": "x y"}, {**ok, "quality": "Bad"}, {**ok, "extra": 1}):
        assert decode_batch(orjson.dumps({"readings": [ok, bad]}), NOW, SKEW, AGE) is None
    assert decode_batch(orjson.dumps({"readings": [ok] * 3}), NOW, SKEW, AGE, max_items=2) is None


@given(st.lists(st.fixed_dictionaries(
    {"patient_id": st.just("bed-01"), "vital": st.sampled_from(["rr", "sbp"]), "value": st.integers(40, 80),
     "ts": _recent_ts}, optional={"source": st.sampled_from(["monitor", "charted", "nurse", 3])}),
    min_size=1, max_size=8))
def test_the_fast_path_reads_the_source_as_the_full_path_does(items):
    body = orjson.dumps({"readings": items})
    fast = decode_batch(body, NOW, SKEW, AGE)
    if all(item.get("source", "monitor") in ("monitor", "charted") for item in items):
        assert fast == full(body) is not None
        assert [r.source for r in fast] == [item.get("source", "monitor") for item in items]
    else:
        assert fast is None and full(body) is None  # an unknown source: the full path names it
