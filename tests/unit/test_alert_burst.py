"""Issue 21, finding 8 (rest): a cycle that raises 2,000 alerts writes them in one transaction, not one commit per
alert (1,800 alerts took 25–85 s that way), in the rules' order, each with its ``raised`` outbox event; a rerun of the
same window raises nothing again."""

from datetime import UTC, datetime, timedelta

import pytest

from app.alerts.engine import AlertEngine
from app.alerts.rules import Policy
from app.alerts.store import AlertStore, NewAlert
from app.alerts.timers import Timers
from app.clock import FixedClock
from app.domain import Score

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BURST = 2000


@pytest.fixture
async def engine(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    await store.open()
    yield AlertEngine(store, FixedClock(T0), Policy(threshold=0.7, clear_threshold=0.6, twin_sustain_windows=1),
                      Timers(store, escalate_after=timedelta(hours=1), renotify_after=None))
    await store.close()


def count_transactions(store: AlertStore) -> list[int]:
    """Counts the store's write transactions (a spy on the one door every write goes through)."""
    calls = [0]
    run_tx = store._db.run_tx

    async def counted(fn, lock=None):
        calls[0] += 1
        return await run_tx(fn, lock)

    store._db.run_tx = counted  # type: ignore[method-assign]
    return calls


async def test_a_burst_of_two_thousand_alerts_is_one_transaction_in_order(engine):
    calls = count_transactions(engine.store)
    (_solo,) = await engine.evaluate([Score("solo", T0, 0.9, 0.0, 0.0, (), "test")])
    one_alert, calls[0] = calls[0], 0
    scores = [Score(f"bed-{i:04d}", T0, 0.9, 0.0, 0.0, (), "test") for i in range(BURST)]
    raised = await engine.evaluate(scores)
    assert [a.patient_id for a in raised] == [s.patient_id for s in scores]
    assert {a.kind for a in raised} == {"twin"} and {a.state for a in raised} == {"raised"}
    assert calls[0] == one_alert  # as many commits as a cycle raising one alert: not one per alert
    events = await engine.store.events_after(1, limit=BURST + 10)  # after the solo alert's event
    assert [(e.event, e.alert_id) for e in events] == [("raised", a.id) for a in raised]
    assert await engine.evaluate(scores) == []  # the same window again: every alert is already open


async def test_a_batch_skips_what_exists_and_keeps_the_rest(engine):
    store = engine.store
    first = await store.raise_alert("a", T0, 0.9, ["r"], T0, kind="twin")
    assert first is not None
    batch = [NewAlert("a", T0, 0.9, ["again"], "twin"), NewAlert("b", T0, 0.8, ["r"], "criteria"),
             NewAlert("c", T0, 0.7, ["r"], "twin")]
    created = await store.raise_alerts(batch, T0)
    assert [(a.patient_id, a.kind) for a in created] == [("b", "criteria"), ("c", "twin")]
    with pytest.raises(ValueError, match="alert kind"):
        await store.raise_alerts([NewAlert("d", T0, 0.5, ["r"], "nonsense")], T0)
    assert await store.raise_alerts([], T0) == []
