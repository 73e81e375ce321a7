"""Which InfluxDB database this service writes to: a marker point in the database, a record of it beside the spool.

A database dropped under the service comes back empty on the store's next write (``CREATE DATABASE`` before a
replay), and one swapped or restored from elsewhere answers every query too; without a marker ``/healthz`` could not
tell either from the database the history was written to (issue 21, hazard H25). So the database carries a marker
(measurement ``wardtwin_store``, tag ``id`` and field ``store_id``, a random id, and ``created_at``) and the service
keeps the same id durably (``Spool``'s file: see ``app.storage.spool``). ``judge`` compares them; only an operator's
``wardtwin store accept-database`` clears a mismatch. Not caught: a restore of this service's own backup (its marker
inside), which loses what was written after the backup.

Pure: no I/O here, so the comparison is tested on its own (``tests/unit/test_store_identity.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Final

from models.line_protocol import encode_point

MARKER_MEASUREMENT: Final[str] = "wardtwin_store"
#: Every marker in the database, one row per id: a fixed string, no user text. Usually one; two instances marking a
#: new database at once leave two, and each is ok while its own is there (InfluxDB has no compare-and-set).
MARKER_Q: Final[str] = f"SELECT last(store_id), last(created_at) FROM {MARKER_MEASUREMENT} GROUP BY id"
#: How often a verified marker is written again and its ``seen_at`` recorded: a marker older than a finite retention
#: policy would expire and look like a recreated database; the record's ``seen_at`` dates the last good check.
REFRESH_S: Final[float] = 600.0


class Verdict(Enum):
    NEW = "new"            # no marker, no record: a first start on this database (write one, record it)
    ADOPT = "adopt"        # a marker, no record: a first start of this data directory on a marked database
    OK = "ok"              # the recorded marker is among the database's
    MISSING = "missing"    # a record, no marker: the database was dropped and recreated (or emptied)
    REPLACED = "replaced"  # a record and another marker: a different database (swapped, restored from elsewhere)


@dataclass(frozen=True)
class Identity:
    """A marker as the database holds it, or the service's record of one (``seen_at``: last verified, records only)."""

    store_id: str
    created_at: str
    seen_at: str | None = None

    @classmethod
    def fresh(cls, now: datetime) -> Identity:
        stamp = iso(now)
        return cls(secrets.token_hex(8), stamp, stamp)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def judge(record: Identity | None, markers: Sequence[Identity]) -> Verdict:
    """Ok while the recorded marker is among the database's: the history written under it is there."""
    if record is None:
        return Verdict.ADOPT if markers else Verdict.NEW
    if not markers:
        return Verdict.MISSING
    return Verdict.OK if any(m.store_id == record.store_id for m in markers) else Verdict.REPLACED


def chosen(markers: Sequence[Identity]) -> Identity:
    """The marker a data directory without a record adopts: the oldest (ties by id), the same for every instance."""
    return min(markers, key=lambda m: (m.created_at, m.store_id))


def problem(verdict: Verdict, database: str, record: Identity, markers: Sequence[Identity]) -> str:
    """The health ``error`` for ``MISSING``/``REPLACED``: what happened, since when, what to do."""
    seen = record.seen_at or record.created_at
    cause = ("marker missing" if verdict is Verdict.MISSING
             else "marker " + ", ".join(f"{m.store_id} created {m.created_at}" for m in markers)
             + f", expected {record.store_id}")
    return (f"the InfluxDB database {database!r} was recreated or replaced ({cause}); readings written before "
            f"{seen} (this store's marker last seen) may be gone; check, then adopt it with "
            "`wardtwin store accept-database`")


def marker_line(identity: Identity, at_ms: int) -> bytes:
    """One marker point. Tagged with its id, so two markers written in the same millisecond are two series (the
    earliest still wins, the same for every reader) rather than one point the later write overwrote."""
    fields = {"store_id": identity.store_id, "created_at": identity.created_at}
    return encode_point(MARKER_MEASUREMENT, {"id": identity.store_id}, fields, at_ms).encode()
