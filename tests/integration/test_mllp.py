"""HL7 v2 over a real MLLP socket to a running service (in process: its lifespan starts the listener on a free port).

The reference IHE PCD-01 message (``tests/fixtures/interop``, from the Open eHealth IPF test resources) is sent as a
gateway would send it; its readings are then read back through the REST and FHIR APIs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hl7
import pytest
from fastapi.testclient import TestClient

from app.clock import FixedClock
from app.interop.mllp import END, START, frame
from tests.support.api import serve
from tests.support.fhir import validate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "interop"
REFERENCE = (FIXTURES / "valid-pcd01-request.hl7").read_bytes()
OBSERVED_AT = datetime(2009, 8, 13, 4, 57, 15, tzinfo=UTC)  # 09:57:15 +05:00
WINDOW_END = datetime(2009, 8, 13, 5, 0, tzinfo=UTC)
#: Only guards against a hang; the test never waits on time otherwise.
SOCKET_GUARD_S = 60.0


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with serve(tmp_path, FixedClock(WINDOW_END + timedelta(minutes=1)), mllp_port=0) as client:
        yield client


def connect(client: TestClient) -> socket.socket:
    port = client.app.state.mllp.port  # type: ignore[attr-defined]
    return socket.create_connection(("127.0.0.1", port), timeout=SOCKET_GUARD_S)


def receive_frame(sock: socket.socket) -> hl7.Message:
    data = b""
    while not data.endswith(END):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the frame ended: {data!r}"
        data += chunk
    assert data.startswith(START)
    return hl7.parse(data[1:-2].decode())


def exchange(sock: socket.socket, message: bytes) -> hl7.Message:
    sock.sendall(frame(message))
    return receive_frame(sock)


def test_reference_message_over_mllp_is_stored_and_readable_through_rest(client: TestClient) -> None:
    with connect(client) as sock:
        ack = exchange(sock, REFERENCE)
    assert str(ack.segment("MSA")(1)) == "AA" and str(ack.segment("MSA")(2)) == "MSGID1234"
    assert client.post("/v1/cycle", params={"window_end": WINDOW_END.isoformat()}).status_code == 200
    response = client.get("/v1/patients/789567/windows", params={
        "since": (WINDOW_END - timedelta(minutes=10)).isoformat(), "until": WINDOW_END.isoformat()})
    assert response.status_code == 200, response.text
    rows = {datetime.fromisoformat(r["start"]): r for r in response.json()}
    window = rows[datetime(2009, 8, 13, 4, 55, tzinfo=UTC)]  # the window holding 04:57:15Z
    assert (window["sbp"], window["dbp"]) == (120.0, 80.0)
    assert rows[datetime(2009, 8, 13, 4, 50, tzinfo=UTC)]["sbp"] is None  # nothing before it, nothing invented
    fhir = client.get("/fhir/Observation", params={"subject": "Patient/789567", "code": "http://loinc.org|85354-9"})
    assert fhir.status_code == 200, fhir.text
    (entry,) = fhir.json()["entry"]
    panel = validate(entry["resource"]).model_dump(mode="json", exclude_none=True)
    assert panel["effectivePeriod"] == {"start": "2009-08-13T04:55:00Z", "end": "2009-08-13T05:00:00Z"}
    assert [(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["code"])
            for c in panel["component"]] == [("8480-6", 120.0, "mm[Hg]"), ("8462-4", 80.0, "mm[Hg]")]
    wt = client.app.state.wardtwin  # type: ignore[attr-defined]
    stored = client.portal.call(wt.store.readings, ["789567"], WINDOW_END - timedelta(hours=1),  # type: ignore[union-attr]
                                WINDOW_END)
    assert sorted(zip(stored["vital"], stored["value"], [t.to_pydatetime() for t in stored["ts"]], strict=True)) == [
        ("dbp", 80.0, OBSERVED_AT), ("sbp", 120.0, OBSERVED_AT)]


def test_one_connection_carries_many_messages_a_bad_one_answered_ar(client: TestClient) -> None:
    bad = b"MSH|^~\\&|GW||||20090813095800+0500||ORU^R01^ORU_R01|BAD1|P|2.6\rOBX|1|NM|147842^X^MDC|1|88"
    unknown = REFERENCE.replace(b"150021^MDC_PRESS_BLD_NONINV_SYS", b"999999^MDC_NOT_A_CODE").replace(
        b"MSGID1234", b"MSGID9")
    with connect(client) as sock:
        rejected = exchange(sock, bad)
        assert str(rejected.segment("MSA")(1)) == "AR" and str(rejected.segment("MSA")(2)) == "BAD1"
        wt = client.app.state.wardtwin  # type: ignore[attr-defined]
        assert client.portal.call(wt.store.patient_ids) == []  # type: ignore[union-attr]
        partial = exchange(sock, unknown)
        assert str(partial.segment("MSA")(1)) == "AE" and str(partial.segment("MSA")(2)) == "MSGID9"
        named = [str(s(8)) for s in partial if str(s[0]) == "ERR" and str(s(4)) == "E"]
        assert len(named) == 1 and "999999" in named[0]
        sock.sendall(b"noise before the start byte" + frame(REFERENCE)[:40])  # a frame in two pieces
        sock.sendall(frame(REFERENCE)[40:])
        assert str(receive_frame(sock).segment("MSA")(1)) == "AA"


def test_listener_stops_with_the_service(tmp_path: Path) -> None:
    with serve(tmp_path, FixedClock(WINDOW_END), mllp_port=0) as client:
        port = client.app.state.mllp.port  # type: ignore[attr-defined]
        held = connect(client)  # an open connection must not keep the service from stopping
    with held:
        assert held.recv(1) == b""  # closed by the server
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=SOCKET_GUARD_S)


def test_off_when_the_port_is_unset(tmp_path: Path) -> None:
    with serve(tmp_path, FixedClock(WINDOW_END)) as client:
        assert client.app.state.mllp is None  # type: ignore[attr-defined]


def test_a_frame_larger_than_the_limit_is_refused_and_the_connection_closed(tmp_path: Path) -> None:
    with serve(tmp_path, FixedClock(WINDOW_END), mllp_port=0, max_body_bytes=2048) as client, \
            connect(client) as sock:
        ack = exchange(sock, REFERENCE + b"\rNTE|1||" + b"x" * 4096)
        assert str(ack.segment("MSA")(1)) == "AR"
        assert "larger than 2048 bytes" in str(ack.segment("ERR")(8))
        assert sock.recv(1) == b""
        wt = client.app.state.wardtwin  # type: ignore[attr-defined]
        assert client.portal.call(wt.store.patient_ids) == []  # type: ignore[union-attr]
