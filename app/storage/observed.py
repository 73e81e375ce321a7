"""A ``VitalStore`` that tells a listener what it stores: the latest-score view's feed.

``ObservedStore`` wraps any adapter and forwards every call to it. After ``open`` it hands the listener the
store's state (every patient, every latest score), so a view rebuilt at start-up equals the store, restarts
included; after ``write_readings`` the patients written, after ``save_scores`` the scores saved. Whoever calls
the store (the cycle, ingest, replay, tests) keeps the view current without knowing it exists.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from app.domain import Reading, Score
from app.errors import StoreUnavailableError
from app.storage.base import VitalStore

logger = logging.getLogger(__name__)


class StoreListener(Protocol):
    def reset(self, patient_ids: Iterable[str], scores: Iterable[Score]) -> None:
        """The store's whole state (called after ``open``)."""

    def patients_seen(self, patient_ids: Iterable[str]) -> None:
        """Patients with readings just written (known ones included)."""

    def scores_saved(self, scores: Sequence[Score]) -> None:
        """Scores just persisted (any window end: a past one must not replace a newer latest)."""

    def not_after(self) -> datetime | None:
        """The latest window end a latest score may have now (None: any)."""


class ObservedStore:
    """Forwards to ``inner``; reports opens, reading writes and score saves to ``listener``."""

    def __init__(self, inner: VitalStore, listener: StoreListener) -> None:
        self.inner = inner
        self.listener = listener
        self.name = inner.name

    def __getattr__(self, attr: str) -> Any:  # adapter extras (backlog, rejected, path, ...)
        return getattr(self.inner, attr)

    async def open(self) -> None:
        """Open the store and hand the listener its state; a store unreachable now (InfluxDB down: the adapter
        spools) is not fatal, ``load`` is tried again by whoever needs the state."""
        await self.inner.open()
        try:
            await self.load()
        except StoreUnavailableError as exc:
            logger.warning("store state not loaded at open, retried on first read: %s", exc)

    async def load(self) -> None:
        """Hand the listener every patient and every latest score the store holds."""
        ids = await self.inner.patient_ids()
        self.listener.reset(ids, await self.inner.latest_scores(self.listener.not_after()))

    async def close(self) -> None:
        await self.inner.close()

    async def write_readings(self, readings: Sequence[Reading]) -> None:
        await self.inner.write_readings(readings)
        if readings:
            self.listener.patients_seen({r.patient_id for r in readings})

    async def save_scores(self, scores: Sequence[Score]) -> None:
        await self.inner.save_scores(scores)
        if scores:
            self.listener.scores_saved(scores)

    async def readings(self, patient_ids: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        return await self.inner.readings(patient_ids, start, end)

    async def materialize_windows(self, start: datetime, end: datetime) -> int:
        return await self.inner.materialize_windows(start, end)

    async def materialize_pending(self, end: datetime) -> list[datetime]:
        return await self.inner.materialize_pending(end)

    async def windows(self, patient_ids: Sequence[str] | None, start: datetime, end: datetime) -> pd.DataFrame:
        return await self.inner.windows(patient_ids, start, end)

    async def patient_ids(self) -> list[str]:
        return await self.inner.patient_ids()

    async def last_window_end(self) -> datetime | None:
        return await self.inner.last_window_end()

    async def latest_scores(self, not_after: datetime | None = None) -> list[Score]:
        return await self.inner.latest_scores(not_after)

    async def score_history(self, patient_id: str, start: datetime, end: datetime) -> list[Score]:
        return await self.inner.score_history(patient_id, start, end)

    async def newest_reading_after(self, limit: datetime) -> datetime | None:
        return await self.inner.newest_reading_after(limit)

    async def health(self) -> dict[str, Any]:
        return await self.inner.health()
