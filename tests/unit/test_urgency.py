"""The ward board's order (``app.urgency``): escalation level first, then risk, then its 1-hour trend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.urgency import LEVELS, BedUrgency, is_stale, last_data_at, level, order, urgency_key

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def ids(beds: list[BedUrgency]) -> list[str]:
    return [b.patient_id for b in order(beds)]


def test_the_news2_band_outranks_a_higher_twin_risk():
    beds = [BedUrgency("low-but-risky", "low", 0.09), BedUrgency("urgent", "medium", 0.03),
            BedUrgency("emergency", "high", 0.02), BedUrgency("single-3", "low-medium", 0.01)]
    assert ids(beds) == ["emergency", "urgent", "single-3", "low-but-risky"]


def test_risk_then_its_trend_break_ties_within_a_band():
    beds = [BedUrgency("a", "low", 0.05, -0.02), BedUrgency("b", "low", 0.05, 0.03), BedUrgency("c", "low", 0.06)]
    assert ids(beds) == ["c", "b", "a"]


def test_open_alerts_and_staleness_raise_the_level():
    assert LEVELS[level(BedUrgency("x", "low", open_alerts=(("news2", "high"),)))] == "high"  # a charted set's band
    assert LEVELS[level(BedUrgency("x", "low", open_alerts=(("obs_due", None),)))] == "low-medium"
    assert LEVELS[level(BedUrgency("x", "low", open_alerts=(("twin", None),)))] == "low"  # the twin adds no band
    assert LEVELS[level(BedUrgency("x", "low", stale=True))] == "low-medium"  # silence is never reassurance
    assert LEVELS[level(BedUrgency("x", "high", stale=True))] == "high"


def test_a_silent_monitor_sorts_above_routine_beds_and_unscored_beds_last_in_their_level():
    beds = [BedUrgency("routine", "low", 0.08), BedUrgency("silent", "low", 0.02, stale=True),
            BedUrgency("new", None, None)]
    assert ids(beds) == ["silent", "routine", "new"]


@given(st.lists(st.builds(BedUrgency, st.text(min_size=1, max_size=4), st.sampled_from([None, *LEVELS]),
                          st.none() | st.floats(0, 1), st.none() | st.floats(-1, 1),
                          st.tuples(), st.booleans()), max_size=12))
def test_the_order_is_a_permutation_sorted_by_level_and_the_same_whatever_the_input_order(beds):
    ranked = order(beds)
    assert sorted(map(urgency_key, ranked)) == list(map(urgency_key, ranked))
    assert [level(b) for b in ranked] == sorted((level(b) for b in beds), reverse=True)
    assert list(map(urgency_key, order(list(reversed(beds))))) == list(map(urgency_key, ranked))
    assert sorted(map(id, ranked)) == sorted(map(id, beds))


def test_staleness_is_judged_against_the_cadence():
    cadence = timedelta(minutes=15)
    assert last_data_at([T - timedelta(minutes=10), T - timedelta(minutes=5)], timedelta(minutes=5)) == T
    assert last_data_at([], timedelta(minutes=5)) is None
    assert not is_stale(T, T + cadence, cadence)
    assert is_stale(T, T + cadence + timedelta(seconds=1), cadence)
    assert is_stale(None, T, cadence)
