"""The ``VitalStore`` protocol: raw readings, pushed-down 5-minute windows and scores.

Every adapter passes the one contract suite in ``tests/integration/test_store_contract.py``;
``windows`` after ``materialize_windows`` must equal ``models.windows.aggregate`` on the same
readings (same de-duplication: the last delivered copy of a (patient_id, vital, ts, source) wins; a charted and a
monitor reading at one (patient_id, vital, ts) are both kept and both aggregated).
Alerts and their outbox are transactional state and live in the SQLite alert store
(``app/alerts/store.py``) whichever VitalStore is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from app.domain import Reading, Score
from models.windows import WINDOW

WINDOW_MS = int(WINDOW.total_seconds() * 1000)


@runtime_checkable
class VitalStore(Protocol):
    name: str

    async def open(self) -> None:
        """Connect / create schema. Idempotent."""

    async def close(self) -> None:
        """Flush anything pending and release resources."""

    async def write_readings(self, readings: Sequence[Reading]) -> None:
        """Store readings durably before returning (or spool them durably); idempotent per key."""

    async def readings(self, patient_ids: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        """Raw readings with ``start <= ts < end``: columns ``models.schema.SOURCED_READING_COLUMNS``, sorted by
        (ts, patient_id, vital), a monitor reading before a charted one at the same key."""

    async def materialize_windows(self, start: datetime, end: datetime) -> int:
        """Aggregate raw readings of ``[start, end)`` in the store into stored 5-minute windows, all patients.

        Idempotent: re-running for the same range replaces those windows (late data is picked up).
        Returns the number of windows written.
        """

    async def materialize_pending(self, end: datetime) -> list[datetime]:
        """Aggregate every window that received readings since it was last aggregated and starts before
        ``end``, and clear its mark; returns those window starts, oldest first.

        ``write_readings`` marks the windows it touches durably, with the readings, so which windows need
        (re-)aggregation survives a restart and is shared by every instance on the store: after
        ``materialize_pending(end)`` the stored windows before ``end`` equal the aggregation of every reading
        stored so far, whoever wrote it and whenever.
        """

    async def windows(self, patient_ids: Sequence[str] | None, start: datetime, end: datetime) -> pd.DataFrame:
        """Stored windows with ``start <= window start < end`` of the given patients (None: every patient, what the
        cycle reads); ``models.windows.WINDOW_COLUMNS``, dtypes as ``models.windows.normalise``, sorted by
        (patient_id, start), no carry-forward."""

    async def patient_ids(self) -> list[str]:
        """Every patient with at least one stored reading, sorted."""

    async def save_scores(self, scores: Sequence[Score]) -> None:
        """Persist scores; idempotent per (patient_id, window_end): a rerun replaces."""

    async def last_window_end(self) -> datetime | None:
        """The newest window end with a stored score (where a restarted scheduler resumes), or None."""

    async def latest_scores(self, not_after: datetime | None = None) -> list[Score]:
        """The most recent score of every scored patient; with ``not_after``, the most recent whose window end is at
        or before it (scores made while the clock ran ahead are not the latest: issue 21, H17)."""

    async def score_history(self, patient_id: str, start: datetime, end: datetime) -> list[Score]:
        """Scores of one patient with ``start <= window_end < end``, oldest first."""

    async def newest_reading_after(self, limit: datetime) -> datetime | None:
        """The newest stored reading's timestamp when it is later than ``limit``, else None: readings accepted while the
        service's clock ran ahead (issue 21, H17), which windows would otherwise take for the future's vitals."""

    async def health(self) -> dict[str, Any]:
        """``{"store": name, "ok": bool, ...}``; adapters with a spool add ``"backlog"`` (readings pending)."""


def window_runs(starts_ms: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted window starts (epoch ms) as ``[lo, hi)`` ranges of consecutive windows."""
    runs: list[tuple[int, int]] = []
    for ms in starts_ms:
        if runs and runs[-1][1] == ms:
            runs[-1] = (runs[-1][0], ms + WINDOW_MS)
        else:
            runs.append((ms, ms + WINDOW_MS))
    return runs
