"""Synthetic cohorts (issue 25): the synthesizer and every evaluation measure on small inputs whose answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab.research import synthetic as S
from lab.research import synthetic_eval as E
from lab.research import synthetic_study as ST
from models import features as F


def toy_records(n_patients: int = 60, hours: int = 20, *, seed: int = 0, women_share: float = 0.5,
                shift: float = 0.0) -> pd.DataFrame:
    """Patient-hour records in the study's columns: the label follows ``hr_outside_normal`` (a +1 feature), a few
    other features are noise, some missing, one is zero-inflated."""
    rng = np.random.default_rng(seed)
    pid = np.repeat([f"p{seed}-{i:03d}" for i in range(n_patients)], hours)
    n = len(pid)
    frame = pd.DataFrame({S.PATIENT: pid})
    frame["age"] = np.repeat(rng.integers(20, 90, n_patients).astype(float), hours)
    frame["sex"] = np.repeat((rng.random(n_patients) >= women_share).astype(float), hours)
    for name in F.FEATURE_NAMES:
        frame[name] = np.nan
    x = rng.normal(shift, 1.0, n)
    frame["hr_outside_normal"] = np.abs(x)
    frame["rr_outside_normal"] = np.where(rng.random(n) < 0.6, 0.0, rng.exponential(1.0, n))
    frame["temp_outside_normal"] = np.where(rng.random(n) < 0.3, np.nan, rng.normal(0, 1, n) + 0.5 * x)
    frame["on_oxygen"] = (rng.random(n) < 0.4).astype(float)
    frame[S.LABEL] = (rng.random(n) < 1 / (1 + np.exp(-(2.0 * np.abs(x) - 3.0)))).astype(int)
    return frame


def normal_frame(n: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(0, 1, n) + shift,
                         S.PATIENT: [f"q{seed}-{i // 4}" for i in range(n)]})


# -- fidelity ----------------------------------------------------------------------------------------------------
def test_ks_of_identical_columns_is_zero_and_of_shifted_ones_large() -> None:
    a = normal_frame(500, 0.0, 1)
    same = E.ks_columns(a, a.copy(), ["a", "b"])
    assert all(v["ks"] == 0.0 for v in same.values())
    shifted = E.ks_columns(a, normal_frame(500, 2.0, 2), ["a", "b"])
    assert all(v["ks"] > 0.6 for v in shifted.values())
    assert E.ks_summary(shifted)["columns_compared"] == 2


def test_ks_counts_missing_shares_and_skips_columns_with_too_few_values() -> None:
    a = pd.DataFrame({"x": [np.nan] * 10 + list(range(30))})
    b = pd.DataFrame({"x": [np.nan] * 35 + [1.0] * 5})
    t = E.ks_columns(a, b, ["x"])["x"]
    assert t["ks"] is None  # 5 known values on one side
    assert t["missing_real"] == pytest.approx(0.25) and t["missing_synthetic"] == pytest.approx(35 / 40)


def test_correlation_difference_zero_for_the_same_data_and_large_when_sign_flips() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=400)
    real = pd.DataFrame({"u": x, "v": x + 0.1 * rng.normal(size=400)})
    assert E.correlation_difference(real, real.copy(), ["u", "v"])["mean_abs_difference"] == pytest.approx(0.0)
    flipped = pd.DataFrame({"u": x, "v": -x + 0.1 * rng.normal(size=400)})
    assert E.correlation_difference(real, flipped, ["u", "v"])["mean_abs_difference"] > 1.8


def test_classifier_two_sample_test_near_half_for_one_distribution_and_near_one_for_shifted() -> None:
    a, b = normal_frame(2000, 0.0, 4), normal_frame(2000, 0.0, 5)
    same = E.two_sample_test(a, b, ["a", "b"], seed=1, groups_a=a[S.PATIENT].to_numpy())
    assert 0.42 < same["auroc"] < 0.58 and 0.42 < same["accuracy"] < 0.58
    far = E.two_sample_test(a, normal_frame(2000, 3.0, 6), ["a", "b"], seed=1)
    assert far["auroc"] > 0.97 and far["accuracy"] > 0.9


# -- privacy -----------------------------------------------------------------------------------------------------
def test_dcr_of_copied_records_is_zero_and_of_fresh_ones_like_the_holdout() -> None:
    train, holdout = normal_frame(800, 0.0, 7), normal_frame(800, 0.0, 8)
    copies = E.dcr(train, holdout, train.copy(), ["a", "b"], seed=1)
    assert copies["synthetic_to_train"]["exact_copies"] == 1.0
    assert copies["synthetic_to_train"]["median"] == 0.0
    assert copies["share_synthetic_closer_to_train_than_holdout"] == 1.0
    fresh = E.dcr(train, holdout, normal_frame(800, 0.0, 9), ["a", "b"], seed=1)
    assert fresh["synthetic_to_train"]["exact_copies"] == 0.0
    assert 0.4 < fresh["share_synthetic_closer_to_train_than_holdout"] < 0.6
    assert fresh["synthetic_to_train"]["median"] == pytest.approx(fresh["holdout_to_train"]["median"], rel=0.3)


def test_membership_attack_catches_a_memorising_synthesizer_and_not_a_fresh_sample() -> None:
    train, holdout, reference = (toy_records(80, 10, seed=s) for s in (11, 12, 13))
    cols = S.feature_columns(train)
    memorised = train.drop(columns=[S.PATIENT])  # a "synthesizer" that copies its training records
    leak = E.membership_attack(train, holdout, reference, memorised, cols, seed=1)
    assert leak["auroc_distance_to_synthetic"] > 0.95 and leak["auroc_worst"] > 0.95
    assert leak["members"] == 80 and leak["non_members"] == 80
    fresh = toy_records(80, 10, seed=14).drop(columns=[S.PATIENT])
    none = E.membership_attack(train, holdout, reference, fresh, cols, seed=1)
    assert 0.3 < none["auroc_distance_to_synthetic"] < 0.7


# -- the synthesizer ---------------------------------------------------------------------------------------------
def test_column_states_round_trip() -> None:
    values = np.r_[np.zeros(60), np.nan, np.nan, np.linspace(1, 10, 40)]
    col = S.Column.fit("x", values)
    assert 0.0 in col.exact and col.states > 3
    codes = col.encode(values)
    assert (codes[np.isnan(values)] == 0).all()
    back = col.decode(codes, np.random.default_rng(0))
    assert np.isnan(back[np.isnan(values)]).all()
    assert (back[values == 0] == 0).all()
    known = ~np.isnan(values) & (values > 0)
    assert (back[known] >= 1).all() and (back[known] <= 10).all()
    cat = S.Column.fit("c", np.asarray([0.0, 1.0, 1.0, np.nan]))
    assert cat.exact == (0.0, 1.0) and cat.edges == ()


def test_conditional_mutual_information_zero_when_independent_and_entropy_when_equal() -> None:
    rng = np.random.default_rng(0)
    a, b, c = rng.integers(0, 2, 20_000), rng.integers(0, 2, 20_000), rng.integers(0, 2, 20_000)
    assert S.conditional_mutual_information(a, b, c, (2, 2, 2)) < 1e-3
    assert S.conditional_mutual_information(a, a, c, (2, 2, 2)) == pytest.approx(np.log(2), abs=1e-3)


def test_tan_structure_label_parent_of_all_and_a_tree_among_the_rest() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 3, 2000)
    coded = pd.DataFrame({"a": a, "b": (a + rng.integers(0, 2, 2000)) % 3, "c": rng.integers(0, 2, 2000),
                          "label": rng.integers(0, 2, 2000)})
    edges = S.tan_edges(coded, [3, 3, 2, 2])
    assert {("label", x) for x in "abc"} <= set(edges)
    among = [e for e in edges if e[0] != "label"]
    assert len(among) == 2 and ("a", "b") in among


def test_synthesizer_is_deterministic_and_keeps_the_label_signal() -> None:
    real = toy_records(60, 20, seed=21)
    synth = S.BayesNetSynthesizer().fit(real)
    one, again, other = synth.sample(1000, seed=5), synth.sample(1000, seed=5), synth.sample(1000, seed=6)
    pd.testing.assert_frame_equal(one, again)
    assert not one.equals(other)
    assert ST.digest(one) == ST.digest(again) != ST.digest(other)
    assert list(one.columns) == S.feature_columns(real)
    assert abs(one[S.LABEL].mean() - real[S.LABEL].mean()) < 0.05
    assert one["rr_outside_normal"].eq(0).mean() == pytest.approx(0.6, abs=0.06)  # the point mass comes back exact
    assert one.groupby(S.LABEL)["hr_outside_normal"].mean().diff().iloc[-1] > 0.5  # label follows the feature
    refit = S.BayesNetSynthesizer().fit(real).sample(1000, seed=5)
    pd.testing.assert_frame_equal(one, refit)
    women = synth.sample(200, seed=7, evidence={"sex": 0.0})
    assert (women["sex"] == 0.0).all()


def test_synthesizer_refuses_one_label() -> None:
    real = toy_records(10, 5, seed=2).assign(**{S.LABEL: 0})
    with pytest.raises(ValueError, match="both label values"):
        S.BayesNetSynthesizer().fit(real)


def test_split_is_a_function_of_seed_and_patient() -> None:
    ids = [f"p{i}" for i in range(400)]
    a, b = S.split_of(ids, 1), S.split_of(list(reversed(ids)), 1)[::-1]
    assert (a == b).all()
    share = {s: float(np.mean(a == s)) for s in ("train", "holdout", "test")}
    assert share["train"] == pytest.approx(0.5, abs=0.08) and share["test"] == pytest.approx(0.25, abs=0.08)
    assert not (S.split_of(ids, 2) == a).all()


# -- the twin on synthetic records and the classic uses ----------------------------------------------------------
def test_tstr_on_a_faithful_synthesizer_comes_close_to_trtr() -> None:
    train, test = toy_records(80, 20, seed=31), toy_records(60, 20, seed=32)
    synth = S.BayesNetSynthesizer().fit(train).sample(len(train), seed=1)
    scores = {"TRTR": E.twin_logit(E.fit_twin(train), test), "TSTR": E.twin_logit(E.fit_twin(synth), test)}
    res = E.compare_on_test(test, scores, reference="TRTR", n_bootstrap=50, seed=1)["all"]["scores"]
    assert res["TRTR"]["auroc"] > 0.75
    assert abs(res["TSTR"]["auroc_minus_TRTR"]) < 0.05
    lo, hi = res["TSTR"]["auroc_ci"]
    assert lo <= res["TSTR"]["auroc"] <= hi


def test_rebalancing_skews_two_to_one_and_adds_only_women() -> None:
    train, test = toy_records(90, 12, seed=41, women_share=0.5), toy_records(60, 12, seed=42)
    reb = ST.rebalancing(train, test, seed=3, n_bootstrap=30)
    assert reb["women_kept"] == reb["men"] // 2
    assert reb["male_records"] - reb["female_records"] == reb["synthetic_female_records"]
    assert set(reb["test"]) == {"all", "women", "men"}
    scores = reb["test"]["women"]["scores"]
    assert set(scores) == {"skewed real", "+ synthetic women", "+ real women oversampled",
                           "all train patients (reference)"}
    assert "auroc_minus_skewed real_ci" in scores["+ synthetic women"]


def test_augmentation_uses_only_the_small_set_and_skips_what_cannot_be_done() -> None:
    train, test = toy_records(40, 12, seed=51), toy_records(40, 12, seed=52)
    aug = ST.augmentation(train, test, seed=1, n_bootstrap=20, sizes=(20, 400), multipliers=(1, 2))
    assert aug[0]["real_patients"] == 20 and aug[0]["real_records"] == 20 * 12
    assert aug[0]["synthetic_records"] == {"x1": 240, "x2": 480}
    assert set(aug[0]["test"]["all"]["scores"]) == {"real", "real + synthetic x1", "real + synthetic x2"}
    assert "skipped" in aug[1]


def test_records_from_a_simulated_cohort_are_its_eligible_windows_on_the_hour(tmp_path: Path) -> None:
    from lab.research import cohort as C
    from simulator.archetypes import ENRICHED_MIX
    from simulator.cohort import write_cohort

    write_cohort(tmp_path, 8, 4.0, 5, archetype_mix=ENRICHED_MIX)
    cohort = C.from_cohort_dir(tmp_path)
    records = S.records_from_cohort(cohort)
    w = cohort.windows
    on_hour = w["eligible"].to_numpy(bool) & (pd.to_datetime(w["window_end"], utc=True).dt.minute == 0).to_numpy()
    assert len(records) == int(on_hour.sum()) > 0
    assert list(records.columns) == [S.PATIENT, "age", "sex", *F.FEATURE_NAMES, S.LABEL]
    assert S.feature_columns(records) == ["age", "sex", *F.FEATURE_NAMES, S.LABEL]
    assert records["label"].tolist() == w.loc[on_hour, "label"].astype(int).tolist()
    sexes = cohort.patients.set_index("patient_id")["sex"].map(S.SEX_CODES)
    assert (records["sex"].to_numpy() == records[S.PATIENT].map(sexes).to_numpy()).all()
