"""The reading and window schema shared by the service, the models and the simulator.

A *reading* is one device or charted observation: ``patient_id, ts, vital, value, quality, source``.
As a DataFrame (the cohort files, ``models.windows``) the columns are ``READING_COLUMNS`` with
``ts`` as ``datetime64[ns, UTC]``, optionally followed by ``source`` (``SOURCE_COLUMN``; absent: every reading is
a monitor's). The stores answer ``SOURCED_READING_COLUMNS``.

Codes
-----
- ``acvpu``: 0 = Alert, 1 = new Confusion, 2 = Voice, 3 = Pain, 4 = Unresponsive.
- ``o2``: supplemental oxygen flow in L/min; 0 means room air.
- ``quality``: ``"ok"`` for a clean reading; anything else (``"probe_off"``, ``"motion"``,
  ``"low_perfusion"``, ...) is a device's artefact flag: stored, never scored.
- ``source``: ``"monitor"`` (a bedside device's stream, the default) or ``"charted"`` (a nurse's observation
  set, ``POST /v1/observations``). Part of a reading's identity: a charted and a monitor value of one patient,
  vital and time are both kept. NEWS2 escalation is defined on charted sets (RCP 2017); monitor data informs the
  twin and may prompt "observations due", never stands in for a charted set.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final, Literal

Vital = Literal["hr", "spo2", "rr", "sbp", "dbp", "temp", "acvpu", "o2"]
VITALS: Final[tuple[str, ...]] = ("hr", "spo2", "rr", "sbp", "dbp", "temp", "acvpu", "o2")

#: Physiologically possible range per vital (inclusive). Outside it a reading is rejected.
PLAUSIBLE_RANGES: Final[dict[str, tuple[float, float]]] = {
    "hr": (20.0, 300.0),
    "spo2": (50.0, 100.0),
    "rr": (2.0, 80.0),
    "sbp": (40.0, 300.0),
    "dbp": (15.0, 200.0),
    "temp": (25.0, 45.0),
    "acvpu": (0.0, 4.0),
    "o2": (0.0, 60.0),
}

VITAL_NAMES: Final[dict[str, str]] = {
    "hr": "heart rate",
    "spo2": "SpO2",
    "rr": "respiratory rate",
    "sbp": "systolic blood pressure",
    "dbp": "diastolic blood pressure",
    "temp": "temperature",
    "acvpu": "consciousness (ACVPU)",
    "o2": "supplemental oxygen",
}

VITAL_UNITS: Final[dict[str, str]] = {
    "hr": "bpm", "spo2": "%", "rr": "/min", "sbp": "mmHg", "dbp": "mmHg", "temp": "°C", "acvpu": "", "o2": "L/min",
}

ACVPU_CODES: Final[tuple[str, ...]] = ("A", "C", "V", "P", "U")


def _charset_rule(chars: str, max_length: int) -> tuple[re.Pattern[str], str]:
    """``^[chars]{1,max_length}$`` and the same rule in words, for error messages."""
    return re.compile(rf"^[{chars}]{{1,{max_length}}}$"), f"1–{max_length} of [{chars}]"


#: A name that is safe wherever it travels (a URL path segment, an InfluxDB tag or a quoted InfluxQL
#: identifier, a log line): patient ids, InfluxDB database and retention-policy names.
NAME_PATTERN, NAME_RULE = _charset_rule("A-Za-z0-9_-", 64)
PATIENT_ID_PATTERN: Final[re.Pattern[str]] = NAME_PATTERN
PATIENT_ID_RULE: Final[str] = NAME_RULE

QUALITY_OK: Final[str] = "ok"
QUALITY_PATTERN, QUALITY_RULE = _charset_rule("a-z_", 32)

READING_COLUMNS: Final[tuple[str, ...]] = ("patient_id", "ts", "vital", "value", "quality")

Source = Literal["monitor", "charted"]
SOURCES: Final[tuple[str, ...]] = ("monitor", "charted")
SOURCE_MONITOR: Final[str] = "monitor"
SOURCE_CHARTED: Final[str] = "charted"
SOURCE_COLUMN: Final[str] = "source"
#: What a store's ``readings`` answers: the reading columns and each reading's source.
SOURCED_READING_COLUMNS: Final[tuple[str, ...]] = (*READING_COLUMNS, SOURCE_COLUMN)

#: The earliest reading time accepted (inclusive, UTC). A monitor reading dated before it (1970 from an unset
#: device clock, 1900 or 1677 from a bad default) is not plausible ward data; it is also far inside what
#: ``datetime64[ns]`` (1677-09-21 .. 2262-04-11), the stores and the cycle's look-back arithmetic can hold.
#: The same floor bounds the times a client may ask about (``POST /v1/cycle``, history and windows ranges).
EARLIEST_READING_AT: Final[datetime] = datetime(2000, 1, 1, tzinfo=UTC)

#: Deterioration thresholds (the event definition the twin predicts).
HR_HIGH_BPM: Final[float] = 120.0
HR_LOW_BPM: Final[float] = 50.0
SBP_LOW_MMHG: Final[float] = 90.0
SPO2_LOW_PCT: Final[float] = 90.0
TEMP_HIGH_C: Final[float] = 39.0

WINDOW_MINUTES: Final[int] = 5
