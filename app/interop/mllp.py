"""An MLLP (Minimal Lower Layer Protocol) server for HL7 v2 from monitor gateways, on ``WARDTWIN_MLLP_PORT``.

Framing: ``0x0B`` message ``0x1C 0x0D``; bytes before the start byte are ignored, as MLLP receivers do. Each
message is answered on the same connection, in order, with its ACK (``app.interop.hl7.receive``). A frame larger
than ``max_bytes`` is answered AR and the connection closed (the stream cannot be re-synchronised safely).

MLLP has no credentials: the server binds ``WARDTWIN_MLLP_HOST`` (default 127.0.0.1), so only the gateway network
it is bound to can reach it; ``POST /v1/hl7`` is the authenticated alternative (role ``device``).
Started and stopped by the service's lifespan (``start``); off when the port is unset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final

from app.interop import hl7 as hl7_in

if TYPE_CHECKING:
    from app.service import WardTwin
    from app.settings import Settings

logger = logging.getLogger(__name__)

START: Final = b"\x0b"
END: Final = b"\x1c\x0d"

#: Bytes in, ER7 ACK text out.
Handler = Callable[[bytes], Awaitable[str]]


def frame(message: bytes) -> bytes:
    return START + message + END


class MllpServer:
    def __init__(self, handle: Handler, host: str, port: int, max_bytes: int, now: Callable[[], datetime]) -> None:
        self.handle, self.host, self.requested_port, self.max_bytes, self.now = handle, host, port, max_bytes, now
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        """The port listened on (the one the OS chose when asked for 0)."""
        assert self._server is not None, "not started"
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.requested_port,
                                                  limit=self.max_bytes + len(START) + len(END))
        logger.info("mllp listening host=%s port=%d", self.host, self.port)

    async def close(self) -> None:
        """Stop listening, close every open connection and wait for its handler to finish (a message being
        handled is answered first)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    block = await reader.readuntil(END)
                except asyncio.IncompleteReadError:
                    return  # the peer closed (between messages, or mid-frame: nothing to answer)
                except asyncio.LimitOverrunError:
                    outcome = hl7_in.Outcome(None).reject("", "207", "too_large",
                                                          f"the frame is larger than {self.max_bytes} bytes")
                    writer.write(frame(hl7_in.ack(outcome, self.now()).encode()))
                    await writer.drain()
                    return
                start = block.find(START)
                message = block[start + 1:-len(END)] if start >= 0 else block[:-len(END)]
                try:
                    answer = await self.handle(message)
                except Exception:  # a bug: logged once here; the sender gets an AR and the connection stays usable
                    logger.exception("mllp message not handled")
                    answer = hl7_in.ack(hl7_in.Outcome(None).reject("", "207", "internal_error", "internal error"),
                                        self.now())
                writer.write(frame(answer.encode()))
                await writer.drain()
        except ConnectionError:
            return
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def start(settings: Settings, wt: WardTwin) -> MllpServer | None:
    """The MLLP server on ``settings.mllp_port`` (0: a free port), started; None when the port is unset."""
    if settings.mllp_port is None:
        return None

    async def handle(message: bytes) -> str:
        return (await hl7_in.receive(message, wt)).text

    server = MllpServer(handle, settings.mllp_host, settings.mllp_port, settings.max_body_bytes, wt.now)
    await server.start()
    return server
