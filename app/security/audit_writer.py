"""Group commit for the audit trail, on a thread of its own: concurrent requests share one transaction (one fsync).

``submit`` hands an entry over and returns at once: the edge submits each audited request's entry once its answer
is sent, and the request ends there. Waiting for the commit inside the request (as ``record`` does) kept every
request's coroutines, scope and closures alive for a commit's fsync (milliseconds); at thousands of reads a second
the garbage collector then scanned and promoted them, which cost more than the rest of the read
(``bench/bench_reads.py``, BENCHMARKS.md "Reads after issue 19").

Nothing is lost to a reader by not waiting: the answer was already sent before the commit, and every read of the
trail in this process (``AuditLog.query``: ``GET /v1/audit``, tests) first waits until every entry submitted
before it is committed (``AuditLog`` asks the writer registered for its database). Entries keep their order; a
failed commit fails every entry of its batch, logged here once and raised to each ``record`` caller. ``close``
writes what is pending and stops the thread.

Failing closed, ``after_answer`` (issue 21, finding 9: a failed write was only logged, and reads went on unaudited):
a failed commit sets ``failing``, and from then on every audited route is refused with 503 (``app.api.auth``) until
the trail can be written again. Each refused request asks for a ``probe``: one ``AUDIT unwritable`` row (``lost:N``,
the entries lost so far), at most one pending at a time; once it commits, ``failing`` clears and the trail itself
says how many entries were lost. The reads of the batch that failed were already answered (the rows are written
after the answer): at most one group commit's worth of reads is served unaudited, the rest are refused.

Per read (``Settings.audit_commit = "before_answer"``, the default): the edge ``record``s the entry when the route
starts its answer and sends that answer only once the batch has committed; if the commit fails the client gets a
503 instead (``app.api.edge``), so no read is served unaudited (device writes' rows still follow their answers:
readings are not refused for the audit). Concurrent requests still share one commit, but each answer now waits
for its fsync, which costs latency at low load (``bench/bench_reads.py --audit-before-answer``, BENCHMARKS.md:
the median read at half load 1.1 → 2.8 ms on a quiet machine, the saturated rate unchanged; about half the rate
in a run under heavy load). ``failing`` still trips; under this mode it only schedules the probe (submitted ahead of the
request's own row), as each read is judged by its own commit: the first read once the trail can be written again
is served, and ``lost:N`` counts the reads withheld.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from datetime import datetime

from app.security.audit import AuditLog, audit_row, register_writer
from app.security.audit_refusals import RefusalAudit
from app.security.keys import Principal

logger = logging.getLogger(__name__)

#: What ``submit`` keeps until the writer thread formats it (``audit_row``): off the event loop.
_Entry = tuple[datetime, Principal | None, str, str | None, int | None, str | None]


class AuditWriter:
    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Entry] = []
        #: ``record`` callers of the pending entries: resolved on their own loop once the batch is written.
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._submitted = self._settled = 0  # entries handed over, entries committed or failed
        self._thread: threading.Thread | None = None
        self._idle = False  # the thread waits for entries (so ``submit`` wakes it)
        self._closing = False
        self.commits = 0  # transactions so far (a batch each)
        #: Which refused credentials (401s) become rows: capped per address and minute (``RefusalAudit``).
        self.refusals = RefusalAudit()
        self.failing = False  # the last commit failed: audited routes answer 503 until a probe commits
        self.lost = 0  # entries whose commit failed and that no ``AUDIT unwritable`` row has counted yet
        self._probe: _Entry | None = None  # the pending probe entry
        register_writer(log.db, self.wait_settled)

    def submit(self, at: datetime, who: Principal | None, action: str, target: str | None, status: int | None,
               remote: str | None) -> None:
        """Append one entry to the next batch; returns at once (the entry is committed by the writer thread)."""
        with self._cond:
            self._hand_over((at, who, action, target, status, remote))

    def refused(self, at: datetime, action: str, token: str | None, remote: str | None) -> None:
        """A refused credential (401), from ``remote`` presenting ``token`` (None: none presented): appended with
        the token's prefix hash only, unless this address's or the whole service's cap for the minute is spent
        (then counted: ``RefusalAudit``). Returns at once, as ``submit``."""
        entries = self.refusals.rows(at, action, token, remote)
        if entries:
            with self._cond:
                for entry in entries:
                    self._hand_over(entry)

    def probe(self, at: datetime) -> None:
        """While ``failing``: submit one ``AUDIT unwritable`` row (unless one is pending); its commit clears
        ``failing``."""
        with self._cond:
            if not self.failing or self._probe is not None:
                return
            self._probe = (at, None, "AUDIT unwritable", f"lost:{self.lost}", None, None)
            self._hand_over(self._probe)

    async def record(self, at: datetime, who: Principal | None, action: str, target: str | None,
                     status: int | None, remote: str | None) -> None:
        """Append one entry; returns once it is committed (raises what the commit raised)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        with self._cond:
            self._hand_over((at, who, action, target, status, remote))
            self._waiters.append((loop, done))
        await done

    def _hand_over(self, entry: _Entry) -> None:  # under self._cond
        self._pending.append(entry)
        self._submitted += 1
        if self._thread is None:
            self._closing = False
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()
        elif self._idle:
            self._cond.notify()

    def wait_settled(self, timeout: float | None = 30.0) -> None:
        """Block until every entry submitted before this call is committed (or its batch failed)."""
        with self._cond:
            target = self._submitted
            self._cond.wait_for(lambda: self._settled >= target, timeout)

    def close(self) -> None:
        """Write what is pending, then stop the thread (a later ``submit`` starts another)."""
        with self._cond:
            thread, self._closing = self._thread, True
            self._cond.notify()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._idle = True
                self._cond.wait_for(lambda: self._pending or self._closing)
                self._idle = False
                if not self._pending:  # closing, nothing left
                    self._thread = None
                    return
                batch, self._pending = self._pending, []
                waiters, self._waiters = self._waiters, []
            error = self._write(batch)
            with self._cond:
                self._settled += len(batch)
                probe = next((entry for entry in batch if entry is self._probe), None)
                if probe is not None:
                    self._probe = None
                if error is None:
                    if probe is not None:  # the trail says how many were lost; reads may go on
                        self.lost -= int(str(probe[3]).removeprefix("lost:"))
                        self.failing = False
                else:
                    self.lost += len(batch) - (probe is not None)
                    self.failing = True
                self._cond.notify_all()
            for loop, done in waiters:
                with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits any more
                    loop.call_soon_threadsafe(_settle, done, error)

    def _write(self, batch: Sequence[_Entry]) -> Exception | None:
        try:
            self.log.append_rows([audit_row(*entry) for entry in batch])
        except Exception as exc:  # the entries are lost: said here once, raised to each ``record`` caller
            logger.exception("audit entries not written: %d, first action=%s", len(batch), batch[0][2])
            return exc
        self.commits += 1
        return None


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if not done.done():
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
