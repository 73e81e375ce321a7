"""InfluxDB line protocol as a second ingest format (``POST /v1/write``), validated like ``POST /v1/readings``.

One line is one reading, in the form the service itself writes to InfluxDB (``models.line_protocol``, the one
definition of the format, parses it)::

    vitals,patient_id=bed-01,vital=hr value=88,quality="ok" 1764237600000000000

measurement ``vitals``; tags ``patient_id``, ``vital`` and optionally ``source`` (``charted`` for a nurse's charted
value, ``monitor`` or absent for a device's); fields ``value`` (a float or an ``i`` integer; for
``acvpu`` also a quoted letter) and, optionally, ``quality`` (a string); the timestamp in the request's
``precision`` (``ns`` by default, as InfluxDB; ``u``, ``ms``, ``s``), or none: the service's clock, as InfluxDB
stamps a point without one. Blank lines and ``#`` comments are skipped.

A body whose every line is in the encoder's own form and valid is read straight into readings (``fast_lines``,
checked against the full path by property test); any other body takes the full path: each line becomes the JSON
item it stands for and goes through ``app.ingest.validate_batch``: the same rules, the same messages; a problem is
located at ``["body", "lines", i, field]`` with ``i`` the 0-based line index in the body, and the good lines of a
body are stored exactly once, as with a JSON batch.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from app.domain import Reading
from app.ingest import BatchResult, validate_batch
from models.line_protocol import FieldValue, parse_line
from models.line_protocol import _parse_field as parse_field  # the one reading of a field value
from models.schema import (
    EARLIEST_READING_AT,
    PATIENT_ID_PATTERN,
    PLAUSIBLE_RANGES,
    QUALITY_OK,
    QUALITY_PATTERN,
    SOURCE_MONITOR,
    SOURCES,
)

MEASUREMENT: Final = "vitals"
#: ``precision`` → nanoseconds per unit (InfluxDB 1.x names; ``n`` and ``ns`` both mean nanoseconds).
PRECISIONS: Final[dict[str, int]] = {"n": 1, "ns": 1, "u": 1_000, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class _LineError(ValueError):
    def __init__(self, field: str | None, msg: str, type_: str) -> None:
        super().__init__(msg)
        self.field, self.type = field, type_


def _error(line: int, field: str | None, msg: str, type_: str) -> dict[str, Any]:
    loc: list[str | int] = ["body", "lines", line]
    if field:
        loc.append(field)
    return {"loc": loc, "msg": msg, "type": type_}


_Parsed = tuple[str, dict[str, str], dict[str, FieldValue], int | None]


def parse_plain(line: str) -> _Parsed | None:
    """``parse_line``'s answer for a line without escapes or separators inside quotes (every line the service's
    encoder writes for a valid reading), by ``str.split``; None for any other line, which then goes to
    ``models.line_protocol.parse_line`` (a character loop, ~30 times slower). Raises ValueError where it would.
    ``tests/unit/test_ingest_lines.py`` checks the two agree (Hypothesis)."""
    if "\\" in line:
        return None
    if '"' in line:
        quoted = line.split('"')
        if len(quoted) % 2 == 0 or any(c in q for q in quoted[1::2] for c in " ,="):
            return None
    parts = line.split(" ")
    if len(parts) == 3:
        stamp: int | None = int(parts[2])
    elif len(parts) == 2:
        stamp = None
    else:
        return None
    if not all(parts):
        return None
    measurement, *pairs = parts[0].split(",")
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or "=" in value:
            return None
        if key in tags:
            raise ValueError(f"duplicate tag {key[:40]!r}")
        tags[key] = value
    fields: dict[str, FieldValue] = {}
    for pair in parts[1].split(","):
        key, sep, value = pair.partition("=")
        if not sep or "=" in value:
            return None
        fields[key] = parse_field(value)
    return measurement, tags, fields, stamp


def _item(line: str, ns_per_unit: int, now: datetime) -> dict[str, Any]:
    """The reading a line stands for, as a JSON item; ``_LineError`` for a line that is not one reading."""
    try:
        measurement, tags, fields, stamp = parse_plain(line) or parse_line(line)
    except (ValueError, IndexError) as exc:
        if str(exc).startswith("duplicate tag"):  # InfluxDB refuses the line too
            raise _LineError(None, f"{exc} in line {line[:60]!r}", "line_protocol") from None
        raise _LineError(None, f"line {line[:60]!r} is not InfluxDB line protocol", "line_protocol") from None
    if measurement != MEASUREMENT:
        raise _LineError(None, f"measurement must be {MEASUREMENT!r}, got {measurement[:40]!r}", "measurement")
    _check_keys(tags, fields)
    item: dict[str, Any] = {**tags, **fields}
    if stamp is None:
        item["ts"] = now.astimezone(UTC).isoformat()
    else:
        try:
            item["ts"] = (_EPOCH + timedelta(microseconds=stamp * ns_per_unit // 1000)).isoformat()
        except OverflowError:
            raise _LineError("ts", f"timestamp {stamp} is out of range", "datetime") from None
    return item


TAGS: Final = frozenset({"patient_id", "vital", "source"})
FIELDS: Final = frozenset({"value", "quality"})


def _check_keys(tags: dict[str, str], fields: dict[str, FieldValue]) -> None:
    """A key given as a tag and as a field, a tag of the format sent as a field or the reverse, is refused: InfluxDB
    would keep the tag as the series and the field beside it, and merged they let a field override the patient
    (issue 21, finding 11). Unknown keys are left to ``validate_batch`` (``extra_forbidden``)."""
    both = sorted(tags.keys() & fields.keys())
    if both:
        raise _LineError(None, f"{both[0][:40]!r} is given both as a tag and as a field", "line_protocol")
    as_field = sorted(fields.keys() & TAGS)
    if as_field:
        raise _LineError(None, f"{as_field[0]!r} is a tag, sent as a field", "line_protocol")
    as_tag = sorted(tags.keys() & (FIELDS | {"ts", "time"}))
    if as_tag:
        raise _LineError(None, f"{as_tag[0]!r} is a field, sent as a tag", "line_protocol")
    if "ts" in fields or "time" in fields:
        raise _LineError(None, "the time is the line's timestamp, not a field", "line_protocol")


def influx_lines(body: str) -> list[str]:
    """``body`` cut into lines where InfluxDB 1.x cuts it (``scanLine`` in ``models/points.go``): at a newline, but
    not at one inside a string field value or escaped by a backslash (issue 21: a quoted newline was a line break
    here, so one InfluxDB point read as two readings). A physical line with no quote and no backslash, or in the
    encoder's own form, cannot hold such a newline: only the others are scanned character by character."""
    physical = body.split("\n")
    if "\\" not in body and _quotes_pair_within_lines(body):
        return physical
    lines: list[str] = []
    k, offset, n = 0, 0, len(body)
    while k < len(physical):
        line = physical[k]
        if ('"' not in line and "\\" not in line) or _ENCODED_LINE.fullmatch(line):
            lines.append(line)
            offset += len(line) + 1
            k += 1
            continue
        end = _scan_line(body, offset, n)
        lines.append(body[offset:end])
        while k < len(physical) and offset <= end:  # past the physical lines the scan consumed
            offset += len(physical[k]) + 1
            k += 1
    return lines


def _quotes_pair_within_lines(body: str) -> bool:
    """True when, with no backslash in ``body``, no newline can be inside a quoted string: the quotes pair up in
    order and no pair encloses a newline, a space, ``=`` or ``,``. Then the two quotes of a pair are either both
    string delimiters to ``scanLine`` or both ordinary characters (nothing between them changes its state), so its
    quoted regions are among the pairs. Every valid body passes (a quality is ``[a-z_]``), in C-speed string
    operations; another goes line by line."""
    if '"' not in body:
        return True
    parts = body.split('"')
    if len(parts) % 2 == 0:  # an odd number of quotes
        return False
    inside = "".join(parts[1::2])
    return not any(c in inside for c in "\n =,")


def _scan_line(buf: str, i: int, n: int) -> int:
    """Where the line starting at ``i`` ends (its newline, or ``n``): InfluxDB's ``scanLine``, statement for
    statement."""
    quoted = fields = False
    equals = commas = 0
    while i < n:
        ch = buf[i]
        if ch == "\\" and i + 2 < n:
            i += 2
            continue
        if ch == " ":
            fields = True
        if fields:
            if not quoted and ch == "=":
                i, equals = i + 1, equals + 1
                continue
            if not quoted and ch == ",":
                i, commas = i + 1, commas + 1
                continue
            if ch == '"' and equals > commas:
                i, quoted = i + 1, not quoted
                continue
        if ch == "\n" and not quoted:
            break
        i += 1
    return i


def reading_lines(body: str) -> list[tuple[int, str]]:
    """(0-based line index, text) of every line that should hold a reading (not blank, not a ``#`` comment), lines
    as InfluxDB reads them (``influx_lines``)."""
    return [(i, text) for i, line in enumerate(influx_lines(body)) if (text := line.strip()) and text[0] != "#"]


#: The line the service's encoder writes for a reading, tags and fields in its order, a timestamp; no escapes, no
#: quotes but around ``quality``. Any other line (escaped, reordered, no timestamp ...) goes the full way.
_ENCODED_LINE: Final = re.compile(r'vitals,patient_id=([^\s,="\\]+)(?:,source=([^\s,="\\]+))?,vital=([^\s,="\\]+) '
                                  r'value=([^\s,="\\]+)'
                                  r'(?:,quality="([^\s,="\\]*)")? ([0-9]+)')


def fast_lines(lines: list[tuple[int, str]], ns_per_unit: int, now: datetime, max_future_skew: timedelta,
               max_age: timedelta | None = None) -> list[Reading] | None:
    """Every reading of ``lines`` when each is an encoded-form line (``_ENCODED_LINE``) of a valid reading, or None:
    let ``validate_lines``' full path answer. Straight from the line to the ``Reading``, with ``validate_batch``'s
    rules: no JSON item, no ISO text in between. ``tests/unit/test_ingest_lines.py`` checks that on arbitrary
    bodies it declines or answers exactly what the full path answers (Hypothesis)."""
    horizon = now + max_future_skew
    earliest = EARLIEST_READING_AT if max_age is None else max(EARLIEST_READING_AT, now - max_age)
    match, id_ok, quality_ok, ranges = _ENCODED_LINE.fullmatch, PATIENT_ID_PATTERN.fullmatch, \
        QUALITY_PATTERN.fullmatch, PLAUSIBLE_RANGES
    known: set[str] = set()
    times: dict[str, datetime] = {}  # the timestamp's text → its time: each distinct stamp converted once
    readings: list[Reading] = []
    append, new = readings.append, tuple.__new__
    for _, text in lines:
        m = match(text)
        if m is None:
            return None
        patient_id, source, vital, raw_value, quality, stamp = m.groups()
        if source is None:
            source = SOURCE_MONITOR
        elif source not in SOURCES:
            return None
        if patient_id not in known:
            if not id_ok(patient_id):
                return None
            known.add(patient_id)
        bounds = ranges.get(vital)
        if bounds is None:
            return None
        try:
            value = parse_field(raw_value)
        except ValueError:
            return None
        kind = type(value)
        if kind is not float and kind is not int:  # a bool (``t``) goes the full way, which names it
            return None
        value = float(value)
        if not bounds[0] <= value <= bounds[1] or (vital == "acvpu" and not value.is_integer()):
            return None  # NaN fails the comparison too
        if quality is None:
            quality = QUALITY_OK
        elif quality != QUALITY_OK and not quality_ok(quality):
            return None
        ts = times.get(stamp)
        if ts is None:
            try:  # the full path's time (µs from the stamp, then truncated to the ms), in one step
                ts = _EPOCH + timedelta(milliseconds=int(stamp) * ns_per_unit // 1_000_000)
            except OverflowError:
                return None
            if not earliest <= ts <= horizon:
                return None
            times[stamp] = ts
        append(new(Reading, (patient_id, vital, ts, value, quality, source)))
    return readings


def validate_lines(lines: list[tuple[int, str]], precision: str, now: datetime, max_future_skew: timedelta,
                   max_age: timedelta | None = None) -> BatchResult:
    """Every good reading of ``reading_lines(body)`` and every problem, located by line (see the module)."""
    ns_per_unit = PRECISIONS[precision]
    fast = fast_lines(lines, ns_per_unit, now, max_future_skew, max_age)
    if fast is not None:  # every line an encoded-form line of a valid reading
        return BatchResult(fast, [])
    return full_lines(lines, ns_per_unit, now, max_future_skew, max_age)


def full_lines(lines: list[tuple[int, str]], ns_per_unit: int, now: datetime, max_future_skew: timedelta,
               max_age: timedelta | None = None) -> BatchResult:
    """``validate_lines``' full path: each line as the JSON item it stands for, through ``validate_batch``."""
    items: list[dict[str, Any]] = []
    where: list[int] = []  # items[k] came from line where[k]
    errors: list[dict[str, Any]] = []
    for index, text in lines:
        try:
            items.append(_item(text, ns_per_unit, now))
        except _LineError as exc:
            errors.append(_error(index, exc.field, str(exc), exc.type))
            continue
        where.append(index)
    checked = validate_batch(items, now, max_future_skew, max_age)
    for error in checked.errors:  # ["body", "readings", k, field?] → ["body", "lines", line, field?]
        loc = error["loc"]
        errors.append({**error, "loc": ["body", "lines", where[loc[2]], *loc[3:]]})
    errors.sort(key=lambda e: e["loc"][2])
    return BatchResult(checked.readings, errors)
