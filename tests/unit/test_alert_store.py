"""The alert lifecycle and its outbox, on a real SQLite file in a temp dir (no sockets)."""

from datetime import UTC, datetime, timedelta

import pytest

from app.alerts.engine import AlertEngine
from app.alerts.hub import AlertHub
from app.alerts.store import AlertStore
from app.clock import FixedClock
from app.domain import Contribution, Score
from app.errors import AlertConflictError, AlertNotFoundError

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def score(patient_id: str, risk: float, at: datetime = T0) -> Score:
    return Score(patient_id, at, risk, 0.0, 0.0,
                 (Contribution("hr_trend_1h", 18.0, 1.2, "Heart rate rising: +18 bpm over the last hour"),),
                 "test")


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(text)


@pytest.fixture
async def engine(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    await store.open()
    clock = FixedClock(T0)
    yield AlertEngine(store, AlertHub(), clock, threshold=0.7, clear_threshold=0.6,
                      escalate_after=timedelta(minutes=15))
    await store.close()


async def test_crossing_raises_once_with_reasons_and_hysteresis_resolves(engine):
    assert await engine.evaluate([score("a", 0.5)]) == []
    (alert,) = await engine.evaluate([score("a", 0.8)])
    assert alert.state == "raised" and alert.reasons == ["Heart rate rising: +18 bpm over the last hour"]
    assert await engine.evaluate([score("a", 0.9, T0 + timedelta(minutes=5))]) == []  # still open: no new alert
    await engine.evaluate([score("a", 0.65, T0 + timedelta(minutes=10))])  # between thresholds: stays open
    assert (await engine.store.get(alert.id)).state == "raised"
    await engine.evaluate([score("a", 0.55, T0 + timedelta(minutes=15))])
    assert (await engine.store.get(alert.id)).state == "resolved"


async def test_rerun_of_same_window_does_not_duplicate(engine):
    await engine.evaluate([score("a", 0.8)])
    await engine.store.resolve((await engine.store.list())[0].id, T0, "test")
    assert await engine.evaluate([score("a", 0.8)]) == []
    assert len(await engine.store.list()) == 1


async def test_outbox_waits_for_a_client_then_delivers_in_order(engine):
    await engine.evaluate([score("a", 0.8), score("b", 0.9)])
    assert await engine.deliver_pending() == 0  # nobody connected: stays pending, visibly
    assert await engine.store.backlog() == 2
    ws = FakeSocket()
    engine.hub.add(ws)
    assert await engine.deliver_pending() == 4  # two raised, then the two 'delivered' state changes
    assert await engine.store.backlog() == 0
    assert [a.state for a in await engine.store.list()] == ["delivered", "delivered"]
    assert ['"seq": 1' in ws.sent[0], '"seq": 2' in ws.sent[1], '"delivered"' in ws.sent[2]] == [True] * 3


async def test_acknowledge_escalate_and_conflicts(engine):
    (alert,) = await engine.evaluate([score("a", 0.8)])
    engine.clock.advance(timedelta(minutes=16))
    await engine.evaluate([score("a", 0.8, T0 + timedelta(minutes=15))])
    assert (await engine.store.get(alert.id)).state == "escalated"
    acked = await engine.store.acknowledge(alert.id, "nurse-7", engine.clock.now())
    assert acked.state == "acknowledged" and acked.acknowledged_by == "nurse-7"
    with pytest.raises(AlertConflictError):
        await engine.store.acknowledge(alert.id, "nurse-8", engine.clock.now())
    with pytest.raises(AlertNotFoundError):
        await engine.store.acknowledge("nope", "x", engine.clock.now())
    events = [e.event for e in await engine.store.events_after(0)]
    assert events == ["raised", "escalated", "acknowledged"]


async def test_state_survives_reopen(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    await store.open()
    await store.raise_alert("a", T0, 0.9, ["x"], T0)
    await store.close()
    again = AlertStore(tmp_path / "alerts.db")
    await again.open()
    assert [a.patient_id for a in await again.list()] == ["a"]
    assert await again.backlog() == 1
    await again.close()


async def test_meeting_a_criterion_now_alerts_whatever_the_risk(engine):
    now_bad = Score("c", T0, 0.05, 0.0, 0.0, (), "test", flags=("criteria_met:sbp_low",))
    (alert,) = await engine.evaluate([now_bad])
    assert alert.reasons[0] == "Meets the deterioration criterion now: systolic BP below 90 mmHg"
    later = T0 + timedelta(minutes=5)
    await engine.evaluate([Score("c", later, 0.05, 0.0, 0.0, (), "test", flags=("criteria_met:sbp_low",))])
    assert (await engine.store.get(alert.id)).state == "raised"  # still met: stays open at low risk
    await engine.evaluate([Score("c", later + timedelta(minutes=5), 0.05, 0.0, 0.0, (), "test")])
    assert (await engine.store.get(alert.id)).state == "resolved"
