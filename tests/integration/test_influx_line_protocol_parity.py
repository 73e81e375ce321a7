"""``POST /v1/write`` reads line protocol as InfluxDB 1.x does (issue 21, finding 11), checked against a real
``influxd``: a newline inside a quoted string field is part of the string, not the end of a line; a line with a
duplicate tag is refused; a field named like a tag never decides the patient (InfluxDB keeps the tag as the series;
the service refuses the line rather than merge the two)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ingest_lines import influx_lines, reading_lines, validate_lines
from app.storage.influxd_local import ManagedInfluxd
from models.line_protocol import encode_point
from tests.support.ids import unique

pytestmark = pytest.mark.influx
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
STAMP = int(NOW.timestamp() * 1000)
_counter = itertools.count()


def influx_points(influxd: ManagedInfluxd, body: str) -> tuple[int, list[list]]:
    """InfluxDB's answer to ``body`` written to a fresh database: (status, rows of ``SELECT *``)."""
    database = unique("parity")
    influxd.create_database(database)
    response = httpx.post(f"{influxd.url}/write", params={"db": database, "precision": "ms"}, content=body.encode())
    result = influxd.query("SELECT * FROM vitals", database=database)
    series = result["results"][0].get("series", [])
    columns = series[0]["columns"] if series else []
    return response.status_code, [dict(zip(columns, row, strict=True)) for s in series for row in s["values"]]


def ours(body: str) -> tuple[list[str], list[dict]]:
    result = validate_lines(reading_lines(body), "ms", NOW, timedelta(minutes=5))
    return [r.patient_id for r in result.readings], result.errors


def test_a_quoted_newline_does_not_end_the_line(influxd: ManagedInfluxd) -> None:
    body = (f'vitals,patient_id=a,vital=hr value=80,quality="x\nvitals,patient_id=b,vital=hr value=90" {STAMP}\n'
            f"vitals,patient_id=c,vital=hr value=70 {STAMP}")
    status, rows = influx_points(influxd, body)
    assert status == 204 and sorted(r["patient_id"] for r in rows) == ["a", "c"]  # two points, no "b"
    assert len(influx_lines(body)) == 2
    patients, errors = ours(body)
    assert patients == ["c"]  # today's main: three lines, b's hr 90 stored as a reading
    assert [e["loc"] for e in errors] == [["body", "lines", 0, "quality"]]  # the newline is no quality


def test_a_duplicate_tag_refuses_the_line(influxd: ManagedInfluxd) -> None:
    body = (f"vitals,patient_id=a,patient_id=b,vital=hr value=80 {STAMP}\n"
            f"vitals,patient_id=c,vital=hr value=70 {STAMP}")
    status, rows = influx_points(influxd, body)
    assert status == 400 and [r["patient_id"] for r in rows] == ["c"]  # "duplicate tags"; the good line kept
    patients, errors = ours(body)
    assert patients == ["c"]  # today's main: ["b", "c"] (the last tag won)
    assert errors[0]["loc"] == ["body", "lines", 0] and "duplicate tag" in errors[0]["msg"]


@pytest.mark.parametrize("line", [
    f'vitals,patient_id=a,vital=hr value=80,patient_id="b" {STAMP}',
    f'vitals,patient_id=a,vital=hr value=80,vital="spo2" {STAMP}',
    f'vitals,patient_id=a,vital=hr,value=30 value=80 {STAMP}',
])
def test_a_field_named_like_a_tag_never_decides_the_reading(influxd: ManagedInfluxd, line: str) -> None:
    status, rows = influx_points(influxd, line)
    assert status == 204 and len(rows) == 1  # InfluxDB keeps the tag as the series and the field beside it
    patients, errors = ours(line)
    assert patients == [] and errors[0]["loc"] == ["body", "lines", 0]  # today's main: the field overrode the tag
    assert "tag" in errors[0]["msg"] and "field" in errors[0]["msg"]


field_text = st.text(st.sampled_from(list('ab \n\\",=#')), max_size=12)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(qualities=st.lists(field_text, min_size=1, max_size=5))
def test_lines_are_cut_where_influxd_cuts_them(influxd: ManagedInfluxd, qualities: list[str]) -> None:
    """Points whose string field holds newlines, quotes, backslashes and separators: as many lines as points."""
    body = "\n".join(encode_point("vitals", {"patient_id": f"p{k}", "vital": "hr"}, {"value": 80.0, "quality": q},
                                  STAMP + next(_counter)) for k, q in enumerate(qualities))
    status, rows = influx_points(influxd, body)
    assert status == 204, body
    assert len(rows) == len(qualities)
    assert [line for line in influx_lines(body) if line.strip()] == body_points(body, len(qualities))
    assert sorted(r["quality"] for r in rows) == sorted(qualities)


def body_points(body: str, n: int) -> list[str]:
    """The ``n`` points of ``body`` as written: each starts at ``vitals,patient_id=p<k>,``."""
    starts = [body.index(f"vitals,patient_id=p{k},") for k in range(n)] + [len(body) + 1]
    return [body[a:b - 1] for a, b in itertools.pairwise(starts)]
