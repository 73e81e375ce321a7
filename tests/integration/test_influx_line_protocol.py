"""Escaping checked against the real parser: what the encoder writes, influxd reads back unchanged.

Also the control for the injection test: the attack string really is live when pasted into InfluxQL, so the
contract suite's "nothing read, nothing changed" result is due to bound parameters, not to a harmless payload.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain import Reading
from app.storage.codec import to_ms
from app.storage.influx import InfluxStore
from app.storage.influxd_local import ManagedInfluxd
from models.line_protocol import ReadingEncoder
from tests.support.ids import unique

pytestmark = pytest.mark.influx
T0 = datetime(2024, 3, 3, tzinfo=UTC)

# What InfluxDB 1.x can hold in a tag value (see models/line_protocol.py): no line break, no trailing backslash.
tag_text = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), min_size=1, max_size=40)
tag_text = tag_text.filter(lambda s: not s.endswith("\\"))
field_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
_counter = itertools.count()


# the session influxd is safe to share between examples; a per-test list replaces the profile's, so keep too_slow
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(patient_id=tag_text, quality=field_text, value=st.floats(-1e300, 1e300, allow_nan=False))
def test_escaped_points_roundtrip_through_influxd(influxd: ManagedInfluxd, patient_id: str, quality: str,
                                                 value: float) -> None:
    database = "lp_roundtrip"
    influxd.create_database(database)
    ts = T0 + timedelta(milliseconds=next(_counter))
    body = ReadingEncoder().encode([Reading(patient_id, "hr", ts, value, quality)])
    response = httpx.post(f"{influxd.url}/write", params={"db": database, "precision": "ms"}, content=body)
    assert response.status_code == 204, (body, response.text)
    result = influxd.query(
        "SELECT value, quality, patient_id FROM vitals WHERE patient_id = $p AND time = $t",
        database=database, params={"p": patient_id, "t": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    )
    (row,) = result["results"][0]["series"][0]["values"]
    assert row[0] == to_ms(ts) and float(row[1]) == value and row[2:] == [quality, patient_id]


def test_pasted_id_is_live_but_bound_id_is_inert(influxd: ManagedInfluxd) -> None:
    database = unique("victim")
    influxd.create_database(database)
    # (pasted, `x'; DROP DATABASE d; SELECT '` leaves a bare `SELECT ''`, which fails to parse and so runs nothing;
    # an attacker completes the last statement instead)
    evil = f"x'; DROP DATABASE \"{database}\"; SELECT * FROM vitals WHERE patient_id = '"
    show = lambda: [r[0] for r in influxd.query("SHOW DATABASES")["results"][0]["series"][0]["values"]]  # noqa: E731
    # bound: nothing happens
    result = influxd.query("SELECT * FROM vitals WHERE patient_id = $p", database=database, params={"p": evil})
    assert "series" not in result["results"][0]
    assert database in show()
    # pasted (what the store never does): the stacked DROP DATABASE runs
    pasted = f"SELECT * FROM vitals WHERE patient_id = '{evil}'"
    response = httpx.get(f"{influxd.url}/query", params={"db": database, "q": pasted}, timeout=10)
    assert "DROP DATABASE" in response.text  # 1.6 ran it, with a deprecation warning about GET
    assert database not in show()


async def test_store_sends_ids_only_as_parameters(influxd: ManagedInfluxd, tmp_path: Path) -> None:
    """Every query the store sends carries the hostile id in ``params`` and never in ``q``."""
    seen: list[dict[str, str]] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path == "/query":
            seen.append(dict(httpx.QueryParams(request.content.decode())))

    store = InfluxStore(influxd.url, unique("spy"), spool_path=tmp_path / "spool.db")
    await store.open()
    try:
        store._http.event_hooks["request"].append(record)
        evil = "p1' OR '1'='1"
        await store.readings([evil], T0, T0 + timedelta(hours=1))
        await store.windows([evil], T0, T0 + timedelta(hours=1))
        await store.score_history(evil, T0, T0 + timedelta(hours=1))
    finally:
        await store.close()
    assert len(seen) == 3
    for sent in seen:
        assert evil not in sent["q"] and "'1'='1" not in sent["q"]
        assert evil in sent["params"]
