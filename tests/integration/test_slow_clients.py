"""Issue 21, H22 (slowloris): uvicorn had no timeout for a request head that trickles in, none for a connection that
never sends one, none for an admitted client's slow body, and under httptools no bound on the head's size (a 20 KiB
head was answered 200), and none for a client that leaves its responses unread (the process and the kernel held them
for ever). Raw sockets against a real ``wardtwin serve`` process whose header, body and write timeouts are shortened
to ``TIMEOUT_S``; every wait is on a condition (the server's EOF or reset), capped by ``CAP_S`` only against a hang.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.storage.influxd_local import free_port
from tests.support.server import AUTH, ROOT, SERVICE_KEY, ServedProcess, wait_until_ok
from tests.support.wait import wait_until

TIMEOUT_S = 2.0
CAP_S = 60.0
#: A head that never ends: one more header byte per drip.
ENDLESS_HEAD = b"GET /healthz HTTP/1.1\r\nHost: wardtwin\r\nX-Slow: "


@dataclass
class Serve(ServedProcess):
    """``wardtwin serve`` (``lab.cli``, hence ``app.api.serving.uvicorn_options``) on ``data_dir``."""

    data_dir: Path
    port: int = 0

    def start(self) -> Serve:
        self.port = free_port()
        env = {**os.environ, "WARDTWIN_DATA_DIR": str(self.data_dir), "WARDTWIN_SCHEDULER_ENABLED": "false",
               "WARDTWIN_DEMO_KEY": SERVICE_KEY, "WARDTWIN_HTTP_HEADER_TIMEOUT_S": str(TIMEOUT_S),
               "WARDTWIN_HTTP_BODY_TIMEOUT_S": str(TIMEOUT_S), "WARDTWIN_HTTP_WRITE_TIMEOUT_S": str(TIMEOUT_S)}
        log = open(self.data_dir / "serve.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "serve", "--host", "127.0.0.1", "--port",
                                      str(self.port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until_ok(f"{self.base}/healthz", proc=self.proc)
        return self


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    served = Serve(data_dir=tmp_path_factory.mktemp("slow-clients")).start()
    try:
        yield served
    finally:
        served.stop()


class Peer:
    """One raw client connection: what the server sent, and whether it has closed the connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=CAP_S)
        self.sock.setblocking(False)
        self.received = b""
        self.closed = False
        self.dripped = 0

    def send(self, data: bytes) -> None:
        self.sock.settimeout(CAP_S)  # blocking while it sends, against a hang only
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
        finally:
            self.sock.setblocking(False)

    def server_closed(self) -> bool:
        """Reads what has arrived; True once the server has closed (EOF or reset)."""
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            except ConnectionResetError:
                self.closed = True
                break
            self.received += data
            self.closed = not data
        return self.closed

    def drip(self, prefix: bytes = ENDLESS_HEAD, then: bytes = b"a") -> bool:
        """Sends the next byte of ``prefix`` and ``then`` for ever, unless the server has closed (then True): a
        condition for ``wait_until``."""
        if self.server_closed():
            return True
        self.send(prefix[self.dripped:self.dripped + 1] or then)
        self.dripped += 1
        return False

    def status(self) -> int | None:
        return int(self.received.split(b" ", 2)[1]) if self.received.startswith(b"HTTP/1.1 ") else None

    def problem(self) -> dict:
        head, _, body = self.received.partition(b"\r\n\r\n")
        assert b"content-type: application/problem+json" in head.lower(), head
        return json.loads(body)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peers(service: Serve) -> Iterator[list[Peer]]:
    opened: list[Peer] = []
    yield opened
    for peer in opened:
        peer.close()


def connect(service: Serve, peers: list[Peer]) -> Peer:
    peers.append(Peer(service.port))
    return peers[-1]


def served(service: Serve) -> bool:
    return httpx.get(f"{service.base}/v1/patients", headers=AUTH, timeout=CAP_S).status_code == 200


def test_a_connection_that_sends_nothing_is_answered_408_and_closed(service, peers):
    peer = connect(service, peers)
    wait_until(peer.server_closed, "the server to close a silent connection", timeout=CAP_S)  # main: never closed
    assert peer.status() == 408 and peer.problem()["code"] == "request_timeout"


def test_a_trickled_head_is_closed_after_the_header_timeout_and_the_next_client_is_served(service, peers):
    peer = connect(service, peers)
    wait_until(peer.drip, "the server to close a head trickling in", timeout=CAP_S, every=0.1)  # main: never closed
    assert peer.status() in (408, None)  # None: a drip crossed the close and the client saw a reset
    assert served(service)


def test_the_header_timer_is_armed_again_for_the_next_request_on_a_keep_alive_connection(service, peers):
    peer = connect(service, peers)
    peer.send(b"GET /healthz HTTP/1.1\r\nHost: wardtwin\r\n\r\n")
    wait_until(lambda: peer.server_closed() or b"\r\n\r\n" in peer.received, "the first answer", timeout=CAP_S)
    assert peer.status() == 200 and not peer.closed
    first = len(peer.received)
    wait_until(peer.drip, "the server to close the second head trickling in", timeout=CAP_S, every=0.1)
    assert peer.received[first:] == b"" or peer.received[first:].startswith(b"HTTP/1.1 408")


def test_a_head_up_to_16_kib_is_served_and_a_larger_one_refused(service, peers):
    def head(size: int) -> bytes:
        start = b"GET /healthz HTTP/1.1\r\nHost: wardtwin\r\nX-Pad: "
        return start + b"p" * (size - len(start) - 4) + b"\r\n\r\n"

    small = connect(service, peers)
    small.send(head(15 * 1024))
    wait_until(lambda: small.server_closed() or b"\r\n\r\n" in small.received, "an answer", timeout=CAP_S)
    assert small.status() == 200

    whole = connect(service, peers)  # complete in one send: checked when the head completes
    whole.send(head(20 * 1024))
    wait_until(whole.server_closed, "the server to refuse a 20 KiB head", timeout=CAP_S)
    assert whole.status() == 431 and whole.problem()["code"] == "request_head_too_large"  # main: 200

    pieces = connect(service, peers)  # never completed, 1 KiB a send: checked after every read
    endless = ENDLESS_HEAD + b"p" * (17 * 1024)
    for i in range(0, len(endless), 1024):
        if pieces.server_closed():
            break
        pieces.send(endless[i:i + 1024])
    wait_until(pieces.server_closed, "the server to refuse 17 KiB of an unfinished head", timeout=CAP_S)
    assert pieces.status() == 431  # main: held open


def test_an_admitted_body_that_stalls_is_answered_408_and_a_normal_post_succeeds(service, peers):
    ts = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body = json.dumps({"readings": [{"patient_id": "slow-1", "vital": "hr", "ts": ts, "value": 80}]}).encode()
    peer = connect(service, peers)
    peer.send(b"POST /v1/readings HTTP/1.1\r\nHost: wardtwin\r\nContent-Type: application/json\r\n"
              b"Authorization: Bearer " + SERVICE_KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
              + body[:10])
    wait_until(peer.server_closed, "the server to give up on a stalled body", timeout=CAP_S)  # main: waits for ever
    assert peer.status() == 408 and peer.problem()["code"] == "request_timeout"

    response = httpx.post(f"{service.base}/v1/readings", content=body, timeout=CAP_S,
                          headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 200 and response.json() == {"accepted": 1}, response.text


def test_a_body_left_unread_by_the_answer_does_not_keep_the_connection(service, peers):
    peer = connect(service, peers)  # no key: a GET is answered 401 by its route, which reads no body
    peer.send(b"GET /v1/patients HTTP/1.1\r\nHost: wardtwin\r\nContent-Length: 100000\r\n\r\nx")
    wait_until(lambda: peer.drip(b"", then=b"x"), "the server to close after answering", timeout=CAP_S, every=0.1)
    assert peer.status() == 401  # main: the connection stayed open while the body trickled


def test_fifty_trickling_connections_do_not_stop_a_normal_request(service, peers):
    trickling = [connect(service, peers) for _ in range(50)]
    for peer in trickling:
        peer.drip()
    assert served(service)
    wait_until(lambda: all([peer.drip() for peer in trickling]), "the server to close all 50", timeout=CAP_S,
               every=0.1)  # main: all 50 held
    assert served(service)


TCP_CLOSE = 7  # tcpi_state in TCP_INFO (linux/tcp_states.h): the peer reset the connection


def reset_by_server(sock: socket.socket) -> bool:
    """True once the server has reset the connection (its TCP state, read without taking any received byte: Linux
    still hands queued data to a reader after a reset)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_CLOSE


def test_a_client_that_leaves_its_responses_unread_is_reset_and_the_next_client_is_served(service):
    """200 pipelined requests for the OpenAPI document (about 120 KiB each), never read, through a 4 KiB receive
    buffer: far more than the kernel's buffers hold, so the server's write buffer stays above its high-water mark.
    The connection is reset after the write timeout (main: held for ever, the unsent responses in memory)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: no window autotuning
    sock.settimeout(CAP_S)
    sock.connect(("127.0.0.1", service.port))
    try:
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: wardtwin\r\n\r\n" * 200)
        wait_until(lambda: reset_by_server(sock), "the server to reset a client that reads nothing", timeout=CAP_S)
    finally:
        sock.close()
    assert served(service)
    log = (service.data_dir / "serve.log").read_text(errors="replace")
    assert "http reset: response unread" in log
    assert "Traceback" not in log  # a response still being sent is told its client is gone, not written to
