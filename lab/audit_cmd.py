"""``wardtwin audit verify``: walk the audit trail's hash chain in ``DATA_DIR/access.db`` (issue 21, finding 9).

Exit 0 with "N rows, chain intact" (and how many rows predate the chain, as unchained), or exit 1 naming the first
broken row. Works while the service runs (SQLite in WAL mode: a consistent snapshot is read)."""

from __future__ import annotations

from pathlib import Path

from app.security.audit import AuditLog
from app.security.keys import KeyStore
from app.settings import Settings


def verify(*, data_dir: Path | None) -> int:
    """Check every chained row; 1 at the first broken one."""
    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))
    keys = KeyStore(settings.access_path)
    keys.open()
    try:
        report = AuditLog(keys).verify()
    finally:
        keys.close()
    unchained = f" ({report.unchained} written before the chain began, unchained)" if report.unchained else ""
    if not report.intact:
        print(f"audit chain broken at row seq={report.broken_seq}: {report.reason}; "  # noqa: T201 (the CLI's output)
              f"{report.rows} rows read{unchained}")
        return 1
    print(f"{report.rows} rows, chain intact{unchained}")  # noqa: T201 (the CLI's output)
    return 0
