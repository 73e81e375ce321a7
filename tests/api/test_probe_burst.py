"""Issue 21, finding 8 (back-pressure): a burst of more than ``max_behind`` events disconnected every live board,
because "behind" counted the whole burst published at once, not the client's own lag. Now a client's lag is the
events it was sent and has not acknowledged plus those published since it was sent the oldest of them: a promptly
acking board gets a 5,000-event burst whole, in order, without a duplicate or a disconnect, and a board that stops
acking is still cut off. The hub on fake sockets (our own logic; no server, no sleeps)."""

from __future__ import annotations

import asyncio
import json

from app.alerts.hub import CLOSE_TOO_SLOW, AlertHub
from tests.support.fake_outbox import Source


class Board:
    """A board that acknowledges every event as it arrives (``acks=False``: one that never does)."""

    def __init__(self, *, acks: bool = True) -> None:
        self.acks = acks
        self.frames: list[dict] = []
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.closed: int | None = None

    async def send_text(self, text: str) -> None:
        frame = json.loads(text)
        self.frames.append(frame)
        seqs = [e["seq"] for e in frame["events"]] if frame["type"] == "events" else \
            [frame["seq"]] if frame["type"] == "event" else []
        if self.acks and seqs:
            await self.inbox.put({"type": "websocket.receive", "text": json.dumps({"type": "ack", "seq": seqs[-1]})})

    async def receive(self) -> dict:
        return await self.inbox.get()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = self.closed or code
        await self.inbox.put({"type": "websocket.disconnect", "code": code})

    def seqs(self) -> list[int]:
        out: list[int] = []
        for frame in self.frames:
            out += [e["seq"] for e in frame["events"]] if frame["type"] == "events" else \
                [frame["seq"]] if frame["type"] == "event" else []
        return out


async def until(condition) -> None:
    while not condition():
        await asyncio.sleep(0)


async def test_a_promptly_acking_board_gets_a_5000_event_burst_without_a_disconnect() -> None:
    source = Source()
    hub = AlertHub(source, None, max_unacked=256, max_behind=1000)
    boards = [Board(), Board()]
    tasks = [asyncio.create_task(hub.serve(board, None, batch=batched)) for board, batched in zip(boards, (False, True),
                                                                                                    strict=True)]
    await until(lambda: hub.client_count == 2 and all(b.frames for b in boards))  # live (empty replay marker)
    hub.publish(source.add(5000))  # one cycle's burst, published at once
    await asyncio.wait_for(until(lambda: all(len(b.seqs()) == 5000 for b in boards) or
                                 any(b.closed for b in boards)), timeout=120)
    for board in boards:
        assert board.closed is None and not [f for f in board.frames if f["type"] == "too_slow"]  # main: 4008
        assert board.seqs() == list(range(1, 5001))  # in order, no gap, no duplicate
    assert hub.client_count == 2
    for board in boards:
        await board.inbox.put({"type": "websocket.disconnect"})
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)


async def test_a_board_that_stops_acking_is_still_cut_off_by_its_own_lag() -> None:
    source = Source()
    hub = AlertHub(source, None, max_unacked=4, max_behind=10)
    board = Board(acks=False)
    task = asyncio.create_task(hub.serve(board, None))
    await until(lambda: hub.client_count == 1 and board.frames)
    hub.publish(source.add(4))
    await until(lambda: len(board.seqs()) == 4)  # its window: sent, never acknowledged
    for _ in range(6):  # four unacknowledged and six published since the oldest was sent: at the limit, kept
        hub.publish(source.add(1))
    await asyncio.sleep(0)
    assert hub.client_count == 1
    hub.publish(source.add(1))  # the seventh: over the limit
    await asyncio.wait_for(task, timeout=60)
    told = [f for f in board.frames if f["type"] == "too_slow"]
    assert told and told[0]["acked"] == 0 and board.closed == CLOSE_TOO_SLOW
