"""models.news2 against shared/reference/news2.md, band edge by band edge."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import news2 as N

# (value, points) at both sides of every band edge of the RCP 2017 chart.
RR = [(2, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (80, 3)]
SPO2_1 = [(50, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
SPO2_2_AIR = [(83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0), (93, 0), (97, 0), (100, 0)]
SPO2_2_O2 = [(83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0), (93, 1), (94, 1), (95, 2), (96, 2),
             (97, 3), (100, 3)]
SBP = [(40, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (300, 3)]
HR = [(20, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3), (300, 3)]
TEMP = [(25.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1), (39.1, 2), (45.0, 2)]


@pytest.mark.parametrize(("rr", "pts"), RR)
def test_rr_bands(rr: float, pts: int) -> None:
    assert N.score(rr=rr).points["rr"] == pts


@pytest.mark.parametrize(("spo2", "pts"), SPO2_1)
def test_spo2_scale1_bands(spo2: float, pts: int) -> None:
    assert N.score(spo2=spo2).points["spo2"] == pts
    assert N.score(spo2=spo2, on_oxygen=True).points["spo2"] == pts  # scale 1 ignores oxygen


@pytest.mark.parametrize(("spo2", "pts"), SPO2_2_AIR)
def test_spo2_scale2_on_air(spo2: float, pts: int) -> None:
    assert N.score(spo2=spo2, spo2_scale=2, on_oxygen=False).points["spo2"] == pts


@pytest.mark.parametrize(("spo2", "pts"), SPO2_2_O2)
def test_spo2_scale2_on_oxygen(spo2: float, pts: int) -> None:
    assert N.score(spo2=spo2, spo2_scale=2, on_oxygen=True).points["spo2"] == pts


@pytest.mark.parametrize(("sbp", "pts"), SBP)
def test_sbp_bands(sbp: float, pts: int) -> None:
    assert N.score(sbp=sbp).points["sbp"] == pts


@pytest.mark.parametrize(("hr", "pts"), HR)
def test_pulse_bands(hr: float, pts: int) -> None:
    assert N.score(hr=hr).points["hr"] == pts


@pytest.mark.parametrize(("temp", "pts"), TEMP)
def test_temperature_bands(temp: float, pts: int) -> None:
    assert N.score(temp=temp).points["temp"] == pts


@pytest.mark.parametrize(("code", "pts"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_consciousness_new_confusion_counts(code: str, pts: int) -> None:
    assert N.score(acvpu=code).points["acvpu"] == pts


def test_air_or_oxygen() -> None:
    assert N.score(on_oxygen=True).points["o2"] == 2
    assert N.score(on_oxygen=False).points["o2"] == 0


FULL = {"rr": 16, "spo2": 97, "on_oxygen": False, "sbp": 120, "hr": 70, "acvpu": "A", "temp": 37.0}


@pytest.mark.parametrize(("changes", "total", "band"), [
    ({}, 0, "low"),
    ({"hr": 95}, 1, "low"),
    ({"hr": 95, "rr": 22, "sbp": 105}, 4, "low"),
    ({"rr": 25}, 3, "low-medium"),  # 3 in one parameter, aggregate < 5
    ({"acvpu": "C"}, 3, "low-medium"),
    ({"rr": 25, "hr": 95}, 4, "low-medium"),
    ({"rr": 22, "hr": 115, "temp": 38.5}, 5, "medium"),
    ({"rr": 25, "hr": 115}, 5, "medium"),  # a 3 with aggregate 5 is medium
    ({"rr": 25, "hr": 115, "temp": 38.5}, 6, "medium"),
    ({"rr": 25, "hr": 115, "on_oxygen": True}, 7, "high"),
    ({"rr": 30, "spo2": 88, "on_oxygen": True, "sbp": 85, "hr": 140, "acvpu": "U", "temp": 34.0}, 20, "high"),
])
def test_aggregate_and_clinical_response_bands(changes: dict, total: int, band: str) -> None:
    s = N.score(**{**FULL, **changes})
    assert (s.total, s.band, s.partial) == (total, band, False)
    assert s.total == sum(s.points.values()) and set(s.points) == set(N.PARAMETERS)


def test_partial_set() -> None:
    s = N.score(hr=95)
    assert s.partial and s.total == 1 and s.points["rr"] == 0
    assert not N.score(**FULL).partial


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"hr": 400}, "hr"), ({"hr": 19}, "hr"), ({"rr": 0}, "rr"), ({"spo2": 101}, "spo2"), ({"sbp": 20}, "sbp"),
    ({"temp": 50.0}, "temp"), ({"temp": math.nan}, "temp"), ({"acvpu": "X"}, "acvpu"), ({"acvpu": 1}, "acvpu"),
    ({"spo2_scale": 3}, "spo2_scale"), ({"hr": "fast"}, "hr"), ({"hr": True}, "hr"),
    ({"on_oxygen": "yes"}, "on_oxygen"),
])
def test_out_of_range_or_unknown_values_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        N.score(**kwargs)


def test_rounding_rule_half_up_to_the_charted_value() -> None:
    assert N.score(spo2=93.5).points["spo2"] == 1  # charted 94
    assert N.score(spo2=93.49).points["spo2"] == 2
    assert N.score(sbp=90.5).points["sbp"] == 2  # charted 91
    assert N.score(temp=38.05).points["temp"] == 1  # charted 38.1
    assert N.score(temp=38.04).points["temp"] == 0
    assert N.score(hr=90.5).points["hr"] == 1


def test_from_window_maps_codes_and_oxygen() -> None:
    row = {"rr_mean": 21.4, "spo2_mean": 95.5, "o2": 2.0, "sbp": 100.0, "hr_mean": 111.0, "acvpu": 1.0, "temp": 39.05}
    s = N.from_window(row)
    assert s.points == {"rr": 2, "spo2": 0, "o2": 2, "sbp": 2, "hr": 2, "acvpu": 3, "temp": 2}
    assert s.total == 13 and s.band == "high" and not s.partial
    assert N.from_window({**row, "o2": float("nan"), "acvpu": float("nan")}).partial


def _window(rr, spo2, o2, sbp, hr, acvpu, temp):
    return {"patient_id": "p", "start": pd.Timestamp("2024-01-01", tz="UTC"), "rr_mean": rr, "spo2_mean": spo2,
            "o2": o2, "sbp": sbp, "hr_mean": hr, "acvpu": acvpu, "temp": temp}


maybe = lambda lo, hi: st.one_of(st.just(float("nan")), st.floats(lo, hi))  # noqa: E731


@settings(max_examples=300)
@given(rr=maybe(2, 80), spo2=maybe(50, 100), o2=maybe(0, 15), sbp=maybe(40, 300), hr=maybe(20, 300),
       acvpu=st.one_of(st.just(float("nan")), st.integers(0, 4).map(float)), temp=maybe(25, 45))
def test_vectorised_from_windows_equals_from_window(rr, spo2, o2, sbp, hr, acvpu, temp) -> None:
    row = _window(rr, spo2, o2, sbp, hr, acvpu, temp)
    one = N.from_window(row)
    many = N.from_windows(pd.DataFrame([row])).iloc[0]
    assert int(many["news2"]) == one.total and many["band"] == one.band and bool(many["partial"]) == one.partial
    assert {k: int(many[f"news2_{k}"]) for k in N.PARAMETERS} == one.points


def test_from_windows_on_many_rows() -> None:
    rows = [_window(16, 97, 0, 120, 70, 0, 37.0), _window(25, 91, 3, 90, 131, 3, 39.1)]
    out = N.from_windows(pd.DataFrame(rows))
    assert list(out["news2"]) == [0, 3 + 3 + 2 + 3 + 3 + 3 + 2]
    assert np.array_equal(out["band"].to_numpy(), np.array(["low", "high"], dtype=object))


def test_vectorised_scale_2_matches_the_chart() -> None:
    import itertools

    import pandas as pd

    from models.news2 import from_windows, score

    rows = [
        {"patient_id": "p", "rr_mean": 16.0, "spo2_mean": float(s), "sbp": 120.0, "hr_mean": 80.0, "temp": 37.0,
         "o2": o2, "acvpu": 0.0, "spo2_scale": scale}
        for s, o2, scale in itertools.product(range(78, 101), (0.0, 2.0), (1, 2))
    ]
    out = from_windows(pd.DataFrame(rows))
    for row, got in zip(rows, out["news2_spo2"], strict=True):
        expected = score(spo2=row["spo2_mean"], on_oxygen=row["o2"] > 0, spo2_scale=row["spo2_scale"]).points["spo2"]
        assert got == expected, row


# -- clinical response and monitoring (chart 4) -------------------------------------------------------------------
ZERO = ("0", "low", "routine", "every 12 h", 720, "routine")
LOW = ("1-4", "low", "ward-based", "every 4–6 h", 360, "registered nurse assesses, decides on escalation")
SINGLE_3 = ("single-3", "low-medium", "urgent ward-based", "every hour", 60,
            "registered nurse informs the medical team")
MEDIUM = ("5-6", "medium", "urgent", "every hour", 60, "urgent review by a clinician competent in acute illness")
HIGH = ("7+", "high", "emergency", "continuous monitoring", 0,
        "emergency assessment by a critical-care-competent team, consider transfer to level 2/3 care")


def _row(r: N.ClinicalResponse) -> tuple:
    return r.trigger, r.band, r.urgency, r.monitoring, r.observe_within_min, r.response


@pytest.mark.parametrize(("changes", "row"), [
    ({}, ZERO),
    ({"hr": 95}, LOW),  # aggregate 1: the lower edge of 1–4
    ({"hr": 95, "rr": 22, "sbp": 105}, LOW),  # aggregate 4: the upper edge
    ({"rr": 25}, SINGLE_3),  # a 3 alone: aggregate 3
    ({"acvpu": "C"}, SINGLE_3),  # new confusion alone
    ({"sbp": 90}, SINGLE_3),
    ({"rr": 25, "hr": 95}, SINGLE_3),  # a 3 with aggregate 4: still the single-parameter row
    ({"rr": 22, "hr": 115, "temp": 38.5}, MEDIUM),  # aggregate 5: the lower edge of 5–6
    ({"rr": 25, "hr": 115}, MEDIUM),  # a 3 with aggregate 5: medium wins
    ({"rr": 25, "hr": 115, "temp": 38.5}, MEDIUM),  # aggregate 6: the upper edge
    ({"rr": 25, "hr": 115, "on_oxygen": True}, HIGH),  # aggregate 7: the lower edge of ≥ 7
    ({"rr": 30, "spo2": 88, "on_oxygen": True, "sbp": 85, "hr": 140, "acvpu": "U", "temp": 34.0}, HIGH),  # 20
])
def test_every_result_carries_its_clinical_response_and_monitoring(changes: dict, row: tuple) -> None:
    s = N.score(**{**FULL, **changes})
    assert _row(s.clinical_response) == row
    assert (s.response, s.monitoring, s.urgency) == (row[5], row[3], row[2])
    assert s.single_parameter_3 == any(p == 3 for p in s.points.values())
    assert s.clinical_response.band == s.band  # chart 4's clinical risk is the band


@pytest.mark.parametrize(("total", "single_3", "row"), [
    (0, False, ZERO), (1, False, LOW), (2, False, LOW), (4, False, LOW), (3, True, SINGLE_3), (4, True, SINGLE_3),
    (5, False, MEDIUM), (5, True, MEDIUM), (6, False, MEDIUM), (6, True, MEDIUM), (7, False, HIGH), (7, True, HIGH),
    (20, True, HIGH),
])
def test_clinical_response_at_every_edge(total: int, single_3: bool, row: tuple) -> None:
    assert _row(N.clinical_response(total, single_3)) == row


@pytest.mark.parametrize("total", [-1, 21, 2.0, True, None])
def test_clinical_response_refuses_an_impossible_aggregate(total) -> None:
    with pytest.raises(ValueError, match="aggregate"):
        N.clinical_response(total, False)


def test_the_responses_use_the_reference_wording() -> None:
    assert [_row(r) for r in N.RESPONSES.values()] == [ZERO, LOW, SINGLE_3, MEDIUM, HIGH]
    assert N.MAX_TOTAL == 20


@settings(max_examples=300)
@given(rr=st.floats(2, 80), spo2=st.floats(50, 100), on_oxygen=st.booleans(), sbp=st.floats(40, 300),
       hr=st.floats(20, 300), acvpu=st.sampled_from(["A", "C", "V", "P", "U"]), temp=st.floats(25, 45))
def test_monitoring_never_relaxes_as_the_score_rises(rr, spo2, on_oxygen, sbp, hr, acvpu, temp) -> None:
    s = N.score(rr=rr, spo2=spo2, on_oxygen=on_oxygen, sbp=sbp, hr=hr, acvpu=acvpu, temp=temp)
    r = s.clinical_response
    assert r.band == s.band and 0 <= s.total <= N.MAX_TOTAL
    assert (r.observe_within_min <= 60) == (s.total >= 5 or s.single_parameter_3)
    assert (r.observe_within_min == 0) == (s.total >= 7)


# -- the typed summary a score carries, and its one tolerant reader -------------------------------------------------
_WINDOW = st.fixed_dictionaries({
    "rr_mean": st.one_of(st.none(), st.floats(5, 45)), "spo2_mean": st.one_of(st.none(), st.floats(70, 100)),
    "sbp": st.one_of(st.none(), st.floats(60, 220)), "hr_mean": st.one_of(st.none(), st.floats(30, 190)),
    "temp": st.one_of(st.none(), st.floats(34, 41)), "o2": st.one_of(st.none(), st.sampled_from([0.0, 2.0])),
    "acvpu": st.one_of(st.none(), st.sampled_from([0.0, 1.0, 3.0]))})


@settings(max_examples=200, deadline=None)
@given(st.lists(_WINDOW, min_size=1, max_size=8))
def test_summaries_of_many_windows_are_the_summary_of_each_and_survive_storage(rows):
    frame = pd.DataFrame(rows, dtype=float).assign(patient_id=[f"p{i}" for i in range(len(rows))])
    many = N.summaries(frame)
    assert many == [N.summary(row) for _, row in frame.iterrows()]
    for s in many:
        assert N.News2Summary.from_stored(s.to_dict()) == s
        assert (s.band, s.response) == (N.band(s.total, s.points), N.clinical_response(
            s.total, N.has_single_parameter_3(s.points)).response)


def test_the_reader_takes_rows_of_every_version():
    assert N.News2Summary.from_stored(None) is None and N.News2Summary.from_stored({}) is None
    full = N.summary({"rr_mean": 26.0, "spo2_mean": 95.0, "hr_mean": 120.0})
    old = {"total": full.total, "band": full.band, "points": full.points, "partial": True}  # before chart 4
    assert N.News2Summary.from_stored(old) == full
    assert N.News2Summary.from_stored({"points": {"rr": 3}}).total == 0  # no total: 0, as the engine read it
    assert N.News2Summary.from_stored(full) is full
