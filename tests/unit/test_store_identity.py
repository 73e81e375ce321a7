"""The InfluxDB database's identity markers against the service's record (``app.storage.identity``, hazard H25)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.storage.identity import MARKER_Q, Identity, Verdict, chosen, judge, marker_line, problem

RECORD = Identity("a1b2c3d4e5f60718", "2026-03-01T08:00:00Z", "2026-03-02T11:50:00Z")
OURS = Identity(RECORD.store_id, RECORD.created_at)
OTHER = Identity("ff", "2026-03-02T12:00:00Z")


def test_judge_every_pairing() -> None:
    assert judge(None, []) is Verdict.NEW
    assert judge(None, [OTHER]) is Verdict.ADOPT
    assert judge(RECORD, [OURS]) is Verdict.OK
    assert judge(RECORD, [OTHER, OURS]) is Verdict.OK  # two instances marked a new database at once
    assert judge(RECORD, []) is Verdict.MISSING
    assert judge(RECORD, [OTHER]) is Verdict.REPLACED


def test_the_adopted_marker_is_the_oldest_whatever_the_order() -> None:
    tie = Identity("00", OTHER.created_at)
    assert chosen([OTHER, OURS]) == chosen([OURS, OTHER]) == OURS
    assert chosen([OTHER, tie]) == chosen([tie, OTHER]) == tie


def test_problem_names_the_database_the_cause_the_time_and_the_remedy() -> None:
    missing = problem(Verdict.MISSING, "wardtwin", RECORD, [])
    assert "'wardtwin' was recreated or replaced (marker missing)" in missing
    assert "readings written before 2026-03-02T11:50:00Z" in missing and "wardtwin store accept-database" in missing
    replaced = problem(Verdict.REPLACED, "wardtwin", RECORD, [OTHER])
    assert "marker ff created 2026-03-02T12:00:00Z, expected a1b2c3d4e5f60718" in replaced


def test_fresh_ids_differ_and_the_marker_line_carries_them() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    first, second = Identity.fresh(now), Identity.fresh(now)
    assert first.store_id != second.store_id and first.created_at == "2026-03-02T12:00:00Z"
    line = marker_line(first, 1_772_452_800_000).decode()
    fields = f'store_id="{first.store_id}",created_at="2026-03-02T12:00:00Z"'
    assert line == f"wardtwin_store,id={first.store_id} {fields} 1772452800000"


def test_the_marker_query_is_a_fixed_string() -> None:
    assert "$" not in MARKER_Q and "{" not in MARKER_Q
    assert MARKER_Q == "SELECT last(store_id), last(created_at) FROM wardtwin_store GROUP BY id"
