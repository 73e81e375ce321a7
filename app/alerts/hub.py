"""WebSocket fan-out of alert events to every connected client (ward dashboards, nurse stations)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import WebSocket

logger = logging.getLogger(__name__)


class AlertHub:
    def __init__(self) -> None:
        self._clients: set[WebSocket] = set()

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def add(self, ws: WebSocket) -> None:
        self._clients.add(ws)

    def remove(self, ws: WebSocket) -> None:
        self._clients.discard(ws)

    async def broadcast(self, message: dict[str, Any]) -> int:
        """Send to every client; returns how many received it. A client that fails is dropped."""
        text = json.dumps(message, sort_keys=True)
        delivered = 0
        for ws in list(self._clients):
            try:
                await asyncio.wait_for(ws.send_text(text), timeout=5)
                delivered += 1
            except Exception:  # a dead socket must not stop delivery to the others
                logger.info("websocket client dropped during broadcast")
                self.remove(ws)
        return delivered
