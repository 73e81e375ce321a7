"""One interruption per patient episode through the engine and the store (``Policy.fold``): a folded rule is recorded
on the open alert (reasons, a ``corroborated`` transition), notifies nobody, and raises its own alert once the alert
it was folded into resolves."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.alerts.engine import AlertEngine
from app.alerts.rules import ChartedSet, Policy, fold_header
from app.alerts.store import AlertStore
from app.alerts.timers import Timers
from app.clock import FixedClock
from app.domain import Score
from models.news2 import News2Summary

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


@pytest.fixture
async def engine(tmp_path):
    store = AlertStore(tmp_path / "alerts.db")
    await store.open()
    clock = FixedClock(T0)
    yield AlertEngine(store, clock, Policy(threshold=0.7, clear_threshold=0.6, twin_sustain_windows=1,
                                           fold="less_urgent"),
                      Timers(store, escalate_after=timedelta(minutes=15), renotify_after=None))
    await store.close()


def chart(total_points: dict[str, int], at: datetime) -> ChartedSet:
    summary = News2Summary.from_stored({"total": sum(total_points.values()), "points": total_points})
    return ChartedSet("a", at, summary, by="Nurse Ada")


async def test_a_twin_rule_during_a_charted_news2_alert_is_recorded_on_it_then_raised_once_that_resolves(engine):
    news2, _ = await engine.raise_charted(chart({"rr": 3, "hr": 2, "spo2": 1}, T0 - timedelta(minutes=2)))
    assert news2 is not None and news2.kind == "news2"
    head = await engine.store.last_seq()
    assert await engine.evaluate([Score("a", T0, 0.9, 0.0, 0.0, (), "test")]) == []  # no second alert
    noted = await engine.store.get(news2.id)
    assert noted.state == news2.state and noted.reasons[:len(news2.reasons)] == news2.reasons
    assert noted.reasons[len(news2.reasons)] == fold_header("twin")
    assert noted.reasons[len(news2.reasons) + 1].startswith("Twin risk 90%")
    (corroborated,) = [t for t in await engine.store.transitions(news2.id) if t["event"] == "corroborated"]
    assert corroborated["actor"] == "engine" and corroborated["from_state"] == corroborated["to_state"]
    assert corroborated["note"].startswith("twin rule holds")
    assert await engine.store.last_seq() == head  # nothing went to the outbox: nobody is interrupted
    assert await engine.evaluate([Score("a", T0 + STEP, 0.9, 0.0, 0.0, (), "test")]) == []
    assert (await engine.store.get(news2.id)).reasons == noted.reasons  # once per alert and kind
    assert [a.kind for a in await engine.store.list(patient_id="a")] == ["news2"]
    # the nurse charts a reassuring set: the news2 alert resolves; the twin, still high, now raises on its own
    await engine.raise_charted(chart({}, T0 + STEP + timedelta(minutes=2)))
    assert (await engine.store.get(news2.id)).state == "resolved"
    (twin,) = await engine.evaluate([Score("a", T0 + 2 * STEP, 0.9, 0.0, 0.0, (), "test")])
    assert twin.kind == "twin" and twin.state == "raised"


async def test_a_fold_into_an_alert_resolved_meanwhile_records_nothing(engine):
    news2, _ = await engine.raise_charted(chart({"rr": 3, "hr": 2, "spo2": 1}, T0 - timedelta(minutes=2)))
    await engine.store.resolve(news2.id, T0, "test")
    assert await engine.store.corroborate(news2.id, ["x"], T0) is None
    assert (await engine.store.get(news2.id)).reasons == news2.reasons


async def test_a_higher_grade_charted_set_keeps_what_was_recorded_on_the_alert(engine):
    """Escalating a news2 alert replaces its own reasons with the new set's, never the rules folded into it: the ward
    still reads them, and the engine does not record the same rule a second time."""
    news2, _ = await engine.raise_charted(chart({"rr": 3}, T0 - timedelta(minutes=2)))  # a single 3: low-medium
    assert await engine.evaluate([Score("a", T0, 0.9, 0.0, 0.0, (), "test")]) == []
    folded = (await engine.store.get(news2.id)).reasons[len(news2.reasons):]
    assert folded[0] == fold_header("twin")
    await engine.raise_charted(chart({"rr": 3, "hr": 3, "spo2": 3}, T0 + timedelta(minutes=2)))
    regraded = await engine.store.get(news2.id)
    assert regraded.state == "escalated" and regraded.news2["total"] == 9
    assert regraded.reasons != news2.reasons[:len(regraded.reasons)]  # the new set's own reasons lead
    assert regraded.reasons[-len(folded):] == folded
    assert await engine.evaluate([Score("a", T0 + STEP, 0.9, 0.0, 0.0, (), "test")]) == []
    transitions = await engine.store.transitions(news2.id)
    assert [t["event"] for t in transitions].count("corroborated") == 1
    assert (await engine.store.get(news2.id)).reasons == regraded.reasons


def test_the_board_knows_the_fold_header():
    """The ward board shows a folded rule under its alert ("also: ..."): it finds it by the header the rules write."""
    board = (Path(__file__).parents[2] / "app" / "static" / "board.js").read_text()
    assert f'const FOLD_HEADER = "{fold_header("")[:-len(" rule")]}";' in board
