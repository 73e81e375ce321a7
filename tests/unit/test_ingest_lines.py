"""The plain-line fast parser of ``POST /v1/write`` (``app.ingest_lines.parse_plain``) against the reference parser
(``models.line_protocol.parse_line``): on any line it declines (None), or answers what the reference answers, or
raises ValueError where the reference does."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from app.domain import Reading
from app.ingest_lines import parse_plain
from models.line_protocol import ReadingEncoder, parse_line

_readings = st.builds(
    Reading, st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True), st.sampled_from(["hr", "spo2", "acvpu"]),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["ok", "probe_off"]))
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
