"""``wardtwin keys``: create prints the token once and stores only its hash; list never shows tokens; revoke."""

from __future__ import annotations

import hashlib

from app.security.audit import AuditLog
from app.security.keys import KeyStore
from lab.cli import main


def test_create_list_revoke(tmp_path, capsys):
    assert main(["keys", "create", "--role", "clinician", "--name", "ward 7 board", "--data-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.splitlines()[1]
    assert token.startswith("wt_")
    store = KeyStore(tmp_path / "access.db")
    store.open()
    try:
        who = store.lookup(token)
        assert who is not None and who.name == "ward 7 board" and who.roles == {"clinician"}
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("access.db*"))
        assert token.encode() not in raw and hashlib.sha256(token.encode()).hexdigest().encode() in raw
        assert main(["keys", "list", "--data-dir", str(tmp_path)]) == 0
        listing = capsys.readouterr().out
        assert "ward 7 board" in listing and token not in listing
        assert main(["keys", "revoke", who.key_id, "--data-dir", str(tmp_path)]) == 0
        assert store.lookup(token) is None
        assert main(["keys", "revoke", "000000000000", "--data-dir", str(tmp_path)]) == 1
        actions = [(e.action, e.target) for e in AuditLog(store).query()]
        assert actions == [("CLI keys create", f"key:{who.key_id}"), ("CLI keys revoke", f"key:{who.key_id}")]
    finally:
        store.close()
