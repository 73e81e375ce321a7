"""POST /v1/hl7: IHE PCD-01 ORU^R01 in, ACK out; the mapping's rules (codes, units, times) one by one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hl7
import pytest
from fastapi.testclient import TestClient

from app.clock import FixedClock
from app.errors import StoreUnavailableError
from app.interop.hl7 import parse_dtm, read_message
from tests.support.api import client_as, serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "interop"
REFERENCE = (FIXTURES / "valid-pcd01-request.hl7").read_bytes()
#: The reference message's observation time, 2009-08-13 09:57:15 +05:00, in UTC.
OBSERVED_AT = datetime(2009, 8, 13, 4, 57, 15, tzinfo=UTC)
NOW = OBSERVED_AT + timedelta(minutes=3)
HL7_TYPE = {"Content-Type": "application/hl7-v2"}

MSH = "MSH|^~\\&|GW^ACDE48234567ABCD^EUI-64||||20090813095800+0500||ORU^R01^ORU_R01|{id}|P|2.6"
PID = "PID|||{patient}^^^Ward^PI"
OBR = "OBR|1|||182777000^monitoring of patient^SNOMED-CT|||20090813095715+0500"


def obx(n: int, code: str, value: str, unit: str, time: str = "", kind: str = "NM", status: str = "R") -> str:
    return f"OBX|{n}|{kind}|{code}|1.1.1.{n}|{value}|{unit}|||||{status}|||{time}"


def message(*obxs: str, patient: str = "bed-7", control_id: str = "M1") -> bytes:
    return "\r".join([MSH.format(id=control_id), PID.format(patient=patient), OBR, *obxs]).encode()


HR = "147842^MDC_ECG_HEART_RATE^MDC"
BPM = "264864^MDC_DIM_BEAT_PER_MIN^MDC"


def ack_of(text: str) -> hl7.Message:
    return hl7.parse(text.replace("\n", "\r"))


def errs(ack: hl7.Message) -> list[hl7.Segment]:
    return [s for s in ack if str(s[0]) == "ERR"]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with serve(tmp_path, FixedClock(NOW)) as client:
        yield client


def readings_of(client: TestClient, patient: str) -> list[tuple[str, datetime, float, str]]:
    """The patient's stored readings (vital, ts, value, source), straight from the service's store."""
    wt = client.app.state.wardtwin  # type: ignore[attr-defined]
    frame = client.portal.call(wt.store.readings, [patient], OBSERVED_AT - timedelta(days=1),  # type: ignore[union-attr]
                               NOW + timedelta(days=1))
    source = frame["source"] if "source" in frame else ["monitor"] * len(frame)
    return sorted(zip(frame["vital"], [t.to_pydatetime() for t in frame["ts"]], frame["value"], source, strict=True))


def test_reference_message_is_accepted_with_its_bp_readings(client: TestClient) -> None:
    response = client.post("/v1/hl7", content=REFERENCE, headers=HL7_TYPE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/hl7-v2")
    ack = ack_of(response.text)
    assert str(ack.segment("MSA")(1)) == "AA" and str(ack.segment("MSA")(2)) == "MSGID1234"
    assert str(ack.segment("MSH")(9)) == "ACK^R01^ACK"
    (note,) = errs(ack)  # the mean pressure: known, not stored, said so
    assert str(note(2)) == "OBX^5^3" and str(note(4)) == "I"
    assert readings_of(client, "789567") == [("dbp", OBSERVED_AT, 80.0, "monitor"),
                                             ("sbp", OBSERVED_AT, 120.0, "monitor")]


def test_unknown_code_is_reported_and_the_rest_stored(client: TestClient) -> None:
    body = message(obx(1, HR, "88", BPM, "20090813095700+0500"),
                   obx(2, "999999^MDC_MYSTERY^MDC", "5", BPM, "20090813095700+0500"))
    response = client.post("/v1/hl7", content=body, headers=HL7_TYPE)
    assert response.status_code == 422
    ack = ack_of(response.text)
    assert str(ack.segment("MSA")(1)) == "AE" and str(ack.segment("MSA")(2)) == "M1"
    (err,) = errs(ack)
    assert str(err(2)) == "OBX^2^3" and str(err(3)).startswith("103^") and str(err(4)) == "E"
    assert "999999" in str(err(8)) and str(err(5)) == "unknown_code"
    assert readings_of(client, "bed-7") == [("hr", OBSERVED_AT - timedelta(seconds=15), 88.0, "monitor")]


@pytest.mark.parametrize("body", [
    b"this is not HL7",
    b"",
    "\r".join([MSH.format(id="M2").replace("ORU^R01^ORU_R01", "ADT^A01^ADT_A01"), PID.format(patient="bed-7"), OBR,
               obx(1, HR, "88", BPM)]).encode(),
    "\r".join([MSH.format(id="M2"), OBR, obx(1, HR, "88", BPM)]).encode(),  # no PID
    "\r".join([MSH.format(id="M2"), PID.format(patient="bed-7"), OBR]).encode(),  # no OBX
    "\r".join([MSH.format(id="M2").replace("|P|2.6", "|T|2.6"), PID.format(patient="bed-7"), OBR,
               obx(1, HR, "88", BPM)]).encode(),  # a training message
    b"\xff\xfe not utf-8",
])
def test_malformed_message_is_rejected_and_stores_nothing(client: TestClient, body: bytes) -> None:
    response = client.post("/v1/hl7", content=body, headers=HL7_TYPE)
    assert response.status_code == 400, response.text
    ack = ack_of(response.text)
    assert str(ack.segment("MSA")(1)) == "AR"
    assert errs(ack) and all(str(e(4)) == "E" and str(e(8)) for e in errs(ack))
    wt = client.app.state.wardtwin  # type: ignore[attr-defined]
    assert client.portal.call(wt.store.patient_ids) == []  # type: ignore[union-attr]


def test_message_control_id_is_echoed_even_when_rejected(client: TestClient) -> None:
    body = "\r".join([MSH.format(id="ECHO-42"), OBR, obx(1, HR, "88", BPM)]).encode()
    ack = ack_of(client.post("/v1/hl7", content=body, headers=HL7_TYPE).text)
    assert str(ack.segment("MSA")(1)) == "AR" and str(ack.segment("MSA")(2)) == "ECHO-42"


@pytest.mark.parametrize(("code", "value", "unit", "vital", "expected"), [
    ("150364^MDC_TEMP_BODY^MDC", "98.6", "266560^MDC_DIM_FAHR^MDC", "temp", 37.0),
    ("150364^MDC_TEMP_BODY^MDC", "37.2", "268192^MDC_DIM_DEGC^MDC", "temp", 37.2),
    ("150021^MDC_PRESS_BLD_NONINV_SYS^MDC", "16", "kPa^kilopascal^UCUM", "sbp", 16 * 760 / 101.325),
    ("8867-4^Heart rate^LN", "72", "/min^per minute^UCUM", "hr", 72.0),
    ("150456^MDC_PULS_OXIM_SAT_O2^MDC", "97", "262688^MDC_DIM_PERCENT^MDC", "spo2", 97.0),
    ("151562^MDC_RESP_RATE^MDC", "18", "264928^MDC_DIM_RESP_PER_MIN^MDC", "rr", 18.0),
])
def test_units_are_converted_to_the_vitals_own(code: str, value: str, unit: str, vital: str,
                                               expected: float) -> None:
    outcome = read_message(message(obx(1, code, value, unit, "20090813095700+0500")), NOW, timedelta(minutes=5),
                           None)
    assert outcome.ack_code == "AA", outcome.problems
    (reading,) = outcome.readings
    assert reading.vital == vital and reading.value == pytest.approx(expected)


@pytest.mark.parametrize(("unit", "field"), [
    ("", "OBX^1^6"),  # missing: never guessed
    ("264864^MDC_DIM_BEAT_PER_MIN^MDC", "OBX^1^6"),  # a rate is not a temperature
    ("268192^MDC_DIM_FAHR^MDC", "OBX^1^6"),  # the code says °C, the mnemonic °F: contradictory
    ("K^kelvin^UCUM", "OBX^1^6"),  # a unit wardtwin does not convert
])
def test_units_that_cannot_be_trusted_are_refused(unit: str, field: str) -> None:
    outcome = read_message(message(obx(1, "150364^MDC_TEMP_BODY^MDC", "37", unit, "20090813095700+0500")), NOW,
                           timedelta(minutes=5), None)
    assert outcome.ack_code == "AE" and outcome.readings == []
    assert [p.where for p in outcome.problems] == [field]


def test_time_comes_from_obx14_then_the_parent_then_obr7() -> None:
    parent = "OBX|1||150020^MDC_PRESS_BLD_NONINV^MDC|1.0.1|||||||R|||20090813095600+0500"
    own = "OBX|2|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.1.1|120|266016^MDC_DIM_MMHG^MDC|||||R|||20090813095500+0500"
    child = "OBX|3|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.0.1.2|80|266016^MDC_DIM_MMHG^MDC|||||R"
    orphan = obx(4, HR, "70", BPM)  # path 1.1.1.4: no timed parent → OBR-7
    outcome = read_message(message(parent, own, child, orphan), NOW, timedelta(minutes=5), None)
    assert outcome.ack_code == "AA", outcome.problems
    times = {r.vital: r.ts for r in outcome.readings}
    assert times == {"sbp": datetime(2009, 8, 13, 4, 55, tzinfo=UTC), "dbp": datetime(2009, 8, 13, 4, 56, tzinfo=UTC),
                     "hr": OBSERVED_AT}


def test_a_time_without_offset_is_refused_not_guessed() -> None:
    outcome = read_message(message(obx(1, HR, "88", BPM, "20090813095700")), NOW, timedelta(minutes=5), None)
    assert outcome.ack_code == "AE" and outcome.readings == []
    (problem,) = outcome.problems
    assert problem.where == "OBX^1^14" and "offset" in problem.text
    with pytest.raises(ValueError, match="not an HL7 DTM"):
        parse_dtm("yesterday")
    assert parse_dtm("20090813095715.25-0130") == "2009-08-13T09:57:15.250-01:30"


def test_ingest_rules_apply_as_for_json(client: TestClient) -> None:
    """An implausible value and a future time are refused by ingest's own rules, named at their fields."""
    body = message(obx(1, HR, "400", BPM, "20090813095700+0500"),
                   obx(2, HR, "80", BPM, "20090813115700+0500"),  # two hours after the service's now
                   obx(3, "150456^MDC_PULS_OXIM_SAT_O2^MDC", "96", "262688^MDC_DIM_PERCENT^MDC"))
    ack = ack_of(client.post("/v1/hl7", content=body, headers=HL7_TYPE).text)
    assert str(ack.segment("MSA")(1)) == "AE"
    found = {str(e(2)): (str(e(5)), str(e(8))) for e in errs(ack)}
    assert found["OBX^1^5"][0] == "implausible" and "outside" in found["OBX^1^5"][1]
    assert found["OBX^2^14"][0] == "future"
    assert readings_of(client, "bed-7") == [("spo2", OBSERVED_AT, 96.0, "monitor")]


def test_a_bad_patient_id_is_named_once() -> None:
    body = message(obx(1, HR, "88", BPM), obx(2, HR, "89", BPM, "20090813095600+0500"), patient="bed 7!")
    outcome = read_message(body, NOW, timedelta(minutes=5), None)
    assert outcome.ack_code == "AE" and outcome.readings == []
    assert [(p.where, p.kind) for p in outcome.problems] == [("PID^1^3", "pattern")]


def test_ecg_heart_rate_wins_over_the_oximeter_pulse_of_the_same_time() -> None:
    at = "20090813095700+0500"
    body = message(obx(1, "149530^MDC_PULS_OXIM_PULS_RATE^MDC", "90", BPM, at), obx(2, HR, "88", BPM, at))
    outcome = read_message(body, NOW, timedelta(minutes=5), None)
    assert outcome.ack_code == "AA"
    assert [r.value for r in outcome.readings] == [88.0]
    assert [(p.where, p.severity) for p in outcome.problems] == [("OBX^1^3", "I")]


def test_non_numeric_and_not_obtained_values() -> None:
    body = message(obx(1, HR, "high", BPM, kind="ST"), obx(2, HR, "", BPM, status="X"))
    outcome = read_message(body, NOW, timedelta(minutes=5), None)
    assert outcome.ack_code == "AE"
    assert [(p.where, p.severity) for p in outcome.problems] == [("OBX^1^5", "E"), ("OBX^2^11", "I")]


def test_role_device_is_required(client: TestClient) -> None:
    assert client_as(client, None).post("/v1/hl7", content=REFERENCE, headers=HL7_TYPE).status_code == 401
    assert client_as(client, "clinician").post("/v1/hl7", content=REFERENCE, headers=HL7_TYPE).status_code == 403
    assert client_as(client, "device").post("/v1/hl7", content=REFERENCE, headers=HL7_TYPE).status_code == 200


def test_lf_separated_text_plain_is_accepted(client: TestClient) -> None:
    body = REFERENCE.replace(b"\r\n", b"\n")
    response = client.post("/v1/hl7", content=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text


def test_store_unavailable_is_ar_and_503(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault of the service, not of the message: AR (retry), 503, and the ERR says so."""
    wt = client.app.state.wardtwin  # type: ignore[attr-defined]

    async def down(readings: object, who: object = None) -> int:
        raise StoreUnavailableError("the vital store is down")

    monkeypatch.setattr(wt, "ingest", down)
    response = client.post("/v1/hl7", content=REFERENCE, headers=HL7_TYPE)
    assert response.status_code == 503
    ack = ack_of(response.text)
    assert str(ack.segment("MSA")(1)) == "AR" and str(ack.segment("MSA")(2)) == "MSGID1234"
    assert any(str(e(5)) == "store_unavailable" for e in errs(ack))


def test_two_patients_in_one_message_each_with_its_own_obr() -> None:
    second = [PID.format(patient="bed-8"), OBR.replace("095715", "095615"), obx(1, HR, "70", BPM)]
    body = message(obx(1, HR, "88", BPM)) + ("\r" + "\r".join(second)).encode()
    outcome = read_message(body, NOW, timedelta(minutes=5), None)
    assert outcome.ack_code == "AA", outcome.problems
    assert sorted((r.patient_id, r.value, r.ts) for r in outcome.readings) == [
        ("bed-7", 88.0, OBSERVED_AT), ("bed-8", 70.0, OBSERVED_AT - timedelta(minutes=1))]
    orphan = message(obx(1, HR, "88", BPM)) + b"\r" + PID.format(patient="bed-8").encode() + b"\r" + \
        obx(1, HR, "70", BPM).encode()
    rejected = read_message(orphan, NOW, timedelta(minutes=5), None)
    assert rejected.ack_code == "AR" and rejected.readings == []


def test_obx17_manual_measurement_is_stored_as_charted(client: TestClient) -> None:
    """OBX-17 MMEAS (a clinician's measurement, as an e-obs gateway sends it) → charted; AMEAS or none → monitor."""
    rr = "151562^MDC_RESP_RATE^MDC"
    per_min = "264928^MDC_DIM_RESP_PER_MIN^MDC"
    at = "20090813095700+0500"
    body = message(obx(1, rr, "22", per_min, at) + "|||MMEAS^manual-measurement^MDC",
                   obx(2, rr, "26", per_min, at) + "|||AMEAS^auto-measurement^MDC",
                   obx(3, HR, "88", BPM, at))
    response = client.post("/v1/hl7", content=body, headers=HL7_TYPE)
    assert response.status_code == 200, response.text
    assert str(ack_of(response.text).segment("MSA")(1)) == "AA"
    when = OBSERVED_AT - timedelta(seconds=15)
    assert readings_of(client, "bed-7") == [("hr", when, 88.0, "monitor"), ("rr", when, 22.0, "charted"),
                                            ("rr", when, 26.0, "monitor")]
    charted = client_as(client, "clinician").get("/v1/patients/bed-7/observations",
                                                 params={"since": (when - timedelta(minutes=1)).isoformat(),
                                                         "until": (when + timedelta(minutes=1)).isoformat()})
    assert charted.status_code == 200, charted.text
    (chart,) = charted.json()["sets"]
    assert chart["values"] == {"rr": 22.0}
