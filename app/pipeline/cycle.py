"""The five-minute cycle: a pure function of a window end (APScheduler only decides when to call it).

For window end ``W``: aggregate every window before ``W`` that received readings since it was last
aggregated (the store marks them durably as readings arrive, so late and backfilled readings are
picked up after a restart or by another instance), read the windows the features need, carry last
readings forward, build features with the one feature module, score every patient seen within
``stale_after`` with the twin, put NEWS2 beside each score (and, in shadow, the challenger's risk,
flagging large disagreements), persist the scores (idempotent per patient and window end) and hand them to
``on_scores`` (the service wires the alert engine's ``evaluate``, which drives alert state only for the newest
window end so far: a cycle for a past window end writes its scores and nothing else). The result depends only on
the stored readings and ``W`` (and ``scored_at``).

:meth:`Cycle.score_grid` is a fast path of the pure reference ``models.scoring.score_ward``: the ward's newest
windows kept as dense arrays (``app.pipeline.ward_grid``), moved on each cycle with only the windows the store
re-aggregated, and the features of the newest window of every patient computed at once
(``models.features.build_newest``), so a cycle costs time linear in patients and flat in history length. A property
test (``tests/unit/test_cycle_grid.py``) holds the two equal byte for byte.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from app.pipeline.ward_grid import SPAN, WardGrid, as_frame, fresh, may_meet_criteria
from app.storage.base import VitalStore
from models import features, news2
from models.challenger import Challenger
from models.scoring import DISAGREEMENT, STALE_AFTER, Score, ongoing_events, score_rows
from models.twin import Twin
from models.windows import MAX_CARRY_FORWARD, WINDOW, align, carry_forward

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CycleResult:
    window_end: datetime
    patients: int
    scored: int
    alerts_raised: int
    took_ms: float
    #: Whether this cycle drove alert state (False: a past window end, whose scores were written and nothing else).
    alerts_evaluated: bool = True
    #: Milliseconds per stage: aggregate (windows re-aggregated in the store), read, score, save, alerts.
    stages: dict[str, float] = field(default_factory=dict)
    #: The patients scored (a fleet instance counts them per bucket: ``app.fleet.runner``).
    scored_ids: tuple[str, ...] = field(default=(), repr=False)
    #: A fleet instance's account of the run (``app.fleet.runner``): None on a single instance.
    fleet: dict[str, Any] | None = None


@dataclass(frozen=True)
class Scope:
    """The patients one cycle scores, when not all (a fleet instance scores its leased buckets, ``app.fleet``):
    ``select`` picks them from the store's patient ids; ``key`` names the set, so the kept grid is reused only for
    the same one."""

    key: Hashable
    select: Callable[[Sequence[str]], list[str]]


#: What the cycle hands its scores to (the alert engine's ``evaluate``): the alerts raised, or None when the
#: window end did not drive alert state (a past window).
OnScores = Callable[[Sequence[Score], datetime], Awaitable[Sequence[Any] | None]]


class Cycle:
    """Scores a ward for a window end. Runs are serialised (a manual trigger never interleaves with the
    scheduler's run); the CPU work runs in a worker thread so the event loop keeps answering meanwhile."""

    def __init__(self, store: VitalStore, twin: Twin, on_scores: OnScores | None = None, *,
                 stale_after: timedelta = STALE_AFTER, challenger: Challenger | None = None,
                 disagreement: float = DISAGREEMENT) -> None:
        self.store = store
        self.twin = twin
        self.on_scores = on_scores
        self.challenger = challenger
        self.disagreement = disagreement
        self.stale_after = stale_after
        self._lock = asyncio.Lock()
        #: The ward's newest windows, moved on by each cycle for the newest window end (None until the first).
        self._grid: WardGrid | None = None
        self._grid_key: Hashable = None  # the Scope key of the kept grid (None: every patient)
        #: Aggregates the marked windows before a window end and returns their starts: the store's own by default;
        #: a fleet instance's also publishes them to the others and returns theirs (``app.fleet.leases.Claims``).
        self.aggregate: Callable[[datetime], Awaitable[list[datetime]]] = store.materialize_pending

    def grid_bytes(self) -> int:
        """Memory held by the kept ward grid's arrays."""
        return 0 if self._grid is None else sum(a.nbytes for a in self._grid.cols.values())

    async def last_window_end(self) -> datetime | None:
        """The newest window end scored so far (durable: read from the store)."""
        return await self.store.last_window_end()

    async def grid(self, patient_ids: Sequence[str], window_end: datetime, history: timedelta) -> pd.DataFrame:
        """Carried-forward windows of ``[window_end - history, window_end)`` for the given patients."""
        start = window_end - history
        stored = await self.store.windows(patient_ids, start - MAX_CARRY_FORWARD, window_end)
        return carry_forward(stored, start, window_end)

    def score_grid(self, grid: WardGrid, window_end: datetime, scored_at: datetime) -> list[Score]:
        """``models.scoring.score_ward`` on the dense grid: the same scores, byte for byte (pure CPU work)."""
        carried = grid.carried()
        if not grid.ids:
            return []
        keep = np.flatnonzero(fresh(carried, window_end, self.stale_after))
        ids = np.asarray(grid.ids, dtype=object)
        keep = keep[np.argsort(ids[keep], kind="stable")]
        if not len(keep):
            return []
        if len(keep) == len(ids) and (keep[1:] > keep[:-1]).all():
            scored = carried  # every patient fresh, already in id order: no copy
        else:
            scored = {c: a[keep] for c, a in carried.items()}
        newest = features.build_newest(scored)
        latest = pd.DataFrame({"patient_id": ids[keep], "window_end": pd.Timestamp(window_end),
                               **{name: newest[name] for name in features.FEATURE_NAMES}})
        last_rows = pd.DataFrame({c: carried[c][keep, -1] for c in carried})
        last_rows.insert(0, "patient_id", ids[keep])
        candidates = keep[may_meet_criteria(scored)]
        deteriorating = (ongoing_events(as_frame(carried, grid.ids, candidates, window_end), window_end)
                         if len(candidates) else {})
        return score_rows(latest, news2.summaries(last_rows), deteriorating, self.twin, scored_at,
                          challenger=self.challenger, disagreement=self.disagreement)

    async def _grid_for(self, window_end: datetime, pending: list[datetime],
                        scope: Scope | None = None, now: datetime | None = None) -> tuple[WardGrid, list[str]]:
        """The ward grid ending at ``window_end`` and the patients it is for (the store's, or those ``scope``
        selects): the kept grid moved on, reading back only the windows the store (re-)aggregated since, or, for a
        first or past window end or another scope, one read whole from the store. A kept grid ending more than one
        window past ``now`` (built while the clock ran ahead) is replaced by this one, so the cycles after the
        clock's correction move a grid on again instead of each reading its span whole (issue 21, H17)."""
        key = None if scope is None else scope.key
        kept = self._grid if key == self._grid_key else None
        if kept is not None and now is not None and kept.end > pd.Timestamp(now) + WINDOW:
            kept = self._grid = None
        end = pd.Timestamp(window_end)
        if kept is not None and kept.end <= end < kept.end + SPAN * WINDOW:
            grid = kept
            changed = [pd.Timestamp(p) for p in pending if pd.Timestamp(p) >= end - SPAN * WINDOW]
            lo = min([grid.end, *changed])
        else:
            grid = WardGrid(window_end)
            lo = grid.start
            if kept is None or end > kept.end:
                self._grid, self._grid_key = grid, key
            elif pending:  # a past window end is scored from a grid of its own; the kept one stays, unless this
                self._grid = None  # cycle took re-aggregation marks it would have read (H16): then read whole next
        ids = await self.store.patient_ids()
        if scope is not None:
            ids = scope.select(ids)
        changed_windows = await self.store.windows(None if scope is None else ids, lo.to_pydatetime(), window_end)

        def move() -> None:  # array work (a whole span at a restart): off the event loop
            grid.advance(window_end)
            grid.replace(changed_windows, lo, window_end)
            grid.prune()

        await asyncio.to_thread(move)
        return grid, ids

    async def run(self, window_end: datetime, scored_at: datetime | None = None,
                  scope: Scope | None = None) -> CycleResult:
        """Aggregate the windows that received readings (late and backfilled ones included: the store keeps
        their marks), score every fresh patient at ``window_end`` (of ``scope``: all by default), persist, apply
        the alert rules."""
        async with self._lock:
            started = time.perf_counter()
            stages: dict[str, float] = {}

            def lap(stage: str) -> None:
                stages[stage] = round((time.perf_counter() - started) * 1000 - sum(stages.values()), 1)

            window_end = align(window_end).to_pydatetime()
            pending = await self.aggregate(window_end)
            lap("aggregate")
            try:
                grid, ids = await self._grid_for(window_end, pending, scope, scored_at)
            except BaseException:
                self._grid = None  # half-moved: the next cycle reads the span whole
                raise
            lap("read")
            scores = await asyncio.to_thread(self.score_grid, grid, window_end, scored_at or window_end)
            lap("score")
            await self.store.save_scores(scores)
            lap("save")
            raised = await self.on_scores(scores, window_end) if self.on_scores is not None else []
            lap("alerts")
            took_ms = (time.perf_counter() - started) * 1000
        logger.info("cycle window_end=%s patients=%d scored=%d alerts=%d took_ms=%.0f stages=%s",
                    window_end.isoformat(), len(ids), len(scores), len(raised or ()), took_ms, stages)
        return CycleResult(window_end, len(ids), len(scores), len(raised or ()), took_ms, raised is not None, stages,
                           tuple(s.patient_id for s in scores))
