"""The read model: the ward's latest scores in memory, with the encoded bodies of the two hot reads.

The service keeps the ward's latest scores in memory instead of reading (and decoding, and re-validating) every
score of the ward on every request. The view is fed by ``app.storage.observed.ObservedStore``: rebuilt from the
store when it opens (so a restarted service answers what the store holds), told of every patient written and
every score saved (the cycle persisting its scores refreshes it). Alert changes are reported by the alert store's
commit hook (a subscriber of the alert engine: ``OnCommit(view.alerts_changed)``).

The encoding belongs to the HTTP layer: ``create_app`` passes the API's encoders (``app.api.patients``), and the
view keeps their bytes, encoding each body at most once per change, on first read. A score is first normalised
through its stored JSON form, so a body is byte-identical to one read back from the store.

Time that ran ahead (issue 21, H17): a score whose window end is more than one window past the clock (made while the
host clock ran ahead, then corrected) is never a patient's latest. Such a held score is dropped from the view when it
is next read or when a score is saved (the store keeps it, in ``score_history``), and the store's latest score up to
the clock is loaded in its place (``WardTwin.view``); one saved or loaded ahead of the clock is not taken.
``newest_dropped`` is reported by ``/healthz`` (``latest_scores_dropped``) until real time passes it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime

from app.alerts.criteria import criteria_reasons
from app.alerts.store import Alert
from app.clock import Clock
from app.domain import Score
from app.storage.codec import score_from_json, score_to_json
from models.windows import WINDOW

logger = logging.getLogger(__name__)

#: One row of the ward: (patient id, its latest score or None, its most urgent open alert or None).
BoardRow = tuple[str, Score | None, Alert | None]


def top_reason(score: Score) -> str | None:
    """A criterion met now, else the sentence of the contribution that raises the risk most."""
    criteria = criteria_reasons(score)
    if criteria:
        return criteria[0]
    rising = [c for c in score.contributions if c.sentence and c.points > 0]
    return max(rising, key=lambda c: c.points).sentence if rising else None


class LatestView:
    """Every known patient, each one's latest score, and the encoded bodies served from them.

    ``encode_risk`` encodes one score; ``encode_board`` the ward's rows, highest risk first. With a ``clock``, no
    score more than one window past its now is a latest (without one, as in unit tests of the encoding, any is).
    """

    def __init__(self, encode_risk: Callable[[Score], bytes],
                 encode_board: Callable[[Sequence[BoardRow]], bytes], clock: Clock | None = None) -> None:
        self._encode_risk, self._encode_board = encode_risk, encode_board
        self._clock = clock
        self._newest: datetime | None = None  # the newest window end held (None: none held)
        self.dropped_ahead = 0  # held or offered scores not taken for being ahead of the clock
        self.reload_wanted = False  # scores were dropped: the store's latest up to the clock is to be merged in
        self.newest_dropped: datetime | None = None  # the newest of their window ends
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
        self.loaded, self.reload_wanted = True, False
        self._changed()

    def patients_seen(self, patient_ids: Iterable[str]) -> None:
        if not self._patients.issuperset(patient_ids):
            self._patients.update(patient_ids)
            self._changed()

    def scores_saved(self, scores: Sequence[Score]) -> None:
        """A score replaces the held one unless that one is for a later window end (a backfill or a rerun of a
        past window does not move the latest back; a rerun of the same window end replaces, as the store does).
        Held scores ahead of the clock are dropped first; a score ahead of it is not taken."""
        self.drop_ahead()
        bound = self.not_after()
        for score in scores:
            if bound is not None and score.window_end > bound:
                self._note_dropped(score.window_end)
                continue
            held = self._scores.get(score.patient_id)
            if held is None or score.window_end >= held.window_end:
                self._scores[score.patient_id] = score
                self._stored.pop(score.patient_id, None)
                self._risk_bodies.pop(score.patient_id, None)
                self._patients.add(score.patient_id)
                if self._newest is None or score.window_end > self._newest:
                    self._newest = score.window_end
        if scores:
            self._changed()

    def not_after(self) -> datetime | None:
        """The latest window end a latest score may have now: one window past the clock (None: no clock)."""
        return None if self._clock is None else self._clock.now() + WINDOW

    def _note_dropped(self, window_end: datetime) -> None:
        self.dropped_ahead += 1
        if self.newest_dropped is None or window_end > self.newest_dropped:
            self.newest_dropped = window_end

    def drop_ahead(self) -> bool:
        """Forget the held scores whose window end is past ``not_after`` (one comparison when there are none); if
        any, ``reload_wanted`` is set, so the service merges in the store's latest scores up to the clock
        (``WardTwin.view``) and the patients get their latest real score back. True if any was dropped."""
        bound = self.not_after()
        if bound is None or self._newest is None or self._newest <= bound:
            return False
        ahead = [pid for pid, s in self._scores.items() if s.window_end > bound]
        for pid in ahead:
            self._note_dropped(self._scores.pop(pid).window_end)
            self._stored.pop(pid, None)
            self._risk_bodies.pop(pid, None)
        self._newest = max((s.window_end for s in self._scores.values()), default=None)
        logger.warning("%d latest scores ahead of the clock (window end past %s) dropped from the read model",
                       len(ahead), bound.isoformat())
        self.reload_wanted = True
        self._changed()
        return True

    def alerts_changed(self) -> None:
        self._changed()

    def _changed(self) -> None:
        self._generation += 1
        self._board = None

    # -- reads ----------------------------------------------------------------------------------------------------
    def knows(self, patient_id: str) -> bool:
        return patient_id in self._patients

    def patient_ids(self) -> list[str]:
        return sorted(self._patients)

    def latest(self, patient_id: str) -> Score | None:
        """The patient's latest score as the store gives it back (its canonical JSON decoded), or None."""
        self.drop_ahead()
        stored = self._stored.get(patient_id)
        if stored is None:
            score = self._scores.get(patient_id)
            if score is None:
                return None
            stored = self._stored[patient_id] = score_from_json(score_to_json(score))
        return stored

    def risk_body(self, patient_id: str) -> bytes | None:
        """The encoded latest score of the patient, or None when it has none."""
        self.drop_ahead()
        body = self._risk_bodies.get(patient_id)
        if body is None:
            score = self.latest(patient_id)
            if score is None:
                return None
            body = self._risk_bodies[patient_id] = self._encode_risk(score)
            self.encodings += 1
        return body

    async def board_body(self, open_alerts: Callable[[], Awaitable[dict[str, Alert]]]) -> bytes:
        """The ward, highest risk first, encoded; rebuilt only after a change."""
        self.drop_ahead()
        if self._board is not None:
            return self._board
        generation = self._generation
        alerts = await open_alerts()
        rows = [(pid, self.latest(pid), alerts.get(pid)) for pid in self._patients]
        rows.sort(key=lambda r: (r[1] is None, -(r[1].risk if r[1] else 0.0), r[0]))
        body = self._encode_board(rows)
        self.encodings += 1
        if generation == self._generation:  # nothing changed while the alerts were read
            self._board = body
        return body
