"""Notifiers: the engine's subscribers, all reached through one list (``AlertEngine.subscribe``).

Alertmanager's shape (``notify/notify.go``): alert state lives in the store; each integration is one
:class:`Notifier`, told what changed and left to deliver at its own pace. Two calls, both from the engine:

- ``committed()`` at once after every committed alert event (on the event loop, from the store's commit hook):
  cheap and synchronous (mark a cache stale, set an event); no I/O.
- ``deliver(batch)`` from the engine's delivery worker: the outbox events after ``batch.after`` in seq order, and
  after them the newest cycle's ward update (either may be empty). The first batch after start carries the
  outbox head and no events (older events reach subscribers by replay from the store).

Implemented by the WebSocket hub (``app.alerts.hub.AlertHub``), the webhook worker
(``app.alerts.webhooks.WebhookWorker``, which reads the outbox at its endpoints' durable cursors and only needs
waking) and :class:`OnCommit` (a callback run on every commit, e.g. the read model marking the board stale).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.alerts.store import OutboxEvent


@dataclass(frozen=True)
class Batch:
    #: The seq the events follow (the outbox head before them).
    after: int
    events: Sequence[OutboxEvent] = ()
    #: The newest driving cycle's ward update (``{"window_end", "scored", "alerts_raised", "published_at"}``).
    ward: dict[str, Any] | None = None


class Notifier(Protocol):
    def committed(self) -> None: ...

    async def deliver(self, batch: Batch) -> None: ...


class OnCommit:
    """A notifier that runs ``callback`` on every committed alert event (and ignores deliveries)."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback

    def committed(self) -> None:
        self.callback()

    async def deliver(self, batch: Batch) -> None:
        return None
