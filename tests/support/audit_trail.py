"""An audit trail written the way the service writes it, for the tests of its chain and its anchors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from app.security.audit import AuditLog, audit_row
from app.security.keys import KeyStore, Principal

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
WHO = Principal("k1", "board", frozenset({"clinician"}))


def append_rows(data_dir: Path, n: int, first: int = 0) -> None:
    """Append ``n`` read rows (patients ``p{first}``…) to ``data_dir/access.db`` through the service's own writer."""
    keys = KeyStore(data_dir / "access.db")
    keys.open()
    try:
        AuditLog(keys).append_rows([audit_row(AT, WHO, "GET /v1/patients/{patient_id}/risk", f"patient:p{i}", 200,
                                              "10.0.0.7") for i in range(first, first + n)])
    finally:
        keys.close()
