"""The WebSocket hub's fan-out on fake sockets (our own logic, no server): independence of clients, acks."""

from __future__ import annotations

import asyncio
import json

from app.alerts.hub import AlertHub, parse_ack, parse_since
from tests.support.fake_outbox import Source


class FakeSocket:
    def __init__(self, *, stuck: bool = False) -> None:
        self.stuck = stuck
        self.received: list[dict] = []
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.got = asyncio.Event()

    async def send_text(self, text: str) -> None:
        if self.stuck:  # a peer whose TCP window is closed: the send never completes
            await asyncio.Event().wait()
        self.received.append(json.loads(text))
        self.got.set()

    async def receive(self) -> dict:
        return await self.inbox.get()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.inbox.put({"type": "websocket.disconnect", "code": code})

    def events(self) -> list[int]:
        return [m["seq"] for m in self.received if m["type"] == "event"]


async def until(condition) -> None:
    while not condition():
        await asyncio.sleep(0)


async def test_a_stuck_client_never_delays_another():
    source, confirmed = Source(), []

    async def confirm(seqs, actor):
        confirmed.append((list(seqs), actor))

    hub = AlertHub(source, confirm, send_timeout_s=3600)  # the stuck send would block for an hour
    stuck, live = FakeSocket(stuck=True), FakeSocket()
    tasks = [asyncio.create_task(hub.serve(ws, 0)) for ws in (stuck, live)]
    await until(lambda: hub.client_count == 2 and live.received)  # the live one's (empty) replay marker
    hub.publish(source.add(50))
    await asyncio.wait_for(until(lambda: len(live.events()) == 50), timeout=60)
    assert live.events() == list(range(1, 51)) and stuck.received == []
    await live.inbox.put({"type": "websocket.receive", "text": json.dumps({"type": "ack", "seq": 50})})
    await asyncio.wait_for(until(lambda: confirmed), timeout=60)
    assert confirmed == [(list(range(1, 51)), "websocket:ws-2")]
    for ws in (stuck, live):
        await ws.inbox.put({"type": "websocket.disconnect"})
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    assert hub.client_count == 0


async def test_unacknowledged_events_stop_at_the_window():
    source = Source()
    source.add(10)
    hub = AlertHub(source, None, max_unacked=4, max_behind=1000)
    ws = FakeSocket()
    task = asyncio.create_task(hub.serve(ws, 0))
    await until(lambda: len(ws.events()) == 4)
    for _ in range(200):  # give the sender many turns of the loop to overrun the window, were it not enforced
        await asyncio.sleep(0)
    assert ws.events() == [1, 2, 3, 4]
    await ws.inbox.put({"type": "websocket.receive", "text": json.dumps({"type": "ack", "seq": 4})})
    await asyncio.wait_for(until(lambda: len(ws.events()) == 8), timeout=60)
    await ws.inbox.put({"type": "websocket.disconnect"})
    await asyncio.wait_for(task, timeout=60)


def test_since_and_ack_parsing():
    assert parse_since(None) is None and parse_since("0") == 0 and parse_since("4236") == 4236
    for bad in ("", "-1", "abc", "1e3", " 1", "9" * 19):
        try:
            parse_since(bad)
        except ValueError as exc:
            assert "since must be a non-negative integer" in str(exc)
        else:
            raise AssertionError(bad)
    assert parse_ack('{"type": "ack", "seq": 7}') == 7
    assert parse_ack("ping") is None and parse_ack('{"type": "hello"}') is None and parse_ack(None) is None
    for bad in ('{"type": "ack", "seq": "7"}', '{"type": "ack", "seq": -1}', '{"type": "ack", "seq": true}'):
        try:
            parse_ack(bad)
        except ValueError as exc:
            assert "ack needs an integer seq" in str(exc)
        else:
            raise AssertionError(bad)


async def test_each_event_is_confirmed_once_in_the_store_whoever_acknowledges_it():
    source, confirmed = Source(), []

    async def confirm(seqs, actor):
        confirmed.append((list(seqs), actor))

    hub = AlertHub(source, confirm)
    first, second = FakeSocket(), FakeSocket()
    tasks = [asyncio.create_task(hub.serve(ws, 0)) for ws in (first, second)]
    await until(lambda: hub.client_count == 2 and first.received and second.received)
    hub.publish(source.add(3))
    await asyncio.wait_for(until(lambda: len(first.events()) == 3 and len(second.events()) == 3), timeout=60)
    await first.inbox.put({"type": "websocket.receive", "text": json.dumps({"type": "ack", "seq": 2})})
    await asyncio.wait_for(until(lambda: confirmed), timeout=60)
    await second.inbox.put({"type": "websocket.receive", "text": json.dumps({"type": "ack", "seq": 3})})
    await asyncio.wait_for(until(lambda: len(confirmed) == 2), timeout=60)
    # the second client's ack writes only the event nobody had confirmed; its window is freed all the same
    assert confirmed == [([1, 2], "websocket:ws-1"), ([3], "websocket:ws-2")]
    assert [list(c.inflight) for c in sorted(hub._clients, key=lambda c: c.id)] == [[3], []]
    for ws in (first, second):
        await ws.inbox.put({"type": "websocket.disconnect"})
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)


async def test_a_batching_client_gets_ready_events_in_one_frame_within_its_window():
    source = Source()
    hub = AlertHub(source, None, max_unacked=4)
    ws = FakeSocket()
    task = asyncio.create_task(hub.serve(ws, 0, batch=True))
    await until(lambda: ws.received)  # the replay marker
    hub.publish(source.add(6))
    await asyncio.wait_for(until(lambda: len(ws.received) == 2), timeout=60)
    frame = ws.received[1]
    assert frame["type"] == "events" and [e["seq"] for e in frame["events"]] == [1, 2, 3, 4]  # the window's room
    assert all(e["type"] == "event" for e in frame["events"])
    await ws.inbox.put({"type": "websocket.receive", "text": json.dumps({"type": "ack", "seq": 4})})
    await asyncio.wait_for(until(lambda: len(ws.received) == 3), timeout=60)
    assert [e["seq"] for e in ws.received[2]["events"]] == [5, 6]  # no gap, no duplicate
    await ws.inbox.put({"type": "websocket.receive", "text": json.dumps({"type": "ack", "seq": 6})})
    hub.publish(source.add(1))
    await asyncio.wait_for(until(lambda: len(ws.received) == 4), timeout=60)
    assert ws.received[3]["type"] == "event" and ws.received[3]["seq"] == 7  # a lone event: a plain frame
    await ws.inbox.put({"type": "websocket.disconnect"})
    await asyncio.wait_for(task, timeout=60)


async def test_ward_updates_reach_subscribers_only_after_the_events_and_a_slow_one_keeps_the_newest():
    source = Source()
    hub = AlertHub(source, None, send_timeout_s=3600)
    plain, subscribed, stuck = FakeSocket(), FakeSocket(), FakeSocket(stuck=True)
    tasks = [asyncio.create_task(hub.serve(plain, 0)), asyncio.create_task(hub.serve(subscribed, 0, ward=True)),
             asyncio.create_task(hub.serve(stuck, 0, ward=True))]
    await until(lambda: hub.client_count == 3 and plain.received and subscribed.received)
    hub.publish(source.add(2))
    hub.publish_ward({"window_end": "2026-01-01T00:05:00+00:00"})
    await asyncio.wait_for(until(lambda: len(subscribed.received) == 4 and len(plain.received) == 3), timeout=60)
    assert [m["type"] for m in subscribed.received] == ["replay", "event", "event", "ward"]
    assert [m["type"] for m in plain.received] == ["replay", "event", "event"]
    for minute in (10, 15, 20):  # the stuck client's sender is blocked: only the newest update waits for it
        hub.publish_ward({"window_end": f"2026-01-01T00:{minute}:00+00:00"})
    waiting = next(c for c in hub._clients if c.ws is stuck)
    assert json.loads(waiting.ward)["window_end"] == "2026-01-01T00:20:00+00:00"
    await asyncio.wait_for(until(lambda: len(subscribed.received) == 5), timeout=60)
    assert subscribed.received[-1] == {"type": "ward", "window_end": "2026-01-01T00:20:00+00:00"}
    for ws in (plain, subscribed, stuck):
        await ws.inbox.put({"type": "websocket.disconnect"})
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
