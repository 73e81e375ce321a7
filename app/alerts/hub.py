"""WebSocket fan-out of alert events: every client has its own cursor, its own sender task and a bounded window.

Protocol on ``/v1/ws/alerts[?since=SEQ][&ward=1][&batch=1]`` (JSON text frames):

server → client
  ``{"type": "event", "seq": N, "event": "raised", "actor": ..., "alert": {...}}``  one outbox event
  ``{"type": "replay", "through": N, "more": true|false}``  after each replayed page; ``more: false`` ends the
  replay (every event up to ``through`` has been sent) and the client is live from then on
  ``{"type": "too_slow", "acked": N, "reconnect": "?since=N"}``  then close code 4008
  ``{"type": "ward", "window_end": ..., "scored": N, "alerts_raised": K, "published_at": ...}``  with
  ``?ward=1`` only: a cycle for the newest window end has finished (new scores; refresh the board); sent after
  the events published before it (the cycle's alerts). Not acknowledged, not replayed; a client that is behind
  gets only the newest.
  ``{"type": "events", "events": [{"type": "event", "seq": N, ...}, ...]}``  with ``?batch=1`` only: live
  events that were ready together (consecutive seqs, at most the window's room), one frame; acknowledge the
  last seq (acks are cumulative). A lone event still comes as a plain ``event``.
client → server
  ``{"type": "ack", "seq": N}``  cumulative: confirms receipt of every event up to ``N`` sent to this client.
  Anything else (a ping) is ignored.

Replay: with ``?since=SEQ`` every event after ``SEQ``; without it, every event no subscriber has confirmed yet
(then live). Replay and live read one cursor per client, so the switch has neither a gap nor a duplicate.

Flow control: at most ``max_unacked`` events are in flight to a client; further events wait for its acks.
A client whose own lag exceeds ``max_behind`` — the events it was sent and has not acknowledged plus those published
since it was sent the oldest of them, or since it joined (issue 21, finding 8: counting a whole burst published at
once cut off every board, however promptly it acked) — or whose send blocks past ``send_timeout_s``, is told and
disconnected; each client's sends run in its own task, so it never delays the others. Close codes: 4400 bad request
(malformed ``since``, ack of an unsent seq), 4008 too slow, 4403 the client's key was revoked.

Revocation (issue 21, finding 6): :meth:`AlertHub.revoke_key` closes every socket opened with the key at once, and an
ack arriving from one of them afterwards confirms nothing (a revoked key never marks an alert delivered).

Cost per event at 1,000 clients (issue 14): each event is encoded once when published (``Encoded``, shared by
every client's sender); only the first subscriber's confirmation of an event is written to the store (later ones
change nothing there: the first confirmation decides delivery); sends are bounded by a timer, not a task each.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.alerts.notify import Batch
from app.alerts.store import OutboxEvent

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_TOO_SLOW = 4008
CLOSE_REVOKED = 4403


class EventSource(Protocol):
    async def events_after(self, seq: int, limit: int = 500) -> list[OutboxEvent]: ...
    async def first_pending_seq(self) -> int | None: ...
    async def last_seq(self) -> int: ...


#: ``confirm(seqs, actor)``: a subscriber confirmed these events.
Confirm = Callable[[Sequence[int], str], Awaitable[Any]]


class TooSlowError(Exception):
    pass


def parse_since(raw: str | None) -> int | None:
    """``?since=`` as a sequence number (None: absent). Raises ValueError with a reason a client can show."""
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ValueError(f"since must be a non-negative integer seq, got {raw[:40]!r}")
    return int(raw)


def parse_ack(text: str | None) -> int | None:
    """The seq of an ack message, None for anything that is not an ack. Raises ValueError for a malformed ack."""
    if not text or '"ack"' not in text:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("type") != "ack":
        return None
    seq = message.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError(f"ack needs an integer seq >= 0, got {seq!r}")
    return seq


def event_message(event: OutboxEvent) -> str:
    return json.dumps({"type": "event", "seq": event.seq, **event.payload}, sort_keys=True)


@dataclass(frozen=True, slots=True)
class Encoded:
    """An outbox event with its frame text, encoded once and shared by every client it is sent to."""
    seq: int
    text: str

    @classmethod
    def of(cls, event: OutboxEvent) -> Encoded:
        return cls(event.seq, event_message(event))


@dataclass(eq=False)
class Client:
    id: str
    ws: Any
    joined_head: int
    acked: int = 0
    sent: int = 0
    inflight: deque[int] = field(default_factory=deque)
    #: The hub's head when each in-flight event was sent (parallel to ``inflight``): the client's lag is measured
    #: from its oldest unacknowledged send.
    inflight_heads: deque[int] = field(default_factory=deque)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: Subscribed to ward updates (``?ward=1``); ``ward`` is the newest one not yet sent (one slot: bounded).
    wants_ward: bool = False
    ward: str | None = None
    #: The hub's head when ``ward`` was published: it goes out once the client has been sent that far.
    ward_after: int = 0
    #: Takes ``events`` frames (``?batch=1``): the events ready for it go in one frame.
    batch: bool = False
    #: The key the socket was opened with (None: unknown); set once that key is revoked.
    key_id: str | None = None
    revoked: asyncio.Event = field(default_factory=asyncio.Event)
    #: Asks whether the key is still valid (None: never re-checked); asked before each send and on each ack.
    still_admitted: Callable[[], Awaitable[bool]] | None = None


class AlertHub:
    """The WebSocket clients' fan-out; a ``Notifier`` of the alert engine."""

    def __init__(self, source: EventSource | None = None, confirm: Confirm | None = None, *, page_size: int = 500,
                 max_unacked: int = 256, max_behind: int = 1000, send_timeout_s: float = 5.0,
                 ring_size: int = 2000) -> None:
        self.source = source
        self.confirm = confirm
        self.page_size = page_size
        self.max_unacked = max_unacked
        self.max_behind = max_behind
        self.send_timeout_s = send_timeout_s
        self.ring_size = ring_size
        #: The newest seq published to the hub; the ring holds every event after ``_complete_after``.
        self.head = 0
        self._complete_after = 0
        self._ring: deque[Encoded] = deque()
        self._clients: set[Client] = set()
        self._ids = itertools.count(1)
        #: Seqs some subscriber has confirmed durably (or is confirming): a later client's ack of them needs no
        #: database write (the first confirmation decides delivery). Pruned with the ring.
        self._confirmed: set[int] = set()
        self._batches: dict[tuple[int, int], str] = {}

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def reset(self, head: int) -> None:
        """Start publishing after ``head`` (events up to it reach clients by replay from the store)."""
        self.head = self._complete_after = head
        self._ring.clear()

    def publish(self, events: Sequence[OutboxEvent]) -> None:
        """Add new events (in seq order) and wake every client's sender. Never waits for a client."""
        for event in events:
            if event.seq <= self.head:
                continue
            self._ring.append(Encoded.of(event))  # encoded once here, not once per client
            self.head = event.seq
        while len(self._ring) > self.ring_size:
            self._complete_after = self._ring.popleft().seq
        if len(self._confirmed) > 2 * self.ring_size:
            self._confirmed = {seq for seq in self._confirmed if seq > self._complete_after}
        for client in self._clients:
            client.changed.set()

    # -- the engine's Notifier ----------------------------------------------------------------------
    def committed(self) -> None:
        """Nothing to do at commit: events reach the hub in the engine's next delivery."""

    async def deliver(self, batch: Batch) -> None:
        """Publish a batch of outbox events, then its ward update. A batch that does not follow the hub's head (the
        first after start) starts the hub there: earlier events reach clients by replay from the store."""
        if batch.after != self.head:
            self.reset(batch.after)
        if batch.events:
            self.publish(batch.events)
        if batch.ward is not None:
            self.publish_ward(batch.ward)

    def publish_ward(self, update: dict[str, Any]) -> None:
        """Offer a ward update (``{"type": "ward", ...}``) to every subscribed client. Not acknowledged, not
        replayed: each client holds only the newest one not yet sent, so a slow client costs one slot."""
        text = json.dumps({"type": "ward", **update}, sort_keys=True)
        for client in self._clients:
            if client.wants_ward:
                client.ward, client.ward_after = text, self.head
                client.changed.set()

    # -- one connection -----------------------------------------------------------------------------
    def revoke_key(self, key_id: str) -> int:
        """Close every socket opened with ``key_id`` at once (4403); their acks from now on confirm nothing.
        Returns how many were open."""
        revoked = [client for client in self._clients if client.key_id == key_id]
        for client in revoked:
            client.revoked.set()
            client.changed.set()
        if revoked:
            logger.warning("websocket clients closed: key %s revoked (%d open)", key_id, len(revoked))
        return len(revoked)

    async def serve(self, ws: Any, since: int | None, *, ward: bool = False, batch: bool = False,
                    key_id: str | None = None, still_admitted: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Run one accepted WebSocket until it disconnects, is cut off or its key (``key_id``) is revoked;
        ``ward``: also send ward updates; ``batch``: live events ready together go in one ``events`` frame."""
        assert self.source is not None, "hub not bound to an event source"
        last = await self.source.last_seq()  # read before the pending seq, so no event falls between the two
        if since is not None and since > last:
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_BAD_REQUEST, f"since {since} is after the newest event, seq {last}")
            return
        client = Client(f"ws-{next(self._ids)}", ws, joined_head=max(self.head, last), wants_ward=ward,
                        batch=batch, key_id=key_id, still_admitted=still_admitted)
        if since is None:
            pending = await self.source.first_pending_seq()
            since = min(pending - 1, last) if pending is not None else last
        client.acked = client.sent = since
        self._clients.add(client)
        sender = asyncio.create_task(self._send_loop(client, since), name=f"ws-send-{client.id}")
        receiver = asyncio.create_task(self._receive_loop(client), name=f"ws-recv-{client.id}")
        revoked = asyncio.create_task(client.revoked.wait(), name=f"ws-revoked-{client.id}")
        try:
            await asyncio.wait({sender, receiver, revoked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._clients.discard(client)
            for task in (sender, receiver, revoked):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            close = (CLOSE_REVOKED, "key revoked") if client.revoked.is_set() else ()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(*close), self.send_timeout_s)

    async def _send_loop(self, client: Client, cursor: int) -> None:
        try:
            cursor = await self._replay(client, cursor)
            while True:
                client.changed.clear()
                if client.ward is not None and cursor >= client.ward_after:  # after the events before it
                    text, client.ward = client.ward, None
                    await self._send(client, text)
                    continue
                if self.head > cursor:
                    if not await self._admitted(client):
                        return
                    events = self._from_ring(cursor)
                    if events is None:
                        stored = await self.source.events_after(cursor, self.page_size)  # type: ignore[union-attr]
                        events = [Encoded.of(e) for e in stored]
                    if client.batch:
                        cursor = await self._send_batch(client, events)
                        continue
                    for event in events:
                        await self._send_event(client, event)
                        cursor = event.seq
                    continue
                await client.changed.wait()
        except TooSlowError as exc:
            await self._cut_off(client, str(exc))
        except Exception as exc:  # a broken socket ends this client only
            logger.info("websocket client %s dropped: %s", client.id, exc)

    async def _replay(self, client: Client, cursor: int) -> int:
        """Send every stored event after ``cursor`` in pages, each followed by a ``replay`` marker."""
        while True:
            page = await self.source.events_after(cursor, self.page_size + 1)  # type: ignore[union-attr]
            more = len(page) > self.page_size
            for event in page[:self.page_size]:
                await self._send_event(client, Encoded.of(event), live=False)
                cursor = event.seq
            await self._send(client, json.dumps({"type": "replay", "through": cursor, "more": more}))
            if not more:
                return cursor

    def _from_ring(self, cursor: int) -> list[Encoded] | None:
        if cursor < self._complete_after:
            return None  # the ring no longer holds everything after the cursor: read the store
        i = bisect.bisect_right(self._ring, cursor, key=lambda e: e.seq)
        return list(itertools.islice(self._ring, i, None))

    def _behind(self, client: Client) -> int:
        """The client's own lag: the events it was sent and has not acknowledged, plus those published since it was
        sent the oldest of them (0 with nothing in flight: it has confirmed all it was sent, however many wait)."""
        if not client.inflight_heads:
            return 0
        return len(client.inflight) + self.head - client.inflight_heads[0]

    async def _send_event(self, client: Client, event: Encoded, *, live: bool = True) -> None:
        await self._wait_for_room(client)
        if live and self._behind(client) > self.max_behind:
            raise TooSlowError(f"too slow: {self._behind(client)} events unacknowledged")
        client.inflight.append(event.seq)  # before the send: its ack may be handled before the send returns
        client.inflight_heads.append(max(self.head, client.joined_head))  # replayed: lag counts from joining
        client.sent = event.seq
        await self._send(client, event.text)

    async def _send_batch(self, client: Client, events: list[Encoded]) -> int:
        """Send as many of ``events`` as the client's window allows in one ``events`` frame (a lone event as a
        plain ``event`` frame); returns the last seq sent."""
        await self._wait_for_room(client)
        if self._behind(client) > self.max_behind:
            raise TooSlowError(f"too slow: {self._behind(client)} events unacknowledged")
        batch = events[:self.max_unacked - len(client.inflight)]
        client.inflight.extend(event.seq for event in batch)
        client.inflight_heads.extend(max(self.head, client.joined_head) for _ in batch)
        client.sent = batch[-1].seq
        await self._send(client, batch[0].text if len(batch) == 1 else self._joined(batch))
        return client.sent

    def _joined(self, batch: list[Encoded]) -> str:
        """One ``events`` frame for a run of events; clients at the same cursor share it."""
        key = (batch[0].seq, batch[-1].seq)
        text = self._batches.get(key)
        if text is None:
            if len(self._batches) >= 64:
                self._batches.clear()
            text = self._batches[key] = '{"events": [' + ", ".join(e.text for e in batch) + '], "type": "events"}'
        return text

    async def _wait_for_room(self, client: Client) -> None:
        while len(client.inflight) >= self.max_unacked:
            if self._behind(client) > self.max_behind:
                raise TooSlowError(f"too slow: {self._behind(client)} events unacknowledged")
            client.changed.clear()
            await client.changed.wait()

    async def _send(self, client: Client, text: str) -> None:
        try:
            async with asyncio.timeout(self.send_timeout_s):  # a timer, not a task per send (as wait_for makes)
                await client.ws.send_text(text)
        except TimeoutError:
            raise TooSlowError(f"too slow: a send blocked for {self.send_timeout_s:g} s") from None

    async def _cut_off(self, client: Client, reason: str) -> None:
        logger.warning("websocket client %s cut off: %s (acked seq %d)", client.id, reason, client.acked)
        self._clients.discard(client)
        told = {"type": "too_slow", "acked": client.acked, "reconnect": f"?since={client.acked}", "reason": reason}
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.ws.send_text(json.dumps(told)), self.send_timeout_s)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.ws.close(CLOSE_TOO_SLOW, f"{reason}; reconnect with ?since={client.acked}"),
                                   self.send_timeout_s)

    async def _receive_loop(self, client: Client) -> None:
        while True:
            message = await client.ws.receive()
            if message.get("type") == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            try:
                seq = parse_ack(text)
            except ValueError as exc:
                await self._refuse(client, str(exc))
                return
            if seq is None:
                continue
            if seq > client.sent:
                await self._refuse(client, f"ack of seq {seq}, which was not sent (last sent {client.sent})")
                return
            await self.ack(client, seq)

    async def _admitted(self, client: Client) -> bool:
        """False (and the socket marked for closing, 4403) once the client's key has been revoked, by this process
        (``revoke_key``) or another (``still_admitted``)."""
        if not client.revoked.is_set() and client.still_admitted is not None and not await client.still_admitted():
            logger.warning("websocket client %s closed: its key was revoked", client.id)
            client.revoked.set()
        return not client.revoked.is_set()

    async def ack(self, client: Client, seq: int) -> None:
        if not await self._admitted(client):  # a revoked key's ack counts for nothing
            return
        confirmed = []
        while client.inflight and client.inflight[0] <= seq:
            confirmed.append(client.inflight.popleft())
            client.inflight_heads.popleft()
        client.acked = max(client.acked, seq)
        client.changed.set()
        first = [s for s in confirmed if s not in self._confirmed]
        if first and self.confirm is not None:
            self._confirmed.update(first)  # before the await: a concurrent ack by another client is not rewritten
            try:
                await self.confirm(first, f"websocket:{client.id}")
            except BaseException:
                self._confirmed.difference_update(first)  # not durable: the next client's ack writes it
                raise

    async def _refuse(self, client: Client, reason: str) -> None:
        with contextlib.suppress(Exception):
            await client.ws.close(CLOSE_BAD_REQUEST, reason[:120])
