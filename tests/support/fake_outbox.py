"""An in-memory outbox for the WebSocket hub's unit tests: the read side of ``AlertStore`` the hub uses."""

from __future__ import annotations

from app.alerts.store import OutboxEvent


class Source:
    def __init__(self) -> None:
        self.events: list[OutboxEvent] = []

    def add(self, n: int) -> list[OutboxEvent]:
        new = [OutboxEvent(len(self.events) + i + 1, "a", "raised", {"event": "raised", "alert": {"id": "a"}})
               for i in range(n)]
        self.events += new
        return new

    async def events_after(self, seq: int, limit: int = 500) -> list[OutboxEvent]:
        return [e for e in self.events if e.seq > seq][:limit]

    async def first_pending_seq(self) -> int | None:
        return None

    async def last_seq(self) -> int:
        return len(self.events)
