"""``wardtwin keys create --role ROLE --name NAME | list | revoke KEY_ID``: API keys in ``DATA_DIR/access.db``.

Works while the service runs (SQLite in WAL mode): a revoked key is refused from its next request. The token is
printed once; only its SHA-256 is stored. Every change is appended to the audit trail as done by ``cli``."""

from __future__ import annotations

import argparse
import getpass
import socket
from datetime import UTC, datetime

from app.errors import KeyNotFoundError
from app.security.audit import AuditLog
from app.security.keys import ROLES, KeyStore, Principal
from app.settings import Settings


def _operator() -> Principal:
    return Principal("cli", f"cli:{getpass.getuser()}", frozenset({"admin"}))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wardtwin keys", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=None, help="default WARDTWIN_DATA_DIR or ./data")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", parents=[common], help="create a key and print its token (once)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True, help='who holds it, e.g. "ward 7 board" (audit shows it)')
    sub.add_parser("list", parents=[common], help="every key: id, role, name, created, revoked (never the tokens)")
    revoke = sub.add_parser("revoke", parents=[common], help="revoke a key by its id")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    keys = KeyStore(settings.access_path)
    keys.open()
    now, audit, host = datetime.now(UTC), AuditLog(keys), socket.gethostname()
    try:
        if args.command == "create":
            if not args.name.strip() or len(args.name) > 64:
                parser.error("--name must be 1–64 characters")
            key, token = keys.create(args.name.strip(), args.role, now)
            audit.append(now, _operator(), "CLI keys create", f"key:{key.id}", None, host)
            print(f"created key {key.id} role={key.role} name={key.name!r}\n{token}\n"
                  "(shown once: only its hash is stored; send it as Authorization: Bearer <key>)")
        elif args.command == "list":
            print(f"{'id':<12}  {'role':<9}  {'created':<32}  {'revoked':<32}  name")
            for key in keys.list():
                print(f"{key.id:<12}  {key.role:<9}  {key.created_at:<32}  {key.revoked_at or '-':<32}  {key.name}")
        else:
            try:
                key = keys.revoke(args.key_id, now)
            except KeyNotFoundError as exc:
                print(exc)
                return 1
            audit.append(now, _operator(), "CLI keys revoke", f"key:{key.id}", None, host)
            print(f"revoked key {key.id} ({key.role}, {key.name!r}) at {key.revoked_at}")
    finally:
        keys.close()
    return 0
