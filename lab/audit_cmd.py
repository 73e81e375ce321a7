"""``wardtwin audit verify``: walk the audit trail's hash chain in ``DATA_DIR/access.db`` (issue 21, finding 9).

Exit 0 with "N rows, chain intact" (and how many rows predate the chain, as unchained), or exit 1 naming the first
broken row. Works while the service runs (SQLite in WAL mode: a consistent snapshot is read). ``wardtwin audit
anchor`` prints a signed anchor of the trail's end; ``verify --anchor`` also detects rows cut off the end (H23).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from app.security.audit import AuditLog
from app.security.audit_anchor import Anchor, check_anchor, take_anchor
from app.security.keys import KeyStore
from app.settings import Settings


def verify(*, data_dir: Path | None, anchor: Path | None = None, key_file: Path | None = None) -> int:
    """Check every chained row; 1 at the first broken one. With ``anchor`` (a file of anchors, one a line, from
    ``wardtwin audit anchor``), also 1 when an anchored row is gone or has another hash (truncation, a rewrite with
    every later hash recomputed) or an anchor's signature does not match ``key_file``."""
    if anchor is not None and key_file is None:
        print("--anchor needs --key-file (the key the anchors were signed with)", file=sys.stderr)  # noqa: T201
        return 2
    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))
    keys = KeyStore(settings.access_target)  # access.db, or the PostgreSQL control store
    keys.open()
    try:
        report = AuditLog(keys).verify()
        problem = _check_anchors(keys, anchor, _key(key_file)) if anchor is not None and key_file is not None \
            else None
    finally:
        keys.close()
    unchained = f" ({report.unchained} written before the chain began, unchained)" if report.unchained else ""
    if not report.intact:
        print(f"audit chain broken at row seq={report.broken_seq}: {report.reason}; "  # noqa: T201 (the CLI's output)
              f"{report.rows} rows read{unchained}")
        return 1
    if problem is not None:
        print(f"audit trail does not match its anchor: {problem}; {report.rows} rows read")  # noqa: T201
        return 1
    anchored = f", {_count_anchors(anchor)} anchors hold" if anchor is not None else ""
    print(f"{report.rows} rows, chain intact{unchained}{anchored}")  # noqa: T201 (the CLI's output)
    return 0


def anchor(*, data_dir: Path | None, key_file: Path, out: Path | None) -> int:
    """Print the trail's signed anchor (its last ``seq`` and ``row_hash``) as one JSON line, appended to ``out``
    too when given. Keep anchors and the key away from the data directory (``app.security.audit_anchor``)."""
    key = _key(key_file)
    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))
    keys = KeyStore(settings.access_target)
    keys.open()
    try:
        AuditLog(keys).verify()  # every row submitted to a writer of this process is written first
        taken = keys.db.call_read(lambda conn: take_anchor(conn, datetime.now(UTC), key))
    finally:
        keys.close()
    line = taken.to_json()
    if out is not None:
        with open(out, "a", encoding="utf-8") as sink:
            sink.write(line + "\n")
    print(line)  # noqa: T201 (the CLI's output)
    return 0


def _key(key_file: Path) -> bytes:
    key = key_file.read_bytes().strip()
    if len(key) < 16:
        raise SystemExit(f"{key_file}: an anchor key needs at least 16 bytes")
    return key


def _anchors(path: Path) -> list[Anchor]:
    return [Anchor.from_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _count_anchors(path: Path) -> int:
    return len(_anchors(path))


def _check_anchors(keys: KeyStore, path: Path, key: bytes) -> str | None:
    """The first anchor of ``path`` the trail does not hold (or None)."""
    for taken in _anchors(path):
        problem = keys.db.call_read(lambda conn, a=taken: check_anchor(conn, a, key))
        if problem is not None:
            return problem
    return None
