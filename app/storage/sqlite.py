"""The embedded default store: one SQLite file in WAL mode, ``synchronous=FULL`` (durable on return).

Readings are keyed on (ts_ms, patient_id, vital, source) and clustered by time, so the cycle's range scan
over the newest minutes reads contiguous pages. Re-sending a reading replaces it, so ingest is
idempotent and the last delivered copy of a source wins, as with an InfluxDB point; a charted and a monitor value
at the same patient, vital and time are both kept. ``materialize_windows``
pushes the 5-minute aggregation down into SQL and stores the result in ``windows``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from app.domain import Reading, Score
from app.errors import StoreUnavailableError
from app.storage.base import WINDOW_MS, window_runs
from app.storage.codec import from_ms, score_from_json, score_to_json, to_ms
from app.storage.migrations import Schema
from app.storage.sqlite_db import SqliteDatabase
from models.schema import SOURCED_READING_COLUMNS
from models.windows import LAST_VITALS, WINDOW_COLUMNS, empty_windows, normalise

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    patient_id TEXT NOT NULL, vital TEXT NOT NULL, ts_ms INTEGER NOT NULL,
    value REAL NOT NULL, quality TEXT NOT NULL,
    PRIMARY KEY (ts_ms, patient_id, vital)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS patients (patient_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS windows (
    patient_id TEXT NOT NULL, start_ms INTEGER NOT NULL,
    hr_mean REAL, hr_std REAL, hr_count INTEGER NOT NULL, spo2_mean REAL, rr_mean REAL,
    sbp REAL, dbp REAL, temp REAL, acvpu REAL, o2 REAL,
    PRIMARY KEY (patient_id, start_ms)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS windows_start ON windows (start_ms);
CREATE TABLE IF NOT EXISTS pending_windows (start_ms INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS scores (
    patient_id TEXT NOT NULL, window_end_ms INTEGER NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (patient_id, window_end_ms)) WITHOUT ROWID;
"""
#: Step 2: the reading's source (``models.schema.SOURCES``) joins its key. SQLite cannot alter a primary key, so the
#: table is rebuilt; readings stored before sources existed are the monitor's.
_SOURCE_STEP = """
CREATE TABLE readings_sourced (
    patient_id TEXT NOT NULL, vital TEXT NOT NULL, ts_ms INTEGER NOT NULL,
    value REAL NOT NULL, quality TEXT NOT NULL, source TEXT NOT NULL DEFAULT 'monitor',
    PRIMARY KEY (ts_ms, patient_id, vital, source)) WITHOUT ROWID;
INSERT INTO readings_sourced (patient_id, vital, ts_ms, value, quality)
    SELECT patient_id, vital, ts_ms, value, quality FROM readings;
DROP TABLE readings;
ALTER TABLE readings_sourced RENAME TO readings;
"""
#: Versioned (``app/storage/migrations.py``): append steps, never edit one.
SCHEMA = Schema("readings", (_SCHEMA, _SOURCE_STEP))

# One pass: the sum of squares is taken about 100 bpm (a fixed shift keeps the subtraction in
# var = (Σd² − (Σd)²/n)/(n − 1) well conditioned for heart rates), then hr_std is finished in Python.
_AGGREGATE_SQL = f"""
SELECT patient_id, (ts_ms / {WINDOW_MS}) * {WINDOW_MS} AS start_ms,
    AVG(CASE WHEN vital = 'hr' THEN value END) AS hr_mean,
    COUNT(CASE WHEN vital = 'hr' THEN 1 END) AS hr_count,
    AVG(CASE WHEN vital = 'spo2' THEN value END) AS spo2_mean,
    AVG(CASE WHEN vital = 'rr' THEN value END) AS rr_mean,
    SUM(CASE WHEN vital = 'hr' THEN value - 100.0 END) AS hr_d,
    SUM(CASE WHEN vital = 'hr' THEN (value - 100.0) * (value - 100.0) END) AS hr_dd
FROM readings WHERE ts_ms >= :lo AND ts_ms < :hi AND quality = 'ok'
GROUP BY patient_id, start_ms
"""


def _sample_std(n: int, d: float | None, dd: float | None) -> float | None:
    if n < 2 or d is None or dd is None:
        return None
    return (max(dd - d * d / n, 0.0) / (n - 1)) ** 0.5


#: The window's last value of a last-value vital: the last charted one if the window holds any, else the last
#: monitor one (``models.windows.aggregate``).
_LAST_SQL = f"""
SELECT patient_id, start_ms, vital, value FROM (
    SELECT patient_id, vital, value, (ts_ms / {WINDOW_MS}) * {WINDOW_MS} AS start_ms,
        ROW_NUMBER() OVER (PARTITION BY patient_id, vital, ts_ms / {WINDOW_MS}
                           ORDER BY source = 'charted' DESC, ts_ms DESC) AS rn
    FROM readings
    WHERE ts_ms >= :lo AND ts_ms < :hi AND quality = 'ok' AND vital IN ({", ".join(f"'{v}'" for v in LAST_VITALS)})
) WHERE rn = 1
"""


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _materialize(conn: sqlite3.Connection, lo: int, hi: int) -> int:
    """Replace the stored windows of ``[lo, hi)`` with the aggregation of their raw readings (inside a transaction)."""
    params = {"lo": lo, "hi": hi}
    stats = {
        (p, s): [mean, _sample_std(n, d, dd), n, spo2, rr]
        for p, s, mean, n, spo2, rr, d, dd in conn.execute(_AGGREGATE_SQL, params)
    }
    last: dict[tuple[str, int], dict[str, float]] = {}
    for p, s, vital, value in conn.execute(_LAST_SQL, params):
        last.setdefault((p, s), {})[vital] = value
    rows = [
        (p, s, *stats[(p, s)], *(last.get((p, s), {}).get(v) for v in LAST_VITALS))
        for p, s in sorted(stats)
    ]
    conn.execute("DELETE FROM windows WHERE start_ms >= ? AND start_ms < ?", (lo, hi))
    conn.executemany(f"INSERT INTO windows VALUES ({_placeholders(len(WINDOW_COLUMNS))})", rows)
    return len(rows)


class SqliteStore:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db = SqliteDatabase(self.path, SCHEMA)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db.run(fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db.run_read(fn)

    async def open(self) -> None:
        self._db.open()

    async def close(self) -> None:
        self._db.close()

    # -- readings ---------------------------------------------------------------------------------
    async def write_readings(self, readings: Sequence[Reading]) -> None:
        from datetime import timezone  # a fixed offset, UTC included

        # Each distinct time converted once (a batch repeats each tick's time across beds and vitals), when every
        # time has a fixed offset: in a zone with folds, equal times need not be the same instant (PEP 495).
        times = {r.ts for r in readings}
        if all(type(ts.tzinfo) is timezone for ts in times):
            ms_of = {ts: to_ms(ts) for ts in times}
            rows = [(r.patient_id, r.vital, ms_of[r.ts], float(r.value), r.quality, r.source) for r in readings]
            stamps = set(ms_of.values())
        else:
            rows = [(r.patient_id, r.vital, to_ms(r.ts), float(r.value), r.quality, r.source) for r in readings]
            stamps = {row[2] for row in rows}
        patients = sorted({(r.patient_id,) for r in readings})
        pending = sorted({(ms // WINDOW_MS * WINDOW_MS,) for ms in stamps})

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT OR REPLACE INTO readings (patient_id, vital, ts_ms, value, quality, source) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.executemany("INSERT OR IGNORE INTO patients VALUES (?)", patients)
            conn.executemany("INSERT OR IGNORE INTO pending_windows VALUES (?)", pending)

        if rows:
            await self._run(lambda c: SqliteDatabase.transaction(c, write))

    async def readings(self, patient_ids: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        ids = list(patient_ids)

        def read(conn: sqlite3.Connection) -> list[tuple]:
            if not ids:
                return []
            sql = (
                "SELECT patient_id, ts_ms, vital, value, quality, source FROM readings "
                f"WHERE patient_id IN ({_placeholders(len(ids))}) AND ts_ms >= ? AND ts_ms < ? "
                "ORDER BY ts_ms, patient_id, vital, source DESC"
            )
            return conn.execute(sql, [*ids, to_ms(start), to_ms(end)]).fetchall()

        rows = await self._read(read)
        frame = pd.DataFrame(rows, columns=list(SOURCED_READING_COLUMNS))
        frame["ts"] = pd.to_datetime(frame["ts"].astype("int64"), unit="ms", utc=True).astype("datetime64[ns, UTC]")
        frame["value"] = frame["value"].astype("float64")
        return frame

    async def patient_ids(self) -> list[str]:
        rows = await self._read(lambda c: c.execute("SELECT patient_id FROM patients ORDER BY patient_id").fetchall())
        return [r[0] for r in rows]

    # -- windows ----------------------------------------------------------------------------------
    async def materialize_windows(self, start: datetime, end: datetime) -> int:
        lo = to_ms(start) // WINDOW_MS * WINDOW_MS
        hi = -(-to_ms(end) // WINDOW_MS) * WINDOW_MS
        return await self._run(lambda c: SqliteDatabase.transaction(c, lambda t: _materialize(t, lo, hi)))

    async def materialize_pending(self, end: datetime) -> list[datetime]:
        hi = to_ms(end) // WINDOW_MS * WINDOW_MS

        def materialize(conn: sqlite3.Connection) -> list[int]:
            starts = [r[0] for r in conn.execute(
                "SELECT start_ms FROM pending_windows WHERE start_ms < ? ORDER BY start_ms", (hi,))]
            for lo, run_hi in window_runs(starts):
                _materialize(conn, lo, run_hi)
            conn.execute("DELETE FROM pending_windows WHERE start_ms < ?", (hi,))
            return starts

        # One transaction: a reading written meanwhile waits for the lock, so its mark is never lost.
        starts = await self._run(lambda c: SqliteDatabase.transaction(c, materialize))
        return [from_ms(ms) for ms in starts]

    async def windows(self, patient_ids: Sequence[str] | None, start: datetime, end: datetime) -> pd.DataFrame:
        ids = None if patient_ids is None else list(patient_ids)
        columns = ", ".join("w." + c if c != "start" else "w.start_ms" for c in WINDOW_COLUMNS)

        def read(conn: sqlite3.Connection) -> list[tuple]:
            if ids is None:  # every patient: a range scan of the start_ms index
                sql = (f"SELECT {columns} FROM windows w WHERE w.start_ms >= ? AND w.start_ms < ? "
                       "ORDER BY w.patient_id, w.start_ms")
                return conn.execute(sql, (to_ms(start), to_ms(end))).fetchall()
            if not ids:
                return []
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (patient_id TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM wanted")
            conn.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", [(i,) for i in ids])
            sql = (
                f"SELECT {columns} "
                "FROM windows w JOIN wanted USING (patient_id) WHERE w.start_ms >= ? AND w.start_ms < ? "
                "ORDER BY w.patient_id, w.start_ms"
            )
            return conn.execute(sql, (to_ms(start), to_ms(end))).fetchall()

        def frame_of(rows: list[tuple]) -> pd.DataFrame:
            if not rows:
                return empty_windows()
            frame = pd.DataFrame(rows, columns=list(WINDOW_COLUMNS))
            frame["start"] = pd.to_datetime(frame["start"].astype("int64"), unit="ms", utc=True)
            return normalise(frame)

        # The frame is built in the worker thread too: the event loop only awaits.
        return await self._read(lambda c: frame_of(read(c)))

    # -- scores -----------------------------------------------------------------------------------
    async def save_scores(self, scores: Sequence[Score]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            rows = [(s.patient_id, to_ms(s.window_end), score_to_json(s)) for s in scores]
            conn.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?)", rows)

        if scores:
            await self._run(lambda c: SqliteDatabase.transaction(c, write))

    async def last_window_end(self) -> datetime | None:
        row = await self._read(lambda c: c.execute("SELECT MAX(window_end_ms) FROM scores").fetchone())
        return None if row[0] is None else from_ms(row[0])

    async def latest_scores(self, not_after: datetime | None = None) -> list[Score]:
        sql = (
            "SELECT s.payload FROM scores s JOIN (SELECT patient_id, MAX(window_end_ms) AS m FROM scores "
            "WHERE window_end_ms <= ? GROUP BY patient_id) x ON s.patient_id = x.patient_id AND s.window_end_ms = x.m "
            "ORDER BY s.patient_id"
        )
        bound = to_ms(not_after) if not_after is not None else 2**62
        rows = await self._read(lambda c: c.execute(sql, (bound,)).fetchall())
        return [score_from_json(r[0]) for r in rows]

    async def score_history(self, patient_id: str, start: datetime, end: datetime) -> list[Score]:
        sql = (
            "SELECT payload FROM scores WHERE patient_id = ? AND window_end_ms >= ? AND window_end_ms < ? "
            "ORDER BY window_end_ms"
        )
        rows = await self._read(lambda c: c.execute(sql, (patient_id, to_ms(start), to_ms(end))).fetchall())
        return [score_from_json(r[0]) for r in rows]

    async def newest_reading_after(self, limit: datetime) -> datetime | None:
        # the readings' primary key starts with ts_ms: one index seek, however many readings
        row = await self._read(lambda c: c.execute("SELECT MAX(ts_ms) FROM readings WHERE ts_ms > ?",
                                                   (to_ms(limit),)).fetchone())
        return from_ms(row[0]) if row and row[0] is not None else None

    async def health(self) -> dict[str, Any]:
        try:
            await self._read(lambda c: c.execute("SELECT 1").fetchone())
        except StoreUnavailableError as exc:
            return {"store": self.name, "ok": False, "error": str(exc), "backlog": 0}
        if self._db.write_error is not None:
            return {"store": self.name, "ok": False, "error": self._db.write_error, "backlog": 0}
        return {"store": self.name, "ok": True, "backlog": 0, "path": str(self.path)}
