"""The ``VitalStore`` contract, run against every adapter (``store`` is parametrised over sqlite and influx).

The central invariant: after ``materialize_windows``, ``windows`` equals ``models.windows.aggregate`` on the
same readings in delivery order, with gaps, duplicates (last delivered copy wins, also when a re-delivery
flips the quality flag), out-of-order delivery, window-boundary timestamps and single-reading windows.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from app.domain import Contribution, Reading, Score
from app.storage.base import VitalStore
from models.news2 import News2Summary
from models.schema import PLAUSIBLE_RANGES
from models.windows import WINDOW_COLUMNS, aggregate

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def frame_of(readings: list[Reading]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": [r.patient_id for r in readings],
            "ts": pd.to_datetime([r.ts for r in readings], utc=True),
            "vital": [r.vital for r in readings],
            "value": [r.value for r in readings],
            "quality": [r.quality for r in readings],
            "source": [r.source for r in readings],
        }
    )


def assert_windows_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(WINDOW_COLUMNS)
    assert dict(got.dtypes) == dict(want.dtypes)
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), want.reset_index(drop=True), check_exact=False, rtol=1e-9, atol=1e-9
    )


def scenario(prefix: str, seed: int, patients: int = 4, minutes: int = 40) -> list[list[Reading]]:
    """Delivery batches for a few patients: 1 Hz-ish HR/SpO2 with gaps and artefacts, sparse RR/BP/temp,
    charted ACVPU/O2, duplicates (same key, new value or flipped quality), boundary timestamps, shuffled order."""
    rng = random.Random(seed)
    out: list[Reading] = []
    for p in range(patients):
        pid = f"{prefix}-{p}"
        gap = (rng.randrange(minutes), rng.randrange(5, 15))  # a dropout of 5-15 minutes
        for s in range(0, minutes * 60, rng.choice([1, 2, 5])):
            if gap[0] * 60 <= s < (gap[0] + gap[1]) * 60:
                continue
            ts = T0 + timedelta(seconds=s, milliseconds=rng.choice([0, 0, 0, 1, 999]))
            quality = "ok" if rng.random() > 0.05 else rng.choice(["motion", "probe_off"])
            out.append(Reading(pid, "hr", ts, round(rng.uniform(55, 130), rng.choice([0, 1, 3])), quality))
            if s % 3 == 0:
                out.append(Reading(pid, "spo2", ts, float(rng.randint(85, 100)), quality))
        for s in range(0, minutes * 60, 60):
            if rng.random() < 0.7:
                out.append(Reading(pid, "rr", T0 + timedelta(seconds=s + rng.randrange(60)), float(rng.randint(8, 30))))
        for vital, every in (("sbp", 900), ("dbp", 900), ("temp", 300), ("acvpu", 1800), ("o2", 1800)):
            for s in range(rng.randrange(every), minutes * 60, every):
                lo, hi = PLAUSIBLE_RANGES[vital]
                value = float(rng.randint(0, 4)) if vital == "acvpu" else round(rng.uniform(lo, min(hi, lo + 80)), 1)
                out.append(Reading(pid, vital, T0 + timedelta(seconds=s), value))
        # readings exactly on window boundaries, and a window holding a single HR reading
        out.append(Reading(pid, "hr", T0 + timedelta(minutes=minutes), 77.0))
        out.append(Reading(pid, "sbp", T0 + timedelta(minutes=5), 101.0))
        out.append(Reading(pid, "hr", T0 + timedelta(minutes=minutes + 12, seconds=3), 66.0))
    # a nurse's charted values: some at the very key of a monitor reading (both kept), some on their own
    charted = [Reading(r.patient_id, r.vital, r.ts if rng.random() < 0.5 else r.ts + timedelta(seconds=7),
                       r.value + 2.0, "ok", "charted")
               for r in rng.sample(out, k=len(out) // 50) if r.vital in ("rr", "sbp", "temp", "acvpu", "o2", "hr")]
    out.extend(charted)
    # duplicates: re-deliveries of existing keys with a new value, or with the quality flipped either way
    for r in rng.sample(out, k=len(out) // 20):
        if rng.random() < 0.5:
            out.append(Reading(r.patient_id, r.vital, r.ts, r.value + 1.0, r.quality, r.source))
        else:
            out.append(Reading(r.patient_id, r.vital, r.ts, r.value, "motion" if r.quality == "ok" else "ok",
                               r.source))
    # out of order: shuffle blocks, deliver in batches of random size (order of delivery = what "last" means)
    blocks = [out[i : i + 97] for i in range(0, len(out), 97)]
    rng.shuffle(blocks)
    flat = [r for b in blocks for r in b]
    batches, i = [], 0
    while i < len(flat):
        n = rng.randint(1, 3000)
        batches.append(flat[i : i + n])
        i += n
    return batches


async def test_is_a_vital_store(store: VitalStore) -> None:
    assert isinstance(store, VitalStore)
    health = await store.health()
    assert health["store"] == store.name
    assert health["ok"] is True
    assert health["backlog"] == 0


async def test_newest_reading_after_a_limit(store: VitalStore) -> None:
    """What ``/healthz`` asks to find readings stamped while the clock ran ahead (H17): strictly after the limit."""
    assert await store.newest_reading_after(T0) is None  # nothing stored
    ahead = T0 + timedelta(days=1, milliseconds=250)
    await store.write_readings([Reading("ahead-1", "hr", T0, 80.0), Reading("ahead-2", "spo2", ahead, 97.0),
                                Reading("ahead-1", "rr", T0 + timedelta(hours=1), 18.0, source="charted")])
    assert await store.newest_reading_after(T0) == ahead
    assert await store.newest_reading_after(T0 + timedelta(hours=2)) == ahead
    assert await store.newest_reading_after(ahead) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_pushed_down_windows_equal_reference(store: VitalStore, patient_prefix: str, seed: int) -> None:
    batches = scenario(patient_prefix, seed)
    for batch in batches:
        await store.write_readings(batch)
    delivered = [r for b in batches for r in b]
    want = aggregate(frame_of(delivered))
    written = await store.materialize_windows(T0, T0 + timedelta(hours=1))
    assert written == len(want)
    ids = sorted({r.patient_id for r in delivered})
    got = await store.windows(ids, T0 - timedelta(hours=1), T0 + timedelta(hours=2))
    assert_windows_equal(got, want)
    every = await store.windows(None, T0 - timedelta(hours=1), T0 + timedelta(hours=2))  # None: every patient
    assert_windows_equal(every[every["patient_id"].isin(ids)].reset_index(drop=True), want)
    assert got["hr_std"].isna().any()  # a single-reading window has no standard deviation
    assert (got["hr_count"] == 0).any() or got["hr_mean"].notna().all()


async def test_windows_of_only_clean_readings_equal_reference(store: VitalStore, patient_prefix: str) -> None:
    """No reading flagged: InfluxDB aggregates without its quality filter (issue 14); the windows are the same."""
    batches = [[r for r in batch if r.quality == "ok"] for batch in scenario(patient_prefix, 4)]
    for batch in batches:
        await store.write_readings(batch)
    want = aggregate(frame_of([r for b in batches for r in b]))
    assert await store.materialize_windows(T0, T0 + timedelta(hours=1)) == len(want)
    ids = sorted({r.patient_id for b in batches for r in b})
    assert_windows_equal(await store.windows(ids, T0, T0 + timedelta(hours=1)), want)


async def test_materialize_is_incremental_and_idempotent(store: VitalStore, patient_prefix: str) -> None:
    batches = scenario(patient_prefix, seed=7, patients=2, minutes=30)
    delivered = [r for b in batches for r in b]
    ids = sorted({r.patient_id for r in delivered})
    await store.write_readings(delivered)
    # the cycle aggregates only the newest windows, one step at a time
    total = 0
    for k in range(0, 45, 15):
        total += await store.materialize_windows(T0 + timedelta(minutes=k), T0 + timedelta(minutes=k + 15))
    want = aggregate(frame_of(delivered))
    assert total == len(want)
    assert_windows_equal(await store.windows(ids, T0, T0 + timedelta(hours=1)), want)
    # re-running a range changes nothing
    assert await store.materialize_windows(T0, T0 + timedelta(minutes=15)) == int((want["start"] < T0 + timedelta(
        minutes=15)).sum())
    assert_windows_equal(await store.windows(ids, T0, T0 + timedelta(hours=1)), want)
    # late data for an already materialized window is picked up by a re-run over that window
    late = [Reading(ids[0], "hr", T0 + timedelta(minutes=2, milliseconds=500), 150.0)]
    await store.write_readings(late)
    await store.materialize_windows(T0, T0 + timedelta(minutes=5))
    want = aggregate(frame_of(delivered + late))
    assert_windows_equal(await store.windows(ids, T0, T0 + timedelta(hours=1)), want)


async def test_windows_reads_only_asked_patients_and_range(store: VitalStore, patient_prefix: str) -> None:
    a, b = f"{patient_prefix}-a", f"{patient_prefix}-b"
    readings = [Reading(pid, "hr", T0 + timedelta(minutes=m), 70.0 + m) for pid in (a, b) for m in range(0, 30, 5)]
    await store.write_readings(readings)
    await store.materialize_windows(T0, T0 + timedelta(minutes=30))
    got = await store.windows([a], T0 + timedelta(minutes=10), T0 + timedelta(minutes=20))
    assert list(got["patient_id"]) == [a, a]
    assert list(got["start"]) == [pd.Timestamp(T0 + timedelta(minutes=m)) for m in (10, 15)]
    assert (await store.windows([], T0, T0 + timedelta(hours=1))).empty
    assert (await store.windows([f"{patient_prefix}-none"], T0, T0 + timedelta(hours=1))).empty
    both = await store.windows([b, a, a], T0, T0 + timedelta(hours=1))
    assert list(both["patient_id"]) == [a] * 6 + [b] * 6


async def test_rematerialize_leaves_no_stale_values(store: VitalStore, patient_prefix: str) -> None:
    pid, other = f"{patient_prefix}-x", f"{patient_prefix}-y"
    sbp = Reading(pid, "sbp", T0 + timedelta(minutes=1), 120.0)
    hr = [Reading(pid, "hr", T0 + timedelta(minutes=1, seconds=s), 80.0 + s) for s in range(3)]
    lonely = Reading(other, "temp", T0 + timedelta(minutes=6), 37.2)
    await store.write_readings([sbp, *hr, lonely])
    assert await store.materialize_windows(T0, T0 + timedelta(minutes=10)) == 2
    first = await store.windows([pid, other], T0, T0 + timedelta(minutes=10))
    assert first["sbp"].iloc[0] == 120.0 and first["temp"].iloc[1] == 37.2
    # re-delivered with an artefact flag: the BP value and the whole temperature-only window must go
    flagged = [Reading(sbp.patient_id, "sbp", sbp.ts, sbp.value, "motion"),
               Reading(lonely.patient_id, "temp", lonely.ts, lonely.value, "probe_off"),
               Reading(pid, "hr", hr[0].ts, hr[0].value, "motion"), Reading(pid, "hr", hr[1].ts, hr[1].value, "motion")]
    await store.write_readings(flagged)
    assert await store.materialize_windows(T0, T0 + timedelta(minutes=10)) == 1
    got = await store.windows([pid, other], T0, T0 + timedelta(minutes=10))
    assert_windows_equal(got, aggregate(frame_of([sbp, *hr, lonely, *flagged])))
    assert len(got) == 1 and np.isnan(got["sbp"].iloc[0]) and np.isnan(got["hr_std"].iloc[0])
    assert got["hr_count"].iloc[0] == 1


async def test_readings_roundtrip_last_copy_wins(store: VitalStore, patient_prefix: str) -> None:
    a, b = f"{patient_prefix}-a", f"{patient_prefix}-b"
    first = [Reading(a, "hr", T0 + timedelta(seconds=s, milliseconds=123), 60.0 + s) for s in range(5)]
    await store.write_readings([*first, Reading(b, "spo2", T0, 97.0)])
    await store.write_readings([Reading(a, "hr", first[2].ts, 99.5, "motion")])
    got = await store.readings([a], T0, T0 + timedelta(seconds=4, milliseconds=123))  # end is exclusive
    assert list(got.columns) == ["patient_id", "ts", "vital", "value", "quality", "source"]
    assert set(got["source"]) == {"monitor"}
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]"
    assert list(got["value"]) == [60.0, 61.0, 99.5, 63.0]
    assert list(got["quality"]) == ["ok", "ok", "motion", "ok"]
    assert got["ts"].is_monotonic_increasing and set(got["patient_id"]) == {a}
    assert got["ts"].iloc[0] == pd.Timestamp(first[0].ts)  # millisecond precision kept
    assert (await store.readings([], T0, T0 + timedelta(hours=1))).empty
    ids = await store.patient_ids()
    assert {a, b} <= set(ids) and ids == sorted(ids)


async def test_a_charted_and_a_monitor_value_at_one_key_are_both_kept(store: VitalStore, patient_prefix: str) -> None:
    """The source is part of a reading's identity (issue 20): the nurse's counted RR 18 and the monitor's RR 26 at the
    same patient, vital and time are two readings; re-delivering either replaces only its own copy. Windows average
    both; for a last-value vital a charted value in the window wins over the monitor's, whatever their order."""
    pid = f"{patient_prefix}-both"
    at = T0 + timedelta(minutes=1)
    await store.write_readings([Reading(pid, "rr", at, 26.0), Reading(pid, "rr", at, 18.0, "ok", "charted"),
                                Reading(pid, "sbp", at, 95.0, "ok", "charted"),
                                Reading(pid, "sbp", at + timedelta(minutes=2), 140.0)])
    await store.write_readings([Reading(pid, "rr", at, 27.0)])  # a monitor re-delivery: the charted copy stays
    got = await store.readings([pid], T0, T0 + timedelta(minutes=5))
    rows = list(got[["vital", "value", "source"]].itertuples(index=False, name=None))
    assert rows == [("rr", 27.0, "monitor"), ("rr", 18.0, "charted"), ("sbp", 95.0, "charted"),
                    ("sbp", 140.0, "monitor")]
    delivered = [Reading(pid, "rr", at, 26.0), Reading(pid, "rr", at, 18.0, "ok", "charted"),
                 Reading(pid, "sbp", at, 95.0, "ok", "charted"), Reading(pid, "sbp", at + timedelta(minutes=2), 140.0),
                 Reading(pid, "rr", at, 27.0)]
    assert await store.materialize_windows(T0, T0 + timedelta(minutes=5)) >= 1
    windows = await store.windows([pid], T0, T0 + timedelta(minutes=5))
    assert_windows_equal(windows, aggregate(frame_of(delivered)))
    assert windows["rr_mean"].iloc[0] == pytest.approx(22.5) and windows["sbp"].iloc[0] == 95.0


def make_score(pid: str, end: datetime, risk: float, version: str = "twin-1") -> Score:
    return Score(
        patient_id=pid, window_end=end, risk=risk, logit=float(np.log(risk / (1 - risk))), intercept=-2.0,
        contributions=(Contribution("hr_mean_1h", 92.0, 0.4, "Heart rate has averaged 92 bpm, \"high\"\n"),),
        model_version=version, news2=News2Summary.from_stored({"total": 3, "points": {"hr": 1}}), flags=("stale_bp",),
        scored_at=end + timedelta(seconds=31),
    )


async def test_scores_latest_history_and_rerun(store: VitalStore, patient_prefix: str) -> None:
    a, b = f"{patient_prefix}-a", f"{patient_prefix}-b"
    ends = [T0 + timedelta(minutes=5 * k) for k in range(4)]
    await store.save_scores([make_score(a, e, 0.1 + 0.1 * k) for k, e in enumerate(ends)])
    await store.save_scores([make_score(b, ends[1], 0.5)])
    await store.save_scores([make_score(a, ends[3], 0.9, "twin-2")])  # rerun of a window end replaces
    latest = {s.patient_id: s for s in await store.latest_scores()}
    assert latest[a] == make_score(a, ends[3], 0.9, "twin-2")
    assert latest[b].window_end == ends[1]
    history = await store.score_history(a, ends[1], ends[3])
    assert [s.window_end for s in history] == ends[1:3]
    assert history[0] == make_score(a, ends[1], 0.2)
    assert await store.score_history(f"{patient_prefix}-none", T0, ends[-1]) == []


INJECTIONS = [
    "p1' OR '1'='1",
    "x'; DROP DATABASE wardtwin; SELECT '",
    "x'; DROP DATABASE {db}; SELECT '",
    "x'; DROP DATABASE \"{db}\"; SELECT * FROM vitals WHERE patient_id = '",
    'x" OR ""="',
    "/.*/",
    "x' OR patient_id =~ /.*/ OR '",
    "x\\'; DROP MEASUREMENT vitals; SELECT '",
]


async def test_injection_reads_nothing_and_changes_nothing(store: VitalStore, patient_prefix: str) -> None:
    victim = f"{patient_prefix}-victim"
    readings = [Reading(victim, v, T0 + timedelta(minutes=m), 80.0) for v in ("hr", "sbp") for m in range(10)]
    await store.write_readings(readings)
    await store.materialize_windows(T0, T0 + timedelta(minutes=10))
    await store.save_scores([make_score(victim, T0 + timedelta(minutes=5), 0.3)])
    before_ids = await store.patient_ids()
    database = getattr(store, "database", "wardtwin")
    for raw in INJECTIONS:
        evil = raw.format(db=database)
        assert (await store.readings([evil], T0, T0 + timedelta(hours=1))).empty, evil
        assert (await store.windows([evil], T0, T0 + timedelta(hours=1))).empty, evil
        assert await store.score_history(evil, T0, T0 + timedelta(hours=1)) == [], evil
    assert await store.patient_ids() == before_ids
    assert len(await store.readings([victim], T0, T0 + timedelta(hours=1))) == len(readings)
    assert len(await store.windows([victim], T0, T0 + timedelta(hours=1))) == 2
    assert len(await store.score_history(victim, T0, T0 + timedelta(hours=1))) == 1
    assert (await store.health())["ok"] is True


async def test_hostile_ids_are_stored_as_plain_ids(store: VitalStore, patient_prefix: str) -> None:
    """Bypassing the API's id validation: the store escapes and binds, so each id is exactly itself."""
    victim = f"{patient_prefix}-victim"
    await store.write_readings([Reading(victim, "hr", T0, 70.0)])
    evil = list(dict.fromkeys(f"{raw.format(db='wardtwin')} {patient_prefix}" for raw in INJECTIONS))
    await store.write_readings([Reading(pid, "hr", T0 + timedelta(seconds=i), 90.0 + i) for i, pid in enumerate(evil)])
    for i, pid in enumerate(evil):
        got = await store.readings([pid], T0, T0 + timedelta(minutes=1))
        assert list(got["patient_id"]) == [pid] and list(got["value"]) == [90.0 + i]
    assert list((await store.readings([victim], T0, T0 + timedelta(minutes=1)))["value"]) == [70.0]
    assert set(evil) <= set(await store.patient_ids())


async def test_pending_windows_are_durable_and_aggregated_once(store: VitalStore, patient_prefix: str) -> None:
    """Every window a write touches is marked in the store; ``materialize_pending(end)`` aggregates exactly the
    marked windows before ``end`` (a backfill hours old included), clears them, and leaves later ones marked."""
    batches = scenario(patient_prefix, seed=5, patients=2, minutes=30)
    delivered = [r for b in batches for r in b]
    ids = sorted({r.patient_id for r in delivered})
    cut = T0 + timedelta(minutes=20)
    await store.write_readings(delivered)
    done = await store.materialize_pending(cut)
    want = aggregate(frame_of(delivered))
    assert done == sorted(set(want.loc[want["start"] < cut, "start"].dt.to_pydatetime()))
    assert_windows_equal(await store.windows(ids, T0, T0 + timedelta(hours=1)), want[want["start"] < cut])
    assert await store.materialize_pending(cut) == []  # marks cleared: nothing to redo
    later = await store.materialize_pending(T0 + timedelta(hours=2))  # the rest is still marked
    assert later and min(later) >= cut
    assert_windows_equal(await store.windows(ids, T0, T0 + timedelta(hours=1)), want)
    # a backfill for a window long aggregated is marked again and picked up by the next call
    late = [Reading(ids[0], "hr", T0 + timedelta(minutes=2, milliseconds=500), 150.0)]
    await store.write_readings(late)
    assert await store.materialize_pending(T0 + timedelta(hours=3)) == [T0]
    assert_windows_equal(await store.windows(ids, T0, T0 + timedelta(hours=1)), aggregate(frame_of(delivered + late)))


async def test_last_window_end_is_the_newest_scored(store: VitalStore, patient_prefix: str) -> None:
    before = await store.last_window_end()
    newest = T0 + timedelta(days=3650)  # later than anything another test stores
    score = Score(f"{patient_prefix}-a", newest, 0.1, -2.2, -2.0,
                  (Contribution("hr_mean_1h", 80.0, -0.2, "Heart rate 80"),), "test",
                  News2Summary.from_stored({"total": 0}), None, (), newest)
    await store.save_scores([score])
    assert before is None or before < newest
    assert await store.last_window_end() == newest


async def test_equal_times_in_a_zone_with_folds_are_stored_as_their_instants(store: VitalStore,
                                                                              patient_prefix: str) -> None:
    """01:30 in London on 2025-10-26 happens twice (fold 0: 00:30 UTC, fold 1: 01:30 UTC). Python calls the two
    equal (PEP 495), so a write that converts each distinct time once must not merge them."""
    from zoneinfo import ZoneInfo

    pid = f"{patient_prefix}-fold"
    first = datetime(2025, 10, 26, 1, 30, tzinfo=ZoneInfo("Europe/London"))
    second = first.replace(fold=1)
    await store.write_readings([Reading(pid, "hr", first, 70.0), Reading(pid, "hr", second, 71.0)])
    utc = [datetime(2025, 10, 26, 0, 30, tzinfo=UTC), datetime(2025, 10, 26, 1, 30, tzinfo=UTC)]
    got = await store.readings([pid], utc[0], utc[1] + timedelta(minutes=1))
    assert list(got["ts"]) == [pd.Timestamp(t) for t in utc] and list(got["value"]) == [70.0, 71.0]
    done = await store.materialize_pending(utc[1] + timedelta(hours=1))
    assert set(utc) <= set(done)
