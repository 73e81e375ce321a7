"""Group commit for the audit trail: concurrent requests share one transaction (one fsync) instead of one each.

``record`` still returns only once its entry is committed, as an entry written alone did: a request that is
answered and audited while another batch commits joins the next batch. Entries keep their order; a failed
commit fails every entry of its batch (each caller logs its own).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from app.security.audit import AuditLog, AuditRow, audit_row
from app.security.keys import Principal


class AuditWriter:
    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._pending: list[tuple[AuditRow, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0  # transactions so far (a batch each)

    async def record(self, at: datetime, who: Principal | None, action: str, target: str | None,
                     status: int | None, remote: str | None) -> None:
        """Append one entry; returns once it is committed (raises what the commit raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((audit_row(at, who, action, target, status, remote), done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
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
            self._flusher = None
