"""InfluxDB line protocol (v1 ``/write``): escaping, the fast reading encoder, and a reference parser.

The one encoder of the project: the service's InfluxDB store (``app/storage/influx.py``) and the
simulator's line-protocol sink (``simulator/sinks.py``) both write through it. Pure: no I/O, no imports
from ``app/``; a reading is anything with the ``Reading`` attributes (``ReadingLike``).

Escaping, as InfluxDB 1.x parses it (``models/points.go``), checked against a real ``influxd`` in
``tests/integration/test_influx_line_protocol.py``:

- measurement: ``,`` and space are escaped with a backslash;
- tag keys, tag values and field keys: ``,``, ``=`` and space are escaped;
- string field values are double-quoted with ``"`` and ``\\`` escaped; newlines may appear inside;
- floats are written with ``repr`` (shortest round-trip form), integers with an ``i`` suffix;
  NaN and infinities cannot be stored and are refused.

A tag value cannot be empty, cannot hold a newline (it ends the line) and cannot end with a backslash
(``a\\`` followed by the tag separator reads as an escaped comma; 1.x has no escape for a backslash).
Such values are refused with ``ValueError`` rather than written wrong. Patient ids that pass the reading
contract (``models.schema.PATIENT_ID_PATTERN``) never hit these cases; everything written is still escaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Final, Protocol

#: Millisecond timestamps (``precision=ms``); ``ReadingEncoder`` inlines ``(ts - _EPOCH) // _MS``, which is
#: ``app.storage.codec.to_ms``, for speed.
_EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final[timedelta] = timedelta(milliseconds=1)

_MEASUREMENT_ESCAPES: Final = str.maketrans({",": r"\,", " ": r"\ "})
_TAG_ESCAPES: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})

FieldValue = float | int | str | bool


class ReadingLike(Protocol):
    """What ``ReadingEncoder`` reads from a reading (``app.domain.Reading`` has it). The simulator, whose readings
    are dicts, writes the same lines through ``encode_point`` (``tests/unit/test_simulator_live.py`` pins that)."""

    @property
    def patient_id(self) -> str: ...
    @property
    def vital(self) -> str: ...
    @property
    def ts(self) -> datetime: ...  # timezone-aware
    @property
    def value(self) -> float: ...
    @property
    def quality(self) -> str: ...
    @property
    def source(self) -> str: ...  # "monitor" (written without a tag) or "charted" (tag ``source=charted``)


def escape_measurement(name: str) -> str:
    if not name or "\n" in name or name.endswith("\\"):
        raise ValueError(f"measurement name {name!r} cannot be written as line protocol")
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_tag(text: str) -> str:
    """Escape a tag key or value (or a field key); refuse what line protocol 1.x cannot carry."""
    if not text:
        raise ValueError("tag keys and values cannot be empty")
    if "\n" in text or "\r" in text:
        raise ValueError(f"tag value {text[:40]!r} contains a line break")
    if text.endswith("\\"):
        raise ValueError(f"tag value {text[:40]!r} ends with a backslash")
    return text.translate(_TAG_ESCAPES)


def format_string(text: str) -> str:
    # Two str.replace calls (backslashes first) rather than str.translate with a mapping: the same result, ten
    # times faster on a score's 4 kB JSON payload (translate with str values goes character by character).
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_float(value: float) -> str:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be stored in InfluxDB")
    return repr(value)


def format_field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return format_string(value)
    raise TypeError(f"unsupported field value {value!r}")


def encode_point(measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts_ms: int) -> str:
    """One point; tags sorted by key (what InfluxDB stores anyway, and the fastest form for it to parse)."""
    if not fields:
        raise ValueError("a point needs at least one field")
    head = escape_measurement(measurement)
    if tags:
        head += "," + ",".join(f"{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()))
    body = ",".join(f"{escape_tag(k)}={format_field(v)}" for k, v in fields.items())
    return f"{head} {body} {int(ts_ms)}"


class ReadingEncoder:
    """Readings → ``vitals`` points (tags ``patient_id``, ``vital`` and, for a charted reading only, ``source``;
    fields ``value``, ``quality``), fast. A monitor reading carries no ``source`` tag (absent = monitor), so its
    series is the one written before sources existed and a re-delivered monitor reading still overwrites its point.

    The escaped ``measurement,patient_id=…,vital=… value=`` prefix and the ``,quality="…" `` middle are
    cached, and each distinct time of a batch is converted once (a batch repeats each tick's time across beds and
    vitals), so encoding a reading is one float ``repr`` and a string join.
    """

    def __init__(self, measurement: str = "vitals", max_cache: int = 200_000) -> None:
        self.measurement = escape_measurement(measurement)
        self._prefix: dict[tuple[str, str, str], str] = {}
        self._quality: dict[str, str] = {}
        self._max_cache = max_cache

    def _prefix_for(self, patient_id: str, vital: str, source: str) -> str:
        if len(self._prefix) >= self._max_cache:
            self._prefix.clear()
        tag = "" if source == "monitor" else f",source={escape_tag(source)}"  # tags in key order
        prefix = f"{self.measurement},patient_id={escape_tag(patient_id)}{tag},vital={escape_tag(vital)} value="
        self._prefix[(patient_id, vital, source)] = prefix
        return prefix

    def _quality_for(self, quality: str) -> str:
        if len(self._quality) >= 1024:
            self._quality.clear()
        middle = ",quality=" + format_string(quality) + " "
        self._quality[quality] = middle
        return middle

    def encode_lines(self, readings: Iterable[ReadingLike]) -> list[str]:
        prefixes, qualities = self._prefix, self._quality
        epoch, ms = _EPOCH, _MS
        isfinite = math.isfinite
        stamps: dict[datetime, str] = {}  # ts → its milliseconds: a batch repeats its times (one per tick)
        lines: list[str] = []
        append = lines.append
        for r in readings:
            patient_id, vital, ts, value, quality, source = r.patient_id, r.vital, r.ts, r.value, r.quality, r.source
            prefix = prefixes.get((patient_id, vital, source)) or self._prefix_for(patient_id, vital, source)
            middle = qualities.get(quality) or self._quality_for(quality)
            value = float(value)
            if not isfinite(value):
                raise ValueError(f"reading value {value!r} for {patient_id}/{vital} cannot be stored")
            stamp = stamps.get(ts)
            if stamp is None:
                if ts.tzinfo is None:
                    raise ValueError("timestamps must be timezone-aware")
                stamp = str((ts - epoch) // ms)
                if type(ts.tzinfo) is timezone:  # fixed offset (UTC included): equal times are the same instant;
                    stamps[ts] = stamp  # in a zone with folds they need not be (PEP 495), so those are not cached
            append(f"{prefix}{value!r}{middle}{stamp}")
        return lines

    def encode(self, readings: Sequence[ReadingLike]) -> bytes:
        return "\n".join(self.encode_lines(readings)).encode()


# -- reference parser (tests, and naming the points InfluxDB reports as unparseable) ---------------


def _split_unescaped(text: str, sep: str, escapable: str, *, quotes: bool = False, limit: int = -1) -> list[str]:
    """Split on ``sep`` where it is not escaped (a backslash escapes the next char if it is in ``escapable``)
    and, with ``quotes``, not inside a double-quoted string field."""
    parts: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    in_quotes = False
    while i < n:
        ch = text[i]
        if in_quotes:
            current.append(ch)
            if ch == "\\" and i + 1 < n:
                current.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                in_quotes = False
        elif ch == "\\" and i + 1 < n and text[i + 1] in escapable:
            current.append(ch + text[i + 1])
            i += 2
            continue
        elif quotes and ch == '"' and i > 0 and text[i - 1] == "=":  # a string field value opens after `=`
            in_quotes = True
            current.append(ch)
        elif ch == sep and (limit < 0 or len(parts) < limit):
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str, chars: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in chars:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _parse_field(raw: str) -> FieldValue:
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        return _unescape(raw[1:-1], '"\\')
    if raw.endswith("i"):  # a signed 64-bit integer, as InfluxDB reads it (a longer one overflowed float(): a 500)
        value = int(raw[:-1])
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"integer {raw[:24]}… is outside the signed 64-bit range")
        return value
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False
    return float(raw)


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, FieldValue], int | None]:
    """Parse one line as written by this module: ``(measurement, tags, fields, timestamp)``."""
    key_and_rest = _split_unescaped(line, " ", ", =", limit=1)
    if len(key_and_rest) != 2:
        raise ValueError(f"cannot parse line {line[:80]!r}")
    key, rest = key_and_rest
    sections = _split_unescaped(rest, " ", ", =", quotes=True, limit=1)
    key_parts = _split_unescaped(key, ",", ", =")
    measurement = _unescape(key_parts[0], ", ")
    tags: dict[str, str] = {}
    for pair in key_parts[1:]:
        k, v = _split_unescaped(pair, "=", ", =", limit=1)
        name = _unescape(k, ", =")
        if name in tags:  # InfluxDB refuses the line ("duplicate tags"); a repeated field's last value wins
            raise ValueError(f"duplicate tag {name[:40]!r}")
        tags[name] = _unescape(v, ", =")
    fields: dict[str, FieldValue] = {}
    for pair in _split_unescaped(sections[0], ",", ", =", quotes=True):
        k, v = _split_unescaped(pair, "=", ", =", quotes=True, limit=1)
        fields[_unescape(k, ", =")] = _parse_field(v)
    ts = int(sections[1]) if len(sections) == 2 else None
    return measurement, tags, fields, ts


__all__ = [
    "ReadingEncoder", "ReadingLike", "encode_point", "escape_measurement", "escape_tag", "format_field",
    "format_float", "format_string", "parse_line",
]
