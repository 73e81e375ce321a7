"""uvicorn's HTTP/1.1 protocol with the bounds uvicorn lacks for slow and large request heads (issue 21, H22).

uvicorn 0.54 picks httptools (``http="auto"``, installed by ``uvicorn[standard]``) and then ignores
``h11_max_incomplete_event_size``: a 20 KiB head was answered 200. No timer runs while a head trickles in (every byte
cancels the keep-alive timer, and a connection that never sends one has no timer at all), and once a response is
sent, the unread rest of a request's body may trickle in for ever. ``HeadGuard`` subclasses uvicorn's
``HttpToolsProtocol`` (kept for speed: the numbers in BENCHMARKS.md are httptools') and adds:

- **head timeout**: armed when the connection opens and when the next request's first byte arrives, cancelled when
  the head is complete; when it fires the client is answered 408 (problem+json) and the connection closed.
- **head size**: a head larger than ``max_head_bytes`` (request target and header lines) is answered 431 and closed,
  checked when it completes and after every read while it is incomplete.
- **unread body**: a response sent before its request's body was all received closes the connection (the rest
  would be read only to be thrown away).
- **unread response**: a client that leaves its response unread, so that the transport's buffer stays above its
  high-water mark (asyncio's ``pause_writing``, 64 KiB beyond the kernel's buffers) for ``write_timeout_s`` without
  draining to its low-water mark, is cut off: the connection is reset (``SO_LINGER`` 0, so neither this process nor
  the kernel keeps the unsent bytes). A client reading slowly but steadily resumes the transport and is not.

An admitted request's slow body is the edge's to time out (``app.api.edge``), where the body is read.
Coupled to uvicorn's internals (callbacks and attributes of ``HttpToolsProtocol``): pinned by
``tests/integration/test_slow_clients.py`` against a real ``wardtwin serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from app.api.errors import PROBLEM_MEDIA_TYPE, problem

logger = logging.getLogger(__name__)


class _HeadTooLarge(Exception):
    """Raised inside the parser's callback to stop it before the application is called."""


class HeadGuard(HttpToolsProtocol):
    """Defaults are the settings' (``--http app.api.http_protocol:HeadGuard`` runs them); ``head_guard`` sets
    others."""

    header_timeout_s: ClassVar[float] = 10.0
    max_head_bytes: ClassVar[int] = 16 * 1024
    write_timeout_s: ClassVar[float] = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_head = True  # no request line and headers complete since the last request ended
        self._head_bytes = 0  # bytes read while awaiting the head (whole reads)
        self._head_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None  # runs while the transport is paused for writing
        self._running: RequestResponseCycle | None = None  # the cycle whose response is being sent

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_write_timer()
        super().connection_lost(exc)

    # the transport's flow control: paused above its high-water mark, resumed below its low-water mark
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.write_timeout_s, self._write_timed_out)

    def resume_writing(self) -> None:
        self._stop_write_timer()
        super().resume_writing()

    def _stop_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_timed_out(self) -> None:
        self._write_timer = None
        if not self.flow.write_paused:
            return
        unsent = self.transport.get_write_buffer_size()
        # before the abort, every cycle is told its client is gone: with its buffer cleared the loop resumes writing
        # at once, and a response still being sent (uvicorn's ``self.cycle`` is only the newest pipelined one) would
        # write to the closed transport (uvloop raises, and uvicorn logs a traceback)
        for cycle in (self._running, self.cycle, *(queued for queued, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:  # reset, not FIN after the unsent bytes: the kernel would hold them for the client
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()
        logger.info("http reset: response unread for %g s client=%s unsent_bytes=%d", self.write_timeout_s,
                    self.client[0] if self.client else "-", unsent)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            self._head_bytes += len(data)
            self._arm()
        super().data_received(data)
        if self._awaiting_head and self._head_bytes > self.max_head_bytes:
            self._refuse(431, f"the request head is larger than {self.max_head_bytes} bytes")

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # a head can begin in the read that ended the previous request

    def on_headers_complete(self) -> None:
        self._disarm()
        self._awaiting_head = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            self._refuse(431, f"the request head is larger than {self.max_head_bytes} bytes")
            raise _HeadTooLarge  # the parser stops; uvicorn's error path then finds the transport closing
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head, self._head_bytes = True, 0

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and cycle.more_body and not self.transport.is_closing():
            self.transport.close()  # answered before its body was all in: not kept alive to drain it
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        if not self.transport.is_closing():  # not after our own refusal
            super().send_400_response(msg)

    # the head timer
    def _arm(self) -> None:
        if self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:
            self._refuse(408, f"the request head was not complete within {self.header_timeout_s:g} s")
        else:  # a pipelined head behind a response still being sent: no room for an answer
            self.transport.close()

    def _refuse(self, status: int, detail: str) -> None:
        """Answer ``status`` as problem+json and close: sent before any application sees the request."""
        if self.transport.is_closing():
            return
        self._disarm()
        code = "request_timeout" if status == 408 else "request_head_too_large"
        body = orjson.dumps(problem(status, code, detail))
        headers = [*self.server_state.default_headers, (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        self.transport.write(b"".join([STATUS_LINE[status], *(b"%s: %s\r\n" % h for h in headers), b"\r\n", body]))
        self.transport.close()
        logger.info("http refused status=%d client=%s head_bytes=%d", status, self.client[0] if self.client else "-",
                    self._head_bytes)


def head_guard(header_timeout_s: float, max_head_bytes: int, write_timeout_s: float = 30.0) -> type[HeadGuard]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these bounds (uvicorn builds one protocol object per
    connection from a class and its own ``Config``, which has no field for them)."""
    return type("HeadGuard", (HeadGuard,), {"header_timeout_s": header_timeout_s, "max_head_bytes": max_head_bytes,
                                            "write_timeout_s": write_timeout_s})
