"""``wardtwin keys create --role ROLE --name NAME [--scope PATTERNS] | list | revoke KEY_ID``: API keys in
``DATA_DIR/access.db``.

Works while the service runs (SQLite in WAL mode): a revoked key is refused from its next request. The token is
printed once; only its SHA-256 is stored. Every change is appended to the audit trail as done by ``cli``. The data
directory is the service's (``--data-dir``, else ``WARDTWIN_DATA_DIR``, else ``./data``): these commands manage the
configured service's keys, so they read its settings on purpose."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from app.errors import KeyNotFoundError
from app.security.audit import AuditLog
from app.security.keys import KeyStore, Principal
from app.settings import Settings


def _operator() -> Principal:
    return Principal("cli", f"cli:{getpass.getuser()}", frozenset({"admin"}))


@contextmanager
def _keys(data_dir: Path | None) -> Iterator[KeyStore]:
    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))
    keys = KeyStore(settings.access_target)  # access.db, or the PostgreSQL control store
    keys.open()
    try:
        yield keys
    finally:
        keys.close()


def create(*, role: str, name: str, data_dir: Path | None, scope: str | None = None) -> int:
    """Create a key for ``role`` held by ``name`` (a device key limited to ``scope``, comma-separated patient-id
    patterns, when given); print its token once. 2 when the scope is refused."""
    now = datetime.now(UTC)
    patterns = None if scope is None else [p for p in scope.split(",") if p.strip()]
    with _keys(data_dir) as keys:
        try:
            key, token = keys.create(name.strip(), role, now, patterns)
        except ValueError as exc:
            print(f"--scope: {exc}")
            return 2
        AuditLog(keys).append(now, _operator(), "CLI keys create", f"key:{key.id}", None, socket.gethostname())
    scoped = "" if key.scope is None else f" scope={','.join(key.scope)}"
    print(f"created key {key.id} role={key.role} name={key.name!r}{scoped}\n{token}\n"
          "(shown once: only its hash is stored; send it as Authorization: Bearer <key>)")
    return 0


def list_keys(*, data_dir: Path | None) -> int:
    """Every key: id, role, created, revoked, name and a device key's scope (never a token)."""
    with _keys(data_dir) as keys:
        print(f"{'id':<12}  {'role':<9}  {'created':<32}  {'revoked':<32}  name")
        for key in keys.list():
            print(f"{key.id:<12}  {key.role:<9}  {key.created_at:<32}  {key.revoked_at or '-':<32}  {key.name}"
                  + ("" if key.scope is None else f"  (scope {','.join(key.scope)})"))
    return 0


def revoke(*, key_id: str, data_dir: Path | None) -> int:
    """Revoke ``key_id``; 1 when there is no such key."""
    now = datetime.now(UTC)
    with _keys(data_dir) as keys:
        try:
            key = keys.revoke(key_id, now)
        except KeyNotFoundError as exc:
            print(exc)
            return 1
        AuditLog(keys).append(now, _operator(), "CLI keys revoke", f"key:{key.id}", None, socket.gethostname())
    print(f"revoked key {key.id} ({key.role}, {key.name!r}) at {key.revoked_at}")
    return 0
