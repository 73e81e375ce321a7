"""Instances opening one new SQLite control file at the same moment (CI saw ``database is locked`` once): how many
rounds fail when every instance switches the file to WAL as ``SqliteDatabase.open`` did before (``PRAGMA
journal_mode=WAL`` first, no retry) and as it does now (busy timeout first, ``enable_wal``), in the same run.

Each round: a fresh directory, ``--instances`` threads released by one barrier, each opening the alert store's schema
(``SqliteDatabase`` for "now"; the same steps in the old order for "before"). A round fails when any thread raised.
A count of refusals, not a timing: the race needs no particular speed, only threads starting together.

    PYTHONPATH=. python bench/bench_sqlite_open_race.py [--instances 8 --rounds 150] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from app.alerts.store import SCHEMA
from app.storage.migrations import migrate
from app.storage.sqlite_db import SqliteDatabase, private_file
from bench.bench_loop_latency import git_commit


def open_before(path: Path) -> Callable[[], None]:
    """The open of ``SqliteDatabase`` before commit 1b97927: WAL switched before the busy timeout, never retried."""
    def run() -> None:
        private_file(path)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
            migrate(conn, SCHEMA)
        finally:
            conn.close()
    return run


def open_now(path: Path) -> Callable[[], None]:
    def run() -> None:
        db = SqliteDatabase(path, SCHEMA)
        try:
            db.open()
        finally:
            db.close()
    return run


def one_round(run: Callable[[], None], instances: int) -> bool:
    """True when any of ``instances`` threads, released together, raised running ``run``."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(instances)

    def start() -> None:
        barrier.wait()
        try:
            run()
        except sqlite3.Error as exc:  # counted: the refusal this bench is about
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(instances)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return bool(errors)


def failed_rounds(opener: Callable[[Path], Callable[[], None]], instances: int, rounds: int) -> int:
    failed = 0
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="open-race-") as tmp:
            failed += one_round(opener(Path(tmp) / "alerts.db"), instances)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--json", type=Path, help="also write the counts here")
    args = parser.parse_args()
    failed = {}
    for name, opener in (("before", open_before), ("now", open_now)):
        failed[name] = failed_rounds(opener, args.instances, args.rounds)
        print(f"{name:>6}: {failed[name]} of {args.rounds} rounds failed ({args.instances} instances opening one new "
              "file)", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"instances": args.instances, "rounds": args.rounds, "failed_rounds": failed,
                                         "commit": git_commit(), "measured_at": datetime.now(UTC).isoformat(
                                             timespec="seconds")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
