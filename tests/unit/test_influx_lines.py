"""``app.ingest_lines.influx_lines`` cuts a body where InfluxDB's ``scanLine`` does (issue 21, finding 11): its
shortcuts (a plain split when quotes pair within lines; the encoder's own lines taken whole) against the
character-by-character port on arbitrary bodies (Hypothesis). The port itself is checked against a real influxd in
``tests/integration/test_influx_line_protocol_parity.py``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.ingest_lines import _scan_line, influx_lines


def scanned(body: str) -> list[str]:
    lines, i, n = [], 0, len(body)
    while True:
        end = _scan_line(body, i, n)
        lines.append(body[i:end])
        if end >= n:
            return lines
        i = end + 1


@settings(max_examples=3000, deadline=None)
@given(st.text(st.sampled_from(list('ab =,"\\\n#')), max_size=60))
def test_influx_lines_equals_the_scan(body: str) -> None:
    assert influx_lines(body) == scanned(body)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(['vitals,patient_id=a,vital=hr value=80,quality="ok" 1', 'x="a\nb"', "# c", "",
                                 'vitals,patient_id=b,vital=hr value=1 2', 'm,t="x" f="y', '"', "\\"]), max_size=8))
def test_influx_lines_equals_the_scan_on_line_like_bodies(parts: list[str]) -> None:
    body = "\n".join(parts)
    assert influx_lines(body) == scanned(body)


def test_examples() -> None:
    assert influx_lines('m f="a\nb" 1\nm f=2 3') == ['m f="a\nb" 1', "m f=2 3"]
    assert influx_lines("m f=1\\\nx 2\nm f=2") == ["m f=1\\\nx 2", "m f=2"]  # an escaped newline continues
    assert influx_lines('m,t="a\nm f=1') == ['m,t="a', "m f=1"]  # a quote in a tag is no string
    assert influx_lines('# a="b\nm f=1\n') == ['# a="b\nm f=1\n']  # a comment's open string runs on
