"""The latest-score view behind ``GET /v1/patients`` and ``GET /v1/patients/{id}/risk``.

The service keeps the ward's latest scores in memory instead of reading (and decoding, and re-validating) every
score of the ward on every request. The view is fed by ``app.storage.observed.ObservedStore``: rebuilt from
the store when it opens (so a restarted service answers what the store holds), told of every patient written
and every score saved (the cycle persisting its scores refreshes it). Alert changes are reported by the alert
store's commit hook (``alerts_changed``).

Bodies are encoded at most once per change, on first read, exactly as FastAPI encoded the route's
``response_model`` before (``TypeAdapter.dump_json``, which is what FastAPI's fast path calls): a score is
first normalised through its stored JSON form, so a body is byte-identical to one read back from the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from pydantic import TypeAdapter

from app.alerts.store import Alert, AlertStore
from app.api.schemas import PatientSummary, RiskOut
from app.domain import Score
from app.storage.codec import score_from_json, score_to_json

_RISK = TypeAdapter(RiskOut)
_BOARD = TypeAdapter(list[PatientSummary])


class LatestView:
    """Every known patient, each one's latest score, and the encoded bodies served from them.

    ``risk_out`` and ``summary`` are the routes' own converters (``app.api.patients``), passed in so there is
    one definition of each body.
    """

    def __init__(self, risk_out: Callable[[Score], RiskOut],
                 summary: Callable[[str, Score | None, Alert | None], PatientSummary]) -> None:
        self._risk_out, self._summary = risk_out, summary
        self._patients: set[str] = set()
        self._scores: dict[str, Score] = {}
        self._stored: dict[str, Score] = {}  # the scores as the store gives them back, normalised on first use
        self._risk_bodies: dict[str, bytes] = {}
        self._board: bytes | None = None
        self._generation = 0  # bumped on every change the board shows
        self.loaded = False  # the store's state merged in (``reset``)
        self.encodings = 0  # bodies encoded so far (tests check "once per change", not per request)

    # -- feed (ObservedStore's listener, and the alert store's hook) --------------------------------------------
    def reset(self, patient_ids: Iterable[str], scores: Iterable[Score]) -> None:
        """The store's state, merged into what the view holds (empty at start-up; if the store was unreachable
        then, readings spooled meanwhile may have added patients the store does not list yet)."""
        self._patients.update(patient_ids)
        self.scores_saved(list(scores))
        self.loaded = True
        self._changed()

    def patients_seen(self, patient_ids: Iterable[str]) -> None:
        if not self._patients.issuperset(patient_ids):
            self._patients.update(patient_ids)
            self._changed()

    def scores_saved(self, scores: Sequence[Score]) -> None:
        """A score replaces the held one unless that one is for a later window end (a backfill or a rerun of a
        past window does not move the latest back; a rerun of the same window end replaces, as the store does)."""
        for score in scores:
            held = self._scores.get(score.patient_id)
            if held is None or score.window_end >= held.window_end:
                self._scores[score.patient_id] = score
                self._stored.pop(score.patient_id, None)
                self._risk_bodies.pop(score.patient_id, None)
                self._patients.add(score.patient_id)
        if scores:
            self._changed()

    def alerts_changed(self) -> None:
        self._changed()

    def _changed(self) -> None:
        self._generation += 1
        self._board = None

    # -- reads ----------------------------------------------------------------------------------------------------
    def knows(self, patient_id: str) -> bool:
        return patient_id in self._patients

    def latest(self, patient_id: str) -> Score | None:
        """The patient's latest score as the store gives it back (its canonical JSON decoded), or None."""
        stored = self._stored.get(patient_id)
        if stored is None:
            score = self._scores.get(patient_id)
            if score is None:
                return None
            stored = self._stored[patient_id] = score_from_json(score_to_json(score))
        return stored

    def risk_body(self, patient_id: str) -> bytes | None:
        """The ``RiskOut`` JSON of the patient's latest score, or None when it has none."""
        body = self._risk_bodies.get(patient_id)
        if body is None:
            score = self.latest(patient_id)
            if score is None:
                return None
            body = self._risk_bodies[patient_id] = _RISK.dump_json(self._risk_out(score))
            self.encodings += 1
        return body

    def board_cached(self) -> bytes | None:
        """The ward's body if it is encoded and current (``board_body`` would return it without a read)."""
        return self._board if self.loaded else None

    async def board_body(self, open_alerts: Callable[[], Awaitable[dict[str, Alert]]]) -> bytes:
        """The ward, highest risk first (``list[PatientSummary]`` JSON), rebuilt only after a change."""
        if self._board is not None:
            return self._board
        generation = self._generation
        alerts = await open_alerts()
        rows = [self._summary(pid, self.latest(pid), alerts.get(pid)) for pid in self._patients]
        rows.sort(key=lambda r: (r.risk is None, -(r.risk or 0.0), r.patient_id))
        body = _BOARD.dump_json(rows)
        self.encodings += 1
        if generation == self._generation:  # nothing changed while the alerts were read
            self._board = body
        return body


def follow_alerts(view: LatestView, alert_store: AlertStore) -> None:
    """Have the alert store's commit hook (``on_event``, called after every committed alert event) also mark the
    board stale, keeping whatever hook it has (the alert engine's wake-up)."""
    previous = alert_store.on_event

    def on_event() -> None:
        view.alerts_changed()
        if previous is not None:
            previous()

    alert_store.on_event = on_event
