"""Line-protocol escaping and the reading encoder of ``models.line_protocol`` (no sockets; the same rules are
checked against a real influxd in ``tests/integration/test_influx_line_protocol.py``; the simulator's sink,
which writes through the same encoder, in ``tests/unit/test_simulator_live.py``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain import Reading
from app.storage.codec import from_ms, to_ms
from models.line_protocol import (
    ReadingEncoder,
    encode_point,
    escape_tag,
    format_field,
    format_string,
    parse_line,
)

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)

#: What a tag value may hold: anything but a line break, not empty, not ending in a backslash.
tag_text = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), min_size=1).filter(
    lambda s: not s.endswith("\\")
)
field_text = st.text(st.characters(blacklist_categories=("Cs",)))


def test_reading_line_exact() -> None:
    line = ReadingEncoder().encode_lines([Reading("bed 7,a=b", "hr", T0 + timedelta(milliseconds=5), 72.0, "ok")])
    assert line == [r'vitals,patient_id=bed\ 7\,a\=b,vital=hr value=72.0,quality="ok" 1709280000005']


def test_point_sorts_tags_and_types_fields() -> None:
    line = encode_point("scores", {"z": "1", "a": "2"}, {"risk": 0.25, "n": 3, "ok": True, "s": 'say "hi" \\'}, 7)
    assert line == r'scores,a=2,z=1 risk=0.25,n=3i,ok=true,s="say \"hi\" \\" 7'


def test_escaping_examples() -> None:
    assert escape_tag("a b,c=d") == r"a\ b\,c\=d"
    assert escape_tag("a\\,b") == r"a\\,b"  # a backslash inside a value is carried as it is
    assert format_field('say "hi" \\o/') == r'"say \"hi\" \\o/"'


@pytest.mark.parametrize("bad", ["", "a\nb", "a\rb", "ends\\"])
def test_unrepresentable_tag_values_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        escape_tag(bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        ReadingEncoder().encode([Reading("p", "hr", T0, bad)])
    with pytest.raises(ValueError):
        format_field(bad)


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError):
        ReadingEncoder().encode([Reading("p", "hr", datetime(2024, 1, 1), 70.0)])


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_ms_roundtrip(ts: datetime) -> None:
    ms = to_ms(ts)
    assert from_ms(ms) == ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000)  # floored, exact
    assert ReadingEncoder().encode_lines([Reading("p", "hr", ts, 1.0)])[0].endswith(f" {ms}")  # its inlined to_ms


@given(
    patient_id=tag_text,
    quality=field_text,
    value=st.floats(allow_nan=False, allow_infinity=False),
    ms=st.integers(0, 2**42),
)
def test_reading_roundtrip(patient_id: str, quality: str, value: float, ms: int) -> None:
    encoder = ReadingEncoder()
    reading = Reading(patient_id, "spo2", from_ms(ms), value, quality)
    (line,) = encoder.encode_lines([reading, reading])[:1]
    assert "\n" not in line.split(" value=")[0]
    assert parse_line(line) == ("vitals", {"patient_id": patient_id, "vital": "spo2"},
                                {"value": value, "quality": quality}, ms)


field_key = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
field_value = st.one_of(field_text, st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False))


@given(tags=st.dictionaries(tag_text, tag_text, max_size=4), fields=st.dictionaries(field_key, field_value, min_size=1))
def test_point_roundtrip(tags: dict[str, str], fields: dict[str, object]) -> None:
    line = encode_point("m x,y", tags, fields, 1)
    assert parse_line(line) == ("m x,y", tags, fields, 1)


def test_encoder_cache_is_bounded() -> None:
    encoder = ReadingEncoder(max_cache=10)
    encoder.encode([Reading(f"p{i}", "hr", T0, 70.0) for i in range(100)])
    assert len(encoder._prefix) <= 10


@given(st.text())
def test_a_string_field_escapes_exactly_backslashes_and_quotes(text):
    escaped = format_string(text)
    assert escaped == '"' + "".join("\\" + c if c in '"\\' else c for c in text) + '"'


_zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])


@given(st.lists(st.tuples(st.sampled_from(["bed-01", "bed 2"]), st.sampled_from(["hr", "spo2"]),
                          st.integers(0, 3), _zones, st.floats(0, 300), st.sampled_from(["ok", "motion"])),
                min_size=1, max_size=30))
def test_a_batch_encodes_each_reading_as_it_would_alone(rows) -> None:
    """The encoder converts each distinct time of a batch once (a batch repeats its ticks): the lines must be those
    of each reading encoded alone, whatever the offset the same instant is written in."""
    readings = [Reading(p, v, (T0 + timedelta(seconds=k, microseconds=1500)).astimezone(zone), value, q)
                for p, v, k, zone, value, q in rows]
    alone = [ReadingEncoder().encode_lines([r])[0] for r in readings]
    assert ReadingEncoder().encode_lines(readings) == alone
    assert alone == [encode_point("vitals", {"patient_id": r.patient_id, "vital": r.vital},
                                  {"value": r.value, "quality": r.quality}, to_ms(r.ts)) for r in readings]


def test_a_naive_time_after_an_aware_one_is_refused() -> None:
    with pytest.raises(ValueError):
        ReadingEncoder().encode([Reading("p", "hr", T0, 70.0), Reading("p", "hr", T0.replace(tzinfo=None), 70.0)])


def test_equal_times_in_a_zone_with_folds_keep_their_instants() -> None:
    """01:30 in London on 2025-10-26 happens twice; Python calls the two equal (PEP 495): the encoder's per-batch
    time cache must not give the second the first's milliseconds."""
    from zoneinfo import ZoneInfo

    first = datetime(2025, 10, 26, 1, 30, tzinfo=ZoneInfo("Europe/London"))
    second = first.replace(fold=1)
    lines = ReadingEncoder().encode_lines([Reading("p", "hr", first, 70.0), Reading("p", "hr", second, 71.0)])
    assert [line.rsplit(" ", 1)[1] for line in lines] == [str(to_ms(first)), str(to_ms(second))]
    assert to_ms(second) - to_ms(first) == 3_600_000
