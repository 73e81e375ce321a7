"""Issue 21, H23 residual 2: rows cut off the end of the audit trail, or a row rewritten with every later hash
recomputed, leave a chain that verifies. A signed anchor of the trail's end (``wardtwin audit anchor``), kept
elsewhere, makes ``wardtwin audit verify --anchor`` fail on both; a trail that only grew since still verifies."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.security.audit import GENESIS, chain_hash
from lab.cli import main
from tests.support.audit_trail import append_rows


def raw(data_dir: Path) -> sqlite3.Connection:
    """The file opened by someone who can write it: the append-only triggers are theirs to drop."""
    conn = sqlite3.connect(data_dir / "access.db", isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    return conn


@pytest.fixture
def anchored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, Path]:
    """A trail of 20 rows with an anchor taken, in ``anchors.jsonl``, signed with ``anchor.key``."""
    data, key, out = tmp_path / "data", tmp_path / "anchor.key", tmp_path / "anchors.jsonl"
    append_rows(data, 20)
    key.write_text("a-secret-kept-off-the-data-host\n")
    assert main(["audit", "anchor", "--data-dir", str(data), "--key-file", str(key), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["seq"] == printed["rows"] == 20 and json.loads(out.read_text()) == printed
    return data, key, out


def verify(data: Path, key: Path | None = None, anchors: Path | None = None) -> int:
    args = ["audit", "verify", "--data-dir", str(data)]
    if anchors is not None:
        args += ["--anchor", str(anchors), "--key-file", str(key)]
    return main(args)


def test_a_trail_that_grew_since_holds_its_anchor(anchored, capsys) -> None:
    data, key, out = anchored
    append_rows(data, 5, first=20)
    assert verify(data, key, out) == 0
    assert capsys.readouterr().out.strip() == "25 rows, chain intact, 1 anchors hold"


def test_rows_cut_off_the_end_are_detected(anchored, capsys) -> None:
    data, key, out = anchored
    raw(data).execute("DELETE FROM audit WHERE seq > 15")
    assert verify(data) == 0  # the chain alone cannot tell (the residual)
    capsys.readouterr()
    assert verify(data, key, out) == 1
    said = capsys.readouterr().out
    assert "seq=20" in said and "is gone" in said and "ends at seq=15" in said


def test_a_rewrite_with_every_later_hash_recomputed_is_detected(anchored, capsys) -> None:
    data, key, out = anchored
    conn = raw(data)
    conn.execute("UPDATE audit SET target = 'patient:someone-else' WHERE seq = 10")
    prev = GENESIS
    for record in conn.execute("SELECT seq, at, key_id, key_name, role, action, target, status, remote FROM audit "
                               "ORDER BY seq").fetchall():
        prev = chain_hash(prev, record[0], tuple(record[1:]))  # type: ignore[arg-type]
        conn.execute("UPDATE audit SET row_hash = ? WHERE seq = ?", (prev, record[0]))
    assert verify(data) == 0
    capsys.readouterr()
    assert verify(data, key, out) == 1
    assert "another row_hash" in capsys.readouterr().out


def test_an_edited_anchor_or_another_key_is_refused(anchored, tmp_path, capsys) -> None:
    data, key, out = anchored
    raw(data).execute("DELETE FROM audit WHERE seq > 15")
    forged = json.loads(out.read_text())
    forged["seq"], forged["rows"] = 15, 15  # an attacker moving the anchor back to the cut
    forged_file = tmp_path / "forged.jsonl"
    forged_file.write_text(json.dumps(forged) + "\n")
    assert verify(data, key, forged_file) == 1
    assert "signature does not match" in capsys.readouterr().out
    other = tmp_path / "other.key"
    other.write_text("another-key-of-sixteen-bytes")
    assert verify(data, other, out) == 1
    assert "signature does not match" in capsys.readouterr().out


def test_anchor_needs_a_key(anchored, capsys) -> None:
    data, _, out = anchored
    assert main(["audit", "verify", "--data-dir", str(data), "--anchor", str(out)]) == 2
