"""The plain-line fast parser of ``POST /v1/write`` (``app.ingest_lines.parse_plain``) against the reference parser
(``models.line_protocol.parse_line``): on any line it declines (None), or answers what the reference answers, or
raises ValueError where the reference does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.domain import Reading
from app.ingest import BatchResult
from app.ingest_lines import PRECISIONS, fast_lines, full_lines, parse_plain, reading_lines, validate_lines
from models.line_protocol import ReadingEncoder, parse_line
from models.schema import PLAUSIBLE_RANGES, SOURCES

_readings = st.builds(
    Reading, st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True), st.sampled_from(["hr", "spo2", "acvpu"]),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["ok", "probe_off"]), st.sampled_from(SOURCES))
_encoded = _readings.map(lambda r: ReadingEncoder().encode([r]).decode())
_alphabet = st.sampled_from(list('vitals,patient_id=bed-1 value=80i"q\\ .e-+0123456789tfTF'))
_mutated = st.tuples(_encoded, st.integers(0, 80), st.text(_alphabet, max_size=4), st.integers(0, 3)).map(
    lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + t[3]:])
_lines = st.one_of(_encoded, _mutated, st.text(_alphabet, max_size=40))


@given(_lines)
def test_the_plain_parser_agrees_with_the_reference(line):
    try:
        expected = parse_line(line)
    except (ValueError, IndexError):
        expected = None
    try:
        got = parse_plain(line)
    except ValueError:
        assert expected is None
        return
    if got is not None:
        assert got == expected


@given(_readings)
def test_every_line_the_encoder_writes_takes_the_plain_path(reading):
    line = ReadingEncoder().encode([reading]).decode()
    assert parse_plain(line) == parse_line(line)


# -- the encoded-line fast path of validate_lines (fast_lines) against its full path (full_lines) ------------------

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)
AGE = timedelta(days=365)

_recent = st.builds(
    Reading, st.sampled_from(["bed-01", "bed-02", "w2-bed-9", "x y", "é"]),
    st.sampled_from(["hr", "spo2", "acvpu", "temp", "bp"]),
    st.datetimes(min_value=datetime(2025, 11, 1), max_value=datetime(2026, 11, 24, 12, 6), timezones=st.just(UTC)),
    st.one_of(st.floats(0, 300), st.sampled_from([0.0, 1.0, 2.5, 97.0])), st.sampled_from(["ok", "probe_off", "Bad"]),
    st.sampled_from(SOURCES))


@st.composite
def _valid_reading(draw: st.DrawFn) -> Reading:
    vital = draw(st.sampled_from(list(PLAUSIBLE_RANGES)))
    lo, hi = PLAUSIBLE_RANGES[vital]
    value = float(draw(st.integers(int(lo), int(hi)))) if vital == "acvpu" else draw(st.floats(lo, hi))
    ts = draw(st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2026, 11, 24, 12),
                           timezones=st.just(UTC)))
    return Reading(draw(st.sampled_from(["bed-01", "w2-bed-9"])), vital, ts, value,
                   draw(st.sampled_from(["ok", "probe_off"])))


_recent_line = st.one_of(_recent, _valid_reading()).map(lambda r: ReadingEncoder().encode([r]).decode())
_line_alphabet = st.sampled_from(list('vitals,patient_id=bed-1 value=80i"q\\ .e-+0123456789tfTFnaNA_'))
_recent_mutated = st.tuples(_recent_line, st.integers(0, 90), st.text(_line_alphabet, max_size=4),
                            st.integers(0, 3)).map(lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + t[3]:])
_odd_lines = st.sampled_from([
    'vitals,patient_id=bed-01,vital=hr value=88i 1764000000000000000',
    'vitals,patient_id=bed-01,vital=hr value=t 1764000000000000000',
    'vitals,patient_id=bed-01,vital=hr value=88,quality="" 1764000000000000000',
    'vitals,vital=hr,patient_id=bed-01 value=88 1764000000000000000',
    'vitals,patient_id=bed-01,vital=hr value=88',
    'vitals,patient_id=bed-01,vital=hr value=88 99999999999999999999999999',
    'vitals,patient_id=bed-01,vital=hr value=nan 1764000000000000000',
    'vitals,patient_id=bed-01,vital=acvpu value="V" 1764000000000000000',
    'vitals,patient_id=bed-01,vital=hr value=1_0_0 1764000000000000000',
    'vitals,patient_id=bed-01,vital=hr value=88 1764000000000000000\n',
])
_body_lines = st.lists(st.one_of(_recent_line, _recent_line, _recent_line, _recent_mutated, _odd_lines),
                      max_size=8).map(
    lambda lines: reading_lines("\n".join(lines)))


@given(_body_lines, st.sampled_from(["ms", "ms", "ms", *PRECISIONS]))
def test_the_encoded_line_fast_path_never_disagrees_with_the_full_path(lines, precision):
    ns_per_unit = PRECISIONS[precision]
    fast = fast_lines(lines, ns_per_unit, NOW, SKEW, AGE)
    full = full_lines(lines, ns_per_unit, NOW, SKEW, AGE)
    if fast is not None:
        assert not full.errors
        assert fast == full.readings
        assert [r.ts for r in fast] == [r.ts for r in full.readings]
    assert validate_lines(lines, precision, NOW, SKEW, AGE) == (full if fast is None else BatchResult(fast, []))


@given(st.lists(_valid_reading(), min_size=1, max_size=20))
def test_what_the_service_encodes_takes_the_fast_path(readings):
    lines = reading_lines(ReadingEncoder().encode(readings).decode())
    fast = fast_lines(lines, 1_000_000, NOW, SKEW, AGE)
    assert fast is not None and fast == full_lines(lines, 1_000_000, NOW, SKEW, AGE).readings
