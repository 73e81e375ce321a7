from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.ingest import parse_ts, validate_batch
from models.schema import EARLIEST_READING_AT, PATIENT_ID_RULE, PLAUSIBLE_RANGES, QUALITY_RULE

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def item(**over):
    return {"patient_id": "bed-01", "vital": "hr", "value": 80, "ts": "2026-11-24T11:59:00Z", **over}


def test_valid_batch_becomes_readings_in_utc_ms():
    result = validate_batch([item(ts="2026-11-24T12:59:00.123456+01:00")], NOW, SKEW)
    assert result.errors == []
    (reading,) = result.readings
    assert reading.ts == datetime(2026, 11, 24, 11, 59, 0, 123000, tzinfo=UTC)
    assert reading.quality == "ok"


def test_bad_items_are_named_by_index_and_field_and_good_ones_kept():
    batch = [item(), item(value=400), item(ts="yesterday"), item(vital="bp"), item(patient_id="x y"), item()]
    result = validate_batch(batch, NOW, SKEW)
    assert len(result.readings) == 2
    locs = {tuple(e["loc"]) for e in result.errors}
    assert locs == {
        ("body", "readings", 1, "value"),
        ("body", "readings", 2, "ts"),
        ("body", "readings", 3, "vital"),
        ("body", "readings", 4, "patient_id"),
    }
    hr_error = next(e for e in result.errors if e["loc"][2] == 1)
    assert "400" in hr_error["msg"] and hr_error["type"] == "implausible"


def test_messages_quote_the_contract() -> None:
    """What a 422 says comes from ``models.schema``, so a changed rule changes its message."""
    batch = [item(patient_id="x y"), item(value=400), item(quality="Probe Off"), item(vital="acvpu", value="X"),
             item(vital="acvpu", value=1.5)]
    msgs = [e["msg"] for e in validate_batch(batch, NOW, SKEW).errors]
    lo, hi = PLAUSIBLE_RANGES["hr"]
    assert msgs == [
        f"patient_id must be {PATIENT_ID_RULE}",
        f"heart rate 400 bpm is outside {lo:g}–{hi:g}",
        f"quality must be {QUALITY_RULE}",
        "consciousness 'X' is not one of A, C, V, P, U",
        "consciousness code must be a whole number 0–4 (A, C, V, P, U)",
    ]
    assert PATIENT_ID_RULE == "1–64 of [A-Za-z0-9_-]" and QUALITY_RULE == "1–32 of [a-z_]"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"ts": "2026-11-24T11:59:00"}, "ts"),  # naive
        ({"ts": "2026-11-24T12:30:00Z"}, "ts"),  # 30 min in the future
        ({"value": float("nan")}, "value"),
        ({"value": True}, "value"),
        ({"value": "80"}, "value"),
        ({"vital": "acvpu", "value": "X"}, "value"),
        ({"vital": "acvpu", "value": 1.5}, "value"),
        ({"quality": "Probe Off"}, "quality"),
        ({"extra": 1}, None),
    ],
)
def test_each_kind_of_bad_item_is_rejected(over, field):
    result = validate_batch([item(**over)], NOW, SKEW)
    assert result.readings == []
    assert result.errors[0]["loc"][:3] == ["body", "readings", 0]
    assert (result.errors[0]["loc"][3:] or [None])[0] == field


def test_acvpu_letters_map_to_codes():
    result = validate_batch([item(vital="acvpu", value="v")], NOW, SKEW)
    assert result.readings[0].value == 2.0


@given(st.sampled_from(sorted(PLAUSIBLE_RANGES)), st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_plausible_range_is_the_only_numeric_gate(vital, value):
    result = validate_batch([item(vital=vital, value=value)], NOW, SKEW)
    lo, hi = PLAUSIBLE_RANGES[vital]
    in_range = lo <= value <= hi and (vital != "acvpu" or float(value).is_integer())
    assert bool(result.readings) == in_range


@pytest.mark.parametrize("ts", ["1677-09-22T00:00:00Z", "1900-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
                                "1999-12-31T23:59:59.999Z", "2000-01-01T00:59:59.999+01:00"])
def test_a_reading_before_the_floor_is_named(ts):
    """Unset device clocks (1970), bad defaults (1900), datetime64[ns]'s first day (1677): not ward data."""
    result = validate_batch([item(), item(ts=ts)], NOW, SKEW)
    assert len(result.readings) == 1  # the good item is kept
    (error,) = result.errors
    assert error["loc"] == ["body", "readings", 1, "ts"] and error["type"] == "too_early"
    assert error["msg"].endswith("is before 2000-01-01T00:00:00Z, the earliest reading accepted")


@pytest.mark.parametrize("ts", ["2000-01-01T00:00:00Z", "2000-01-01T01:00:00+01:00", "1999-12-31T19:00:00-05:00",
                                "2000-01-01T00:00:00.000999Z"])  # truncated to the millisecond: the floor itself
def test_a_reading_at_the_floor_is_accepted(ts):
    result = validate_batch([item(ts=ts)], NOW, SKEW)
    assert result.errors == [] and result.readings[0].ts == EARLIEST_READING_AT


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_a_timestamp_whose_utc_conversion_overflows_is_named(ts):
    with pytest.raises(ValueError, match="out of range"):
        parse_ts(ts)
    (error,) = validate_batch([item(ts=ts)], NOW, SKEW).errors
    assert error["loc"] == ["body", "readings", 0, "ts"] and error["type"] == "datetime"


def test_parse_ts_rejects_garbage():
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_ts("12/11/2026")
    with pytest.raises(ValueError):
        parse_ts(1700000000)


_items = st.fixed_dictionaries(
    {
        "patient_id": st.one_of(st.sampled_from(["bed-01", "p_2", "x y", "", "bed-01\n"]), st.text(max_size=3)),
        "vital": st.sampled_from([*PLAUSIBLE_RANGES, "bp"]),
        "value": st.one_of(st.floats(), st.integers(-5, 400), st.booleans(), st.sampled_from(["A", "v", "80"])),
        "ts": st.one_of(
            st.datetimes(timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat()),
            st.sampled_from(["2026-11-24T11:00:00.123456Z", "2026-11-24T13:00:00+02:00", "nope",
                             # the floor's edges and UTC conversions that leave datetime's range
                             "1999-12-31T23:59:59.999Z", "2000-01-01T00:00:00.0009Z", "2000-01-01T00:59:59+01:00",
                             "1970-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"]),
        ),
    },
    optional={"quality": st.sampled_from(["ok", "probe_off", "Bad", ""]), "extra": st.none(),
              "source": st.sampled_from(["monitor", "charted", "nurse", "", 1, None])},
)


@given(st.lists(_items, max_size=5))
def test_fast_path_agrees_with_the_full_check(batch):
    from app.ingest import _check, _fast

    for index, raw in enumerate(batch):
        fast = _fast(raw, set(), NOW + SKEW)
        full = _check(index, raw, NOW + SKEW)
        if fast is not None:
            assert full == fast
        # the fast path may decline a valid item (acvpu letters), never accept an invalid one
        if not isinstance(full, list) and raw.get("vital") != "acvpu":
            assert fast == full


def test_trailing_newline_in_an_id_is_rejected():
    assert validate_batch([item(patient_id="bed-01\n")], NOW, SKEW).errors


def test_the_source_is_kept_and_an_unknown_one_is_named():
    items = [{"patient_id": "bed-1", "vital": "rr", "value": 18, "ts": "2026-11-24T11:00:00Z", "source": "charted"},
             {"patient_id": "bed-1", "vital": "rr", "value": 26, "ts": "2026-11-24T11:00:00Z"},
             {"patient_id": "bed-1", "vital": "rr", "value": 26, "ts": "2026-11-24T11:00:00Z", "source": "Charted"}]
    result = validate_batch(items, NOW, SKEW)
    assert [(r.value, r.source) for r in result.readings] == [(18.0, "charted"), (26.0, "monitor")]
    (error,) = result.errors
    assert error["loc"] == ["body", "readings", 2, "source"] and "monitor, charted" in error["msg"]
