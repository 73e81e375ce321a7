"""IHE PCD-01 (HL7 v2 ORU^R01) → readings, and the ACK that answers the message.

A message is parsed by python-hl7 (``hl7``). Each OBX that carries a value becomes one reading:

- the vital from OBX-3: an IEEE 11073 MDC code (system ``MDC``) or a LOINC code (``LN``), in the primary or the
  alternate coding; an unknown code is refused and named in the ACK, never dropped silently;
- the value from OBX-5 (OBX-2 ``NM``); the unit from OBX-6 (an MDC unit code or mnemonic, or UCUM), converted to
  the vital's unit where the conversion is exact (°F → °C, kPa → mmHg) and refused otherwise; a missing unit is
  refused (never guessed);
- the time from OBX-14, else from the nearest OBX above it in the device hierarchy (OBX-4, ``MDS.VMD.CHAN.METRIC``)
  that has one, else OBR-7; a time without a UTC offset is refused (never guessed);
- the patient from PID-3 (the first identifier);
- the source from OBX-17 (observation method, IHE PCD TF-2): ``MMEAS`` (manual measurement: a clinician took it,
  as a spot-check monitor or an e-obs gateway sends a nurse's observations) stores a ``charted`` reading; ``AMEAS``
  (auto-measurement), an empty OBX-17 or any other method, the monitor's own stream, a ``monitor`` one;

and then goes through ingest's own rules (``app.ingest.validate_batch``: id pattern, plausible range, time
horizon), exactly as a JSON reading would. OBX segments without a value (the MDS/VMD/channel containers of the
PCD-01 hierarchy) only carry times for their children.

The ACK (``MSA-1``):

- ``AR``: the message cannot be read as an ORU^R01 (not HL7, no MSH/PID/OBR/OBX, another message type, processing
  id or version): nothing is stored;
- ``AE``: readable, but some observations were refused (each named in an ERR segment: location, HL7 table 0357
  code, severity, our error type and a sentence); the good readings beside them are stored, as JSON ingest stores
  a batch's good items (re-sending is idempotent on patient, vital and time);
- ``AA``: every observation stored; ERR segments of severity ``I`` name what was known but not stored (the mean
  arterial pressure, a pulse rate beside an ECG heart rate of the same time).

``MSA-2`` echoes MSH-10.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import hl7

from app.domain import Reading
from app.errors import StoreUnavailableError
from app.ingest import validate_batch
from models.schema import SOURCE_CHARTED, SOURCE_MONITOR

if TYPE_CHECKING:
    from app.security.keys import Principal
    from app.service import Ingested, WardTwin

logger = logging.getLogger(__name__)

#: Media types ``POST /v1/hl7`` takes and answers (ER7, the pipe-delimited encoding).
HL7_MEDIA_TYPE: Final = "application/hl7-v2"


@dataclass(frozen=True)
class Code:
    vital: str | None  # None: known, deliberately not stored
    name: str
    priority: int = 0  # of two codes giving one vital at one time, the lower priority is kept


#: IEEE 11073-10101 (MDC) observation codes of PCD-01 (``shared/reference/interoperability.md``).
MDC_CODES: Final[dict[str, Code]] = {
    "147842": Code("hr", "MDC_ECG_HEART_RATE"),
    "149530": Code("hr", "MDC_PULS_OXIM_PULS_RATE", priority=1),
    "150456": Code("spo2", "MDC_PULS_OXIM_SAT_O2"),
    "151562": Code("rr", "MDC_RESP_RATE"),
    "150021": Code("sbp", "MDC_PRESS_BLD_NONINV_SYS"),
    "150022": Code("dbp", "MDC_PRESS_BLD_NONINV_DIA"),
    "150023": Code(None, "mean arterial pressure (wardtwin has no such vital)"),
    "150364": Code("temp", "MDC_TEMP_BODY"),
    "150344": Code("temp", "MDC_TEMP", priority=1),
}
#: LOINC codes of the FHIR R4 vital-signs profiles.
LOINC_CODES: Final[dict[str, Code]] = {
    "8867-4": Code("hr", "Heart rate"),
    "9279-1": Code("rr", "Respiratory rate"),
    "59408-5": Code("spo2", "Oxygen saturation by pulse oximetry"),
    "2708-6": Code("spo2", "Oxygen saturation in arterial blood", priority=1),
    "8310-5": Code("temp", "Body temperature"),
    "8480-6": Code("sbp", "Systolic blood pressure"),
    "8462-4": Code("dbp", "Diastolic blood pressure"),
}
CODE_SYSTEMS: Final[dict[str, dict[str, Code]]] = {"MDC": MDC_CODES, "LN": LOINC_CODES}

#: Units, each to its UCUM form: MDC unit codes, MDC mnemonics, UCUM codes.
MDC_UNITS: Final[dict[str, str]] = {"264864": "/min", "264928": "/min", "262688": "%", "266016": "mm[Hg]",
                                    "268192": "Cel"}
MDC_UNIT_NAMES: Final[dict[str, str]] = {
    "MDC_DIM_BEAT_PER_MIN": "/min", "MDC_DIM_RESP_PER_MIN": "/min", "MDC_DIM_PERCENT": "%", "MDC_DIM_MMHG": "mm[Hg]",
    "MDC_DIM_DEGC": "Cel", "MDC_DIM_FAHR": "[degF]", "MDC_DIM_KILO_PASCAL": "kPa",
}
UCUM_UNITS: Final[dict[str, str]] = {
    "/min": "/min", "{beats}/min": "/min", "{beat}/min": "/min", "{breaths}/min": "/min", "%": "%",
    "mm[Hg]": "mm[Hg]", "Cel": "Cel", "[degF]": "[degF]", "kPa": "kPa",
}
_MMHG_PER_KPA: Final = 760 / 101.325
#: (vital, UCUM unit) → the value in the vital's own unit (``models.schema.VITAL_UNITS``). Nothing else is accepted.
CONVERSIONS: Final[dict[tuple[str, str], Callable[[float], float]]] = {
    ("hr", "/min"): float, ("rr", "/min"): float, ("spo2", "%"): float,
    ("sbp", "mm[Hg]"): float, ("dbp", "mm[Hg]"): float,
    ("sbp", "kPa"): lambda v: v * _MMHG_PER_KPA, ("dbp", "kPa"): lambda v: v * _MMHG_PER_KPA,
    ("temp", "Cel"): float, ("temp", "[degF]"): lambda v: (v - 32) * 5 / 9,
}
#: OBX-11 result statuses whose value is a reading (final, preliminary, corrected, unverified); X: none obtained.
USABLE_STATUSES: Final = frozenset({"", "F", "P", "C", "R", "A", "S"})
#: OBX-17 observation methods (IHE PCD TF-2 ``CODE^text^MDC``) whose value a clinician measured: stored as charted.
CHARTED_METHODS: Final = frozenset({"MMEAS"})
_DTM = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.(\d{1,4}))?([+-])(\d{2})(\d{2})$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)$")


@dataclass(frozen=True)
class Problem:
    """One ERR segment: where (ERL ``segment^sequence^field``), the HL7 table 0357 code, severity (E, W, I), our
    error type (the ``type`` JSON ingest uses where it has one) and the sentence."""

    where: str
    code: str
    severity: str
    kind: str
    text: str


HL7_ERRORS: Final[dict[str, str]] = {
    "100": "Segment sequence error", "101": "Required field missing", "102": "Data type error",
    "103": "Table value not found", "200": "Unsupported message type", "202": "Unsupported processing id",
    "203": "Unsupported version id", "204": "Unknown key identifier", "205": "Duplicate key identifier",
    "207": "Application internal error",
}


@dataclass
class Outcome:
    """What a message yields: the readings to store, the problems to report, and whether it was rejected whole."""

    message: hl7.Message | None
    readings: list[Reading] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rejected: bool = False

    @property
    def ack_code(self) -> str:
        if self.rejected:
            return "AR"
        return "AE" if any(p.severity in ("E", "W") for p in self.problems) else "AA"

    def reject(self, where: str, code: str, kind: str, text: str) -> Outcome:
        self.rejected, self.readings = True, []
        self.problems.append(Problem(where, code, "E", kind, text))
        return self


@dataclass(frozen=True)
class _Item:
    """A mapped observation before ingest's checks: the JSON item and where it came from."""

    item: dict[str, object]
    obx: str  # ERL of the OBX, e.g. "OBX^3"
    pid: str  # ERL of the PID
    time_from: str  # ERL of the field the time came from
    priority: int
    coding: str  # OBX-3 as sent, for messages


def _get(segment: hl7.Segment, field_num: int, component: int = 1, repeat: int = 1) -> str:
    """A field's component as text (unescaped), "" when absent."""
    try:
        return str(segment.extract_field(1, field_num, repeat, component, 1)).strip()
    except IndexError:
        return ""


def normalise(raw: bytes) -> str:
    """The body as ER7 text with ``\\r`` segment separators (HTTP clients and files often use ``\\n``).
    ``UnicodeDecodeError`` when it is not UTF-8."""
    text = raw.decode("utf-8").strip().replace("\r\n", "\r").replace("\n", "\r")
    return "\r".join(s for s in text.split("\r") if s.strip())


def parse_dtm(raw: str) -> str:
    """An HL7 DTM with an offset (``YYYYMMDDHHMM[SS[.S…]]±ZZZZ``) as ISO 8601; ``ValueError`` naming the problem."""
    match = _DTM.match(raw)
    if match is None:
        if re.match(r"^\d{12,14}(?:\.\d{1,4})?$", raw):
            raise ValueError(f"time {raw!r} has no UTC offset (wardtwin does not guess the sender's time zone)")
        raise ValueError(f"time {raw[:40]!r} is not an HL7 DTM (YYYYMMDDHHMM[SS]±ZZZZ)")
    year, month, day, hour, minute, second, frac, sign, oh, om = match.groups()
    fraction = f".{frac.ljust(3, '0')[:3]}" if frac else ""
    return f"{year}-{month}-{day}T{hour}:{minute}:{second or '00'}{fraction}{sign}{oh}:{om}"


def _code(segment: hl7.Segment) -> tuple[Code | None, str]:
    """OBX-3's known code (primary coding, else the alternate), and the coding as sent (for messages)."""
    sent = " ".join(filter(None, (_get(segment, 3, c) for c in (1, 2, 3))))
    for code_c, system_c in ((1, 3), (4, 6)):
        known = CODE_SYSTEMS.get(_get(segment, 3, system_c), {}).get(_get(segment, 3, code_c))
        if known is not None:
            return known, sent
    return None, sent


def _unit(segment: hl7.Segment) -> tuple[str | None, str]:
    """OBX-6 as a UCUM unit (None: missing, unknown or contradictory), and as sent."""
    code, name, system = _get(segment, 6, 1), _get(segment, 6, 2), _get(segment, 6, 3)
    sent = " ".join(filter(None, (code, name, system)))
    found = {u for u in (MDC_UNITS.get(code), MDC_UNIT_NAMES.get(name), UCUM_UNITS.get(code)) if u is not None}
    return (found.pop() if len(found) == 1 else None), sent


def _header(message: hl7.Message, outcome: Outcome) -> bool:
    msh = message.segment("MSH")
    kind = f"{_get(msh, 9, 1)}^{_get(msh, 9, 2)}"
    if kind != "ORU^R01":
        outcome.reject("MSH^1^9", "200", "unsupported_message", f"message type {kind!r} is not ORU^R01 (IHE PCD-01)")
    elif not _get(msh, 10):
        outcome.reject("MSH^1^10", "101", "missing", "MSH-10 (message control id) is empty")
    elif _get(msh, 11) != "P":
        outcome.reject("MSH^1^11", "202", "unsupported_processing_id",
                       f"processing id {_get(msh, 11)!r} is not P (production): nothing stored")
    elif not _get(msh, 12).startswith("2."):
        outcome.reject("MSH^1^12", "203", "unsupported_version", f"version {_get(msh, 12)!r} is not HL7 v2.x")
    return not outcome.rejected


def read_message(raw: bytes, now: datetime, max_future_skew: timedelta, max_age: timedelta | None) -> Outcome:
    """The readings and problems of one ER7 message, checked by ingest's rules against ``now``."""
    try:
        text = normalise(raw)
    except UnicodeDecodeError as exc:
        return Outcome(None).reject("", "102", "unicode", f"the message is not UTF-8: {exc.reason} at byte {exc.start}")
    if not text.startswith("MSH|"):
        return Outcome(None).reject("MSH", "100", "not_hl7", "the message does not start with an MSH segment")
    try:
        message = hl7.parse(text)
    except (hl7.ParseException, ValueError, IndexError) as exc:
        return Outcome(None).reject("MSH", "100", "not_hl7", f"the message cannot be parsed as HL7 v2: {exc}")
    outcome = Outcome(message)
    if not _header(message, outcome):
        return outcome
    items = _observations(message, outcome)
    if outcome.rejected:
        return outcome
    result = validate_batch([i.item for i in items], now, max_future_skew, max_age)
    _report_invalid(items, result.errors, outcome)
    refused = {e["loc"][2] for e in result.errors}
    valid = iter(result.readings)
    kept: dict[tuple[str, str, datetime, str], tuple[_Item, Reading]] = {}
    for index, item in enumerate(items):
        if index in refused:
            continue
        reading = next(valid)
        key = (reading.patient_id, reading.vital, reading.ts, reading.source)
        held = kept.get(key)
        if held is not None:  # one vital twice at one time (ECG rate and oximeter pulse): the preferred code stays
            loser, winner = (item, held[0]) if held[0].priority <= item.priority else (held[0], item)
            outcome.problems.append(Problem(f"{loser.obx}^3", "0", "I", "superseded",
                                            f"{loser.coding}: {reading.vital} at {reading.ts.isoformat()} is "
                                            f"given by {winner.obx.replace('^', ' ')} ({winner.coding}): not stored"))
            if winner is held[0]:
                continue
        kept[key] = (item, reading)
    outcome.readings = [reading for _, reading in kept.values()]
    return outcome


def _observations(message: hl7.Message, outcome: Outcome) -> list[_Item]:
    """Walk PID/OBR/OBX in order: each valued OBX as an ingest item, or a problem."""
    items: list[_Item] = []
    counts: dict[str, int] = {}
    patient: str | None = None
    pid_at = obr_at = ""
    obr_time: str = ""
    path_times: dict[str, tuple[str, str]] = {}
    for segment in message:
        name = str(segment[0])
        counts[name] = counts.get(name, 0) + 1
        at = f"{name}^{counts[name]}"
        if name == "PID":
            patient, pid_at, obr_at = _get(segment, 3), at, ""  # a new patient's observations need its own OBR
            if not patient:
                outcome.reject(f"{at}^3", "101", "missing", "PID-3 (patient identifier) is empty")
                return []
        elif name == "OBR":
            if patient is None:
                outcome.reject(at, "100", "segment_order", "OBR before any PID")
                return []
            obr_at, obr_time, path_times = at, _get(segment, 7), {}
        elif name == "OBX":
            if not obr_at:
                outcome.reject(at, "100", "segment_order", "OBX before any OBR")
                return []
            item = _observation(segment, at, patient or "", pid_at, (obr_time, f"{obr_at}^7"), path_times, outcome)
            if item is not None:
                items.append(item)
    if patient is None or not obr_at:
        outcome.reject("PID" if patient is None else "OBR", "100", "segment_order",
                       "an ORU^R01 needs a PID and an OBR segment")
    elif "OBX" not in counts:
        outcome.reject("OBX", "100", "segment_order", "the message has no OBX segment: no observation")
    return items


def _observation(segment: hl7.Segment, at: str, patient: str, pid_at: str, obr_time: tuple[str, str],
                 path_times: dict[str, tuple[str, str]], outcome: Outcome) -> _Item | None:
    path, own_time = _get(segment, 4), _get(segment, 14)
    if own_time and path:
        path_times[path] = (own_time, f"{at}^14")
    value, value_type, status = _get(segment, 5), _get(segment, 2), _get(segment, 11)
    if not value and not value_type:
        return None  # a container of the device hierarchy (MDS, VMD, channel): no observation of its own
    code, coding = _code(segment)

    def problem(field_num: int, hl7_code: str, kind: str, text: str, severity: str = "E") -> None:
        outcome.problems.append(Problem(f"{at}^{field_num}", hl7_code, severity, kind, text))

    if code is None:
        problem(3, "103", "unknown_code", f"unknown observation code {coding or '(empty)'}: not stored")
        return None
    if code.vital is None:
        problem(3, "0", "not_stored", f"{coding}: {code.name}: not stored", severity="I")
        return None
    if status == "X":
        problem(11, "0", "not_obtained", f"{coding}: result status X (not obtained), no reading", severity="I")
        return None
    if status not in USABLE_STATUSES:
        problem(11, "103", "result_status", f"{coding}: result status {status!r} is not a usable result "
                                            "(F, P, C, R, A, S): not stored")
        return None
    if value_type != "NM" or not _NUMBER.match(value):
        problem(5, "102", "type_error", f"{coding}: value {value[:40]!r} (type {value_type or 'none'}) is not a "
                                        "number (OBX-2 NM)")
        return None
    unit, unit_sent = _unit(segment)
    convert = CONVERSIONS.get((code.vital, unit)) if unit else None
    if convert is None:
        why = "missing" if not unit_sent else f"{unit_sent!r} is not a unit wardtwin converts for {code.vital}"
        problem(6, "101" if not unit_sent else "103", "unit", f"{coding}: unit {why}: not stored (never guessed)")
        return None
    time, time_from = own_time, f"{at}^14"
    parts = path.split(".") if path else []
    while not time and parts:
        parts.pop()
        time, time_from = path_times.get(".".join(parts), ("", ""))
    if not time:
        time, time_from = obr_time
    if not time:
        problem(14, "101", "missing", f"{coding}: no observation time (OBX-14, a parent OBX-14 or OBR-7)")
        return None
    try:
        ts = parse_dtm(time)
    except ValueError as exc:
        outcome.problems.append(Problem(time_from, "102", "E", "datetime", f"{coding}: {exc}"))
        return None
    number = convert(float(value))
    if not math.isfinite(number):
        problem(5, "102", "type_error", f"{coding}: value {value[:40]!r} is not finite")
        return None
    source = SOURCE_CHARTED if _get(segment, 17) in CHARTED_METHODS else SOURCE_MONITOR
    return _Item({"patient_id": patient, "vital": code.vital, "value": number, "ts": ts, "source": source}, at,
                 pid_at, time_from, code.priority, coding)


def _report_invalid(items: Sequence[_Item], errors: Sequence[dict], outcome: Outcome) -> None:
    """Ingest's refusals as ERR segments, each problem once (a bad PID-3 or a parent's time is named once, not once
    per observation it carries)."""
    seen: set[tuple[str, str]] = set()
    for error in errors:
        item = items[error["loc"][2]]
        name = error["loc"][3] if len(error["loc"]) > 3 else None
        where = {"patient_id": f"{item.pid}^3", "ts": item.time_from}.get(name or "", f"{item.obx}^5")
        text = error["msg"] if name in ("patient_id", "ts") else f"{item.coding}: {error['msg']}"
        if (where, text) not in seen:
            seen.add((where, text))
            outcome.problems.append(Problem(where, "102", "E", error["type"], text))


# -- the ACK -----------------------------------------------------------------------------------------------------
def _dtm(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")


def _err(message: hl7.Message | None, problem: Problem) -> str:
    def esc(text: str) -> str:
        if message is None:
            return re.sub(r"[|^~\\&]", " ", text)
        return str(message.escape(text))

    name = HL7_ERRORS.get(problem.code, "Message accepted" if problem.code == "0" else "")
    return "|".join(["ERR", "", problem.where, f"{problem.code}^{esc(name)}^HL70357", problem.severity,
                     esc(problem.kind), "", "", esc(problem.text)])


def ack(outcome: Outcome, now: datetime) -> str:
    """The ACK as ER7 (``\\r``-separated): MSH, MSA (code, the message's MSH-10), one ERR per problem."""
    control_id = hl7.generate_message_control_id()
    if outcome.message is not None:
        answer = outcome.message.create_ack(outcome.ack_code, message_id=control_id, application="wardtwin")
        answer.segment("MSH").assign_field(_dtm(now), 7)  # the service's clock, not the library's
        segments = [str(s) for s in answer]
    else:
        segments = [f"MSH|^~\\&|wardtwin|||||{_dtm(now)}||ACK^R01^ACK|{control_id}|P|2.6", "MSA|AR|"]
    segments += [_err(outcome.message, p) for p in outcome.problems]
    return "\r".join(segments) + "\r"


@dataclass(frozen=True)
class Answer:
    """What a message is answered: the ACK code, the ACK's ER7, and whether the service (not the message) failed
    (the store unavailable: AR, nothing stored, the sender should retry; ``POST /v1/hl7`` answers 503)."""

    code: str
    text: str
    unavailable: bool = False
    ingested: Ingested | None = None  # what ingest stored (the HTTP route audits it)


async def receive(raw: bytes, wt: WardTwin, who: Principal | None = None) -> Answer:
    """One message from MLLP or HTTP: read it, store its good readings through the service's ingest use case (as
    ``who`` may: its scope, first value kept; each refused reading an ERR, 204 out of scope, 205 conflict), and
    answer it."""
    now = wt.now()
    outcome = read_message(raw, now, timedelta(seconds=wt.settings.max_future_skew_s),
                           timedelta(days=wt.settings.reading_horizon_days))
    ingested = None
    if outcome.readings:
        try:
            ingested = await wt.ingest(outcome.readings, who)
        except StoreUnavailableError as exc:
            logger.warning("hl7 message not stored: %s", exc)
            outcome.reject("", "207", "store_unavailable", f"not stored, retry: {exc}")
            return Answer(outcome.ack_code, ack(outcome, now), unavailable=True)
        for refused in ingested.refused:
            code = "204" if refused["type"] == "out_of_scope" else "205"
            outcome.problems.append(Problem("PID^1^3", code, "E", refused["type"], refused["msg"]))
        outcome.readings = ingested.stored
    logger.info("hl7 message ack=%s readings=%d problems=%d", outcome.ack_code, len(outcome.readings),
                len(outcome.problems))
    return Answer(outcome.ack_code, ack(outcome, now), ingested=ingested)
