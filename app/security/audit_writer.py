"""Group commit for the audit trail: concurrent requests share one transaction (one fsync) instead of one each.

``record`` still returns only once its entry is committed, as an entry written alone did: a request that is
answered and audited while another batch commits joins the next batch. Entries keep their order; a failed
commit fails every entry of its batch (each caller logs its own). Batches are kept per event loop (uvicorn runs
one; Starlette's TestClient may run several at once), so a future is only ever resolved on its own loop.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import datetime

from app.security.audit import AuditLog, AuditRow, audit_row
from app.security.keys import Principal


class _Batching:
    __slots__ = ("flusher", "pending")

    def __init__(self) -> None:
        self.pending: list[tuple[AuditRow, asyncio.Future[None]]] = []
        self.flusher: asyncio.Task[None] | None = None


class AuditWriter:
    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batching] = weakref.WeakKeyDictionary()
        self.commits = 0  # transactions so far (a batch each)

    async def record(self, at: datetime, who: Principal | None, action: str, target: str | None,
                     status: int | None, remote: str | None) -> None:
        """Append one entry; returns once it is committed (raises what the commit raised)."""
        loop = asyncio.get_running_loop()
        batching = self._loops.get(loop)
        if batching is None:
            batching = self._loops[loop] = _Batching()
        done: asyncio.Future[None] = loop.create_future()
        batching.pending.append((audit_row(at, who, action, target, status, remote), done))
        if batching.flusher is None or batching.flusher.done():
            batching.flusher = loop.create_task(self._flush(batching))
        await done

    async def _flush(self, batching: _Batching) -> None:
        try:
            while batching.pending:
                batch, batching.pending = batching.pending, []
                try:
                    await asyncio.to_thread(self.log.append_rows, [row for row, _ in batch])
                except Exception as exc:  # handed to every waiting caller, which logs it
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    self.commits += 1
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            if batching.flusher is asyncio.current_task():
                batching.flusher = None
