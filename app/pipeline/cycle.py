"""The five-minute cycle: a pure function of a window end (APScheduler only decides when to call it).

For window end ``W``: aggregate every window before ``W`` that received readings since it was last
aggregated (the store marks them durably as readings arrive, so late and backfilled readings are
picked up after a restart or by another instance), read the windows the features need, carry last
readings forward, build features with the one feature module, score every patient seen within
``stale_after`` with the twin, put NEWS2 beside each score (and, in shadow, the challenger's risk,
flagging large disagreements), persist the scores (idempotent per patient and window end) and apply
the alert rules, which only the cycle for the newest window end so far may do (``AlertEngine.evaluate``): a
cycle for a past window end (backfill, late data, a manual trigger) writes its scores and nothing else.
The result depends only on the stored readings and ``W`` (and ``scored_at``).

Two implementations of the scoring step give the same scores byte for byte
(``tests/unit/test_cycle_grid.py``): :meth:`Cycle.score_windows`, the pandas reference over a frame of stored
windows, and :meth:`Cycle.score_grid`, what ``run`` uses: the ward's newest windows kept as dense arrays
(``app.pipeline.ward_grid``), moved on each cycle with only the windows the store re-aggregated, and the
features of the newest window of every patient computed at once (``models.features.build_newest``), so a
cycle costs time linear in patients and flat in history length.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from app.alerts.engine import AlertEngine
from app.domain import Score
from app.pipeline.criteria import CRITERIA_MET, ongoing_events
from app.pipeline.ward_grid import SPAN, WardGrid, as_frame, fresh, may_meet_criteria
from app.storage.base import VitalStore
from models import features, news2
from models.challenger import Challenger
from models.twin import Twin, TwinScore
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


def news2_summary(row: pd.Series) -> dict:
    """NEWS2 of the window with the RCP 2017 chart-4 row for it: clinical response and monitoring frequency."""
    return _summary_of(news2.from_window(row))


def _summary_of(result: news2.News2) -> dict:
    response = result.clinical_response
    return {"total": result.total, "band": result.band, "points": dict(result.points), "partial": result.partial,
            "single_parameter_3": result.single_parameter_3, "urgency": response.urgency,
            "response": response.response, "monitoring": response.monitoring,
            "observe_within_min": response.observe_within_min}


def news2_summaries(rows: pd.DataFrame) -> list[dict]:
    """:func:`news2_summary` of many window rows at once (the points vectorised, each distinct result
    described once): the same dicts, in row order."""
    table = news2.from_windows(rows)
    points = table[[f"news2_{k}" for k in news2.PARAMETERS]].to_numpy(dtype="int64").tolist()
    described: dict[tuple, dict] = {}
    out = []
    for row_points, partial in zip(points, table["partial"].tolist(), strict=True):
        key = (*row_points, partial)
        summary = described.get(key)
        if summary is None:
            by_name = dict(zip(news2.PARAMETERS, row_points, strict=True))
            total = sum(row_points)
            summary = _summary_of(news2.News2(points=by_name, total=total, band=news2.band(total, by_name),
                                              partial=bool(partial)))
            described[key] = summary
        out.append({**summary, "points": dict(summary["points"])})
    return out


def to_score(twin_score: TwinScore, news2_of_window: dict, model_version: str, scored_at: datetime,
             challenger_risk: float | None = None, flags: tuple[str, ...] = ()) -> Score:
    """A stored score: the twin's, with the NEWS2 summary of its window (``news2_summary``) beside it."""
    return Score(
        patient_id=twin_score.patient_id,
        window_end=pd.Timestamp(twin_score.window_end).to_pydatetime(),
        risk=float(twin_score.risk),
        logit=float(twin_score.logit),
        intercept=float(twin_score.intercept),
        contributions=twin_score.contributions,  # already plain floats, None when not measured (Twin.score)
        model_version=model_version,
        news2=news2_of_window,
        challenger_risk=challenger_risk,
        flags=flags,
        scored_at=scored_at,
    )


class Cycle:
    """Scores a ward for a window end. Runs are serialised (a manual trigger never interleaves with the
    scheduler's run); the CPU work runs in a worker thread so the event loop keeps answering meanwhile."""

    def __init__(self, store: VitalStore, twin: Twin, alerts: AlertEngine | None, *,
                 stale_after: timedelta = timedelta(hours=1), challenger: Challenger | None = None,
                 disagreement: float = 0.3) -> None:
        self.store = store
        self.twin = twin
        self.alerts = alerts
        self.challenger = challenger
        self.disagreement = disagreement
        self.stale_after = stale_after
        self._lock = asyncio.Lock()
        #: The ward's newest windows, moved on by each cycle for the newest window end (None until the first).
        self._grid: WardGrid | None = None

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

    def score_windows(self, stored: pd.DataFrame, window_end: datetime, scored_at: datetime) -> list[Score]:
        """Score the last window of every patient in ``stored`` that has recent data (pure CPU work)."""
        grid = carry_forward(stored, window_end - features.HISTORY, window_end)
        if grid.empty:
            return []
        built = features.build(grid)
        latest = built[built["window_end"] == pd.Timestamp(window_end)]
        last_rows = grid[grid["start"] == pd.Timestamp(window_end) - WINDOW].set_index("patient_id")
        fresh = self._fresh(grid, window_end)
        latest = latest[latest["patient_id"].isin(fresh)].reset_index(drop=True)
        summaries = [news2_summary(last_rows.loc[pid]) for pid in latest["patient_id"]]
        return self._scores(latest, summaries, ongoing_events(grid, window_end), scored_at)

    def _scores(self, latest: pd.DataFrame, summaries: list[dict], deteriorating: dict[str, str],
                scored_at: datetime) -> list[Score]:
        """The twin's score of each feature row of ``latest``, with the challenger's risk in shadow, the flags
        (criteria met now, challenger disagreeing) and the NEWS2 summary of the row's window (same order)."""
        shadow = self.challenger.risk(latest) if self.challenger is not None and len(latest) else None
        scores = []
        for i, ts in enumerate(self.twin.score(latest)):
            challenger_risk = float(shadow[i]) if shadow is not None else None
            flags: list[str] = []
            if ts.patient_id in deteriorating:
                flags.append(f"{CRITERIA_MET}:{deteriorating[ts.patient_id]}")
            if challenger_risk is not None and abs(challenger_risk - ts.risk) >= self.disagreement:
                flags.append("challenger_disagrees")
            scores.append(to_score(ts, summaries[i], self.twin.version, scored_at, challenger_risk, tuple(flags)))
        return scores

    def _fresh(self, grid: pd.DataFrame, window_end: datetime) -> set[str]:
        has_data = grid[
            (grid["hr_count"] > 0) | grid[["spo2_mean", "rr_mean"]].notna().any(axis=1)
        ]
        last_seen = has_data.groupby("patient_id")["start"].max()
        return set(last_seen[last_seen >= pd.Timestamp(window_end) - self.stale_after].index)

    def score_grid(self, grid: WardGrid, window_end: datetime, scored_at: datetime) -> list[Score]:
        """:meth:`score_windows` on the dense grid: the same scores, byte for byte (pure CPU work)."""
        carried = grid.carried()
        if not grid.ids:
            return []
        keep = np.flatnonzero(fresh(carried, window_end, pd.Timedelta(self.stale_after)))
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
        return self._scores(latest, news2_summaries(last_rows), deteriorating, scored_at)

    async def _grid_for(self, window_end: datetime, pending: list[datetime]) -> tuple[WardGrid, int]:
        """The ward grid ending at ``window_end`` and how many patients the store knows: the kept grid moved on,
        reading back only the windows the store (re-)aggregated since, or, for a first or past window end, one
        read whole from the store."""
        kept = self._grid
        end = pd.Timestamp(window_end)
        if kept is not None and kept.end <= end < kept.end + SPAN * WINDOW:
            grid = kept
            changed = [pd.Timestamp(p) for p in pending if pd.Timestamp(p) >= end - SPAN * WINDOW]
            lo = min([grid.end, *changed])
        else:
            grid = WardGrid(window_end)
            lo = grid.start
            if kept is None or end > kept.end:
                self._grid = grid  # a past window end is scored from a grid of its own; the kept one stays
        ids = await self.store.patient_ids()
        changed_windows = await self.store.windows(None, lo.to_pydatetime(), window_end)

        def move() -> None:  # array work (a whole span at a restart): off the event loop
            grid.advance(window_end)
            grid.replace(changed_windows, lo, window_end)
            grid.prune()

        await asyncio.to_thread(move)
        return grid, len(ids)

    async def run(self, window_end: datetime, scored_at: datetime | None = None) -> CycleResult:
        """Aggregate the windows that received readings (late and backfilled ones included: the store keeps
        their marks), score every fresh patient at ``window_end``, persist, apply the alert rules."""
        async with self._lock:
            started = time.perf_counter()
            stages: dict[str, float] = {}

            def lap(stage: str) -> None:
                stages[stage] = round((time.perf_counter() - started) * 1000 - sum(stages.values()), 1)

            window_end = align(window_end).to_pydatetime()
            pending = await self.store.materialize_pending(window_end)
            lap("aggregate")
            try:
                grid, patients = await self._grid_for(window_end, pending)
            except BaseException:
                self._grid = None  # half-moved: the next cycle reads the span whole
                raise
            lap("read")
            scores = await asyncio.to_thread(self.score_grid, grid, window_end, scored_at or window_end)
            lap("score")
            await self.store.save_scores(scores)
            lap("save")
            raised = await self.alerts.evaluate(scores, window_end) if self.alerts else []
            lap("alerts")
            took_ms = (time.perf_counter() - started) * 1000
        logger.info("cycle window_end=%s patients=%d scored=%d alerts=%d took_ms=%.0f stages=%s",
                    window_end.isoformat(), patients, len(scores), len(raised or ()), took_ms, stages)
        return CycleResult(window_end, patients, len(scores), len(raised or ()), took_ms, raised is not None, stages)
