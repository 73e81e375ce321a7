"""The audit trail's hash chain (issue 21, finding 9): a row rewritten through the file breaks ``wardtwin audit
verify``; an intact trail verifies; rows written before the chain existed are unchained, not broken."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.security.audit import audit_row
from app.security.keys import SCHEMA
from app.storage.migrations import Schema, migrate
from lab.audit_cmd import verify
from tests.support.audit_trail import AT, WHO, append_rows


def _raw(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "access.db", isolation_level=None)


def test_an_intact_trail_verifies(tmp_path, capsys):
    append_rows(tmp_path, 150)  # more than one INSERT statement's worth
    append_rows(tmp_path, 3, first=150)  # a second transaction continues the chain
    assert verify(data_dir=tmp_path) == 0
    assert capsys.readouterr().out.strip() == "153 rows, chain intact"


def test_an_empty_trail_verifies(tmp_path, capsys):
    assert verify(data_dir=tmp_path) == 0
    assert capsys.readouterr().out.strip() == "0 rows, chain intact"


@pytest.mark.parametrize("edit", [
    # the finding: INSERT OR REPLACE through the file rewrites a row (the triggers do not see it), hash kept
    "INSERT OR REPLACE INTO audit (seq, at, key_id, key_name, role, action, target, status, remote, row_hash) "
    "SELECT seq, at, key_id, key_name, role, action, 'patient:someone-else', status, remote, row_hash "
    "FROM audit WHERE seq = 3",
    # the same, the status changed
    "INSERT OR REPLACE INTO audit (seq, at, key_id, key_name, role, action, target, status, remote, row_hash) "
    "SELECT seq, at, key_id, key_name, role, action, target, 403, remote, row_hash FROM audit WHERE seq = 3",
])
def test_a_hand_edited_row_breaks_verify(tmp_path, capsys, edit):
    append_rows(tmp_path, 5)
    with _raw(tmp_path) as conn:
        conn.execute(edit)
    assert verify(data_dir=tmp_path) == 1
    out = capsys.readouterr().out
    assert "broken at row seq=3" in out


def test_a_removed_row_breaks_verify(tmp_path, capsys):
    append_rows(tmp_path, 5)
    with _raw(tmp_path) as conn:
        conn.execute("DROP TRIGGER audit_no_delete")
        conn.execute("DELETE FROM audit WHERE seq = 2")
    assert verify(data_dir=tmp_path) == 1
    assert "broken at row seq=3" in capsys.readouterr().out


def test_a_hash_blanked_after_the_chain_began_breaks_verify(tmp_path, capsys):
    """Setting ``row_hash`` to NULL must not pass a chained row off as an old, unchained one."""
    append_rows(tmp_path, 4)
    with _raw(tmp_path) as conn:
        conn.execute("INSERT OR REPLACE INTO audit (seq, at, key_id, key_name, role, action, target, status, remote, "
                     "row_hash) SELECT seq, at, key_id, key_name, role, action, target, status, remote, NULL "
                     "FROM audit WHERE seq = 3")
    assert verify(data_dir=tmp_path) == 1
    assert "broken at row seq=3: no row_hash" in capsys.readouterr().out


def test_rows_before_the_migration_are_unchained_not_broken(tmp_path, capsys):
    # access.db as the code before the chain made it: schema step 1 only, two rows without a row_hash
    with _raw(tmp_path) as conn:
        migrate(conn, Schema("access", SCHEMA.steps[:1]))
        conn.executemany("INSERT INTO audit (at, key_id, key_name, role, action, target, status, remote) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         [audit_row(AT, WHO, "GET /v1/patients", None, 200, "10.0.0.1")] * 2)
    append_rows(tmp_path, 3)  # opening migrates (the row_hash column), then the chain begins at seq 3
    with _raw(tmp_path) as conn:
        hashes = [r[0] for r in conn.execute("SELECT row_hash FROM audit ORDER BY seq")]
    assert hashes[:2] == [None, None] and all(hashes[2:])
    assert verify(data_dir=tmp_path) == 0
    assert capsys.readouterr().out.strip() == \
        "5 rows, chain intact (2 written before the chain began, unchained)"
    with _raw(tmp_path) as conn:  # and a chained row edited after them is still caught
        conn.execute("INSERT OR REPLACE INTO audit (seq, at, key_id, key_name, role, action, target, status, remote, "
                     "row_hash) SELECT seq, at, key_id, key_name, role, action, target, status, '6.6.6.6', row_hash "
                     "FROM audit WHERE seq = 4")
    assert verify(data_dir=tmp_path) == 1
    assert "broken at row seq=4" in capsys.readouterr().out


def test_the_cli_tree_declares_audit_verify():
    from lab.cli import build_parser

    options = vars(build_parser().parse_args(["audit", "verify", "--data-dir", "/tmp/x"]))
    assert options["data_dir"] == Path("/tmp/x")
