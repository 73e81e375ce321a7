"""The ``VitalStore`` protocol: raw readings, pushed-down 5-minute windows and scores.

Every adapter passes the one contract suite in ``tests/integration/test_store_contract.py``;
``windows`` after ``materialize_windows`` must equal ``models.windows.aggregate`` on the same
readings (same de-duplication: the last delivered copy of a (patient_id, vital, ts) wins).
Alerts and their outbox are transactional state and live in the SQLite alert store
(``app/alerts/store.py``) whichever VitalStore is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from app.domain import Reading, Score


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
        """Raw readings with ``start <= ts < end``: columns ``models.schema.READING_COLUMNS``, sorted by ts."""

    async def materialize_windows(self, start: datetime, end: datetime) -> int:
        """Aggregate raw readings of ``[start, end)`` in the store into stored 5-minute windows, all patients.

        Idempotent: re-running for the same range replaces those windows (late data is picked up).
        Returns the number of windows written.
        """

    async def windows(self, patient_ids: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        """Stored windows with ``start <= window start < end``; ``models.windows.WINDOW_COLUMNS``,
        dtypes as ``models.windows.normalise``, sorted by (patient_id, start), no carry-forward."""

    async def patient_ids(self) -> list[str]:
        """Every patient with at least one stored reading, sorted."""

    async def save_scores(self, scores: Sequence[Score]) -> None:
        """Persist scores; idempotent per (patient_id, window_end): a rerun replaces."""

    async def latest_scores(self) -> list[Score]:
        """The most recent score of every scored patient."""

    async def score_history(self, patient_id: str, start: datetime, end: datetime) -> list[Score]:
        """Scores of one patient with ``start <= window_end < end``, oldest first."""

    async def health(self) -> dict[str, Any]:
        """``{"store": name, "ok": bool, ...}``; adapters with a spool add ``"backlog"`` (readings pending)."""
