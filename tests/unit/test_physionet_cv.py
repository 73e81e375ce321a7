"""The cross-validated set-A variant (lab.physionet_cv) on the five committed real stays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.domain import Reading
from lab import physionet2012 as P
from lab import physionet_cv as C
from lab import physionet_eval as E
from lab.physionet_cmd import Tally, validated
from models.schema import READING_COLUMNS
from models.twin import Twin

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "physionet2012"
RECORDS = FIXTURES / "set-a"
OUTCOMES = FIXTURES / "Outcomes-a.txt"


@pytest.fixture(scope="module")
def stays() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from datetime import timedelta

    ids: list[str] = []
    rows: list[Reading] = []
    for stay, readings in validated(P.iter_stays(RECORDS), Tally(), timedelta(seconds=5)):
        ids.append(stay.patient_id)
        rows.extend(readings)
    frame = pd.DataFrame(rows, columns=list(Reading._fields)).loc[:, list(READING_COLUMNS)]
    hours, feats, events = E.stay_hours(frame, ids)
    scores = E.score_hours(hours, feats, Twin.load(None))
    return C.hour_table(hours, feats), events, scores, frame


def test_folds_are_stratified_disjoint_and_fixed_by_seed() -> None:
    ids = [f"p{i}" for i in range(20)]
    flag = [i % 4 == 0 for i in range(20)]
    folds = C.patient_folds(ids, flag, 5, seed=7)
    assert set(folds) == set(ids) and set(folds.values()) == set(range(5))
    assert folds == C.patient_folds(list(reversed(ids)), list(reversed(flag)), 5, seed=7)
    with_event = [folds[p] for p, f in zip(ids, flag, strict=True) if f]
    assert sorted(with_event) == [0, 1, 2, 3, 4]  # 5 stays with an event, one per fold


@pytest.mark.parametrize("folds", [2, 3])
def test_cv_runs_on_fixtures_with_out_of_fold_risk_for_every_scorable_hour(
        stays: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame], folds: int) -> None:
    table, events, scores, _ = stays
    cv, fits = C.cross_validate(table, events, folds=folds, seed=2012)
    # every stay in exactly one fold: its hours never span two folds
    assert (cv.groupby("patient_id")["fold"].nunique() == 1).all()
    assert set(cv["fold"]) == set(range(folds))
    # an out-of-fold risk exactly where the service would score (the shipped twin's risk is not empty)
    merged = cv.merge(scores[["patient_id", "window_end", "risk"]], on=["patient_id", "window_end"])
    assert len(merged) == len(cv) == 5 * 48
    assert (merged["cv_risk"].notna() == merged["scorable"]).all()
    assert (merged["scorable"] == merged["risk"].notna()).all()
    assert merged.loc[merged["scorable"], "cv_risk"].between(0, 1).all()
    # each fold's test stays were not among its training stays
    for f in fits["folds"]:
        assert f["training_stays"] + f["test_stays"] == 5
    coef = np.asarray([f["coefficients"] for f in fits["folds"]])
    directions = np.asarray([fits["coefficients"][n]["direction"] for n in fits["coefficients"]])
    assert (coef * directions >= -1e-12).all()  # sign constraints hold in every fold


def test_cv_evaluation_has_both_tasks_and_says_it_is_not_shipped(
        stays: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    table, events, scores, _ = stays
    cv, fits = C.cross_validate(table, events, folds=2, seed=2012)
    shipped = cv[["patient_id", "window_end"]].merge(scores, on=["patient_id", "window_end"], how="left")["risk"]
    out = C.evaluate(cv, events, P.read_outcomes(OUTCOMES), fits, shipped_risk=shipped.to_numpy(float),
                     n_bootstrap=20, seed=1)
    assert set(out["events_6h"]["discrimination"]) == {"twin_cv", "news2", "twin_shipped"}
    assert set(out["death"]["discrimination"]) == set(E.DEATH_PREDICTORS)
    assert set(out["coefficients"]["level_features"]) >= {"hr_outside_normal", "rr_outside_normal", "on_oxygen"}
    assert "Not shipped" in out["not_shipped"]
    assert any("Goal (≥ +0.08, lower end > 0)" in line for line in C.summary_lines(out))
    hours = out["events_6h"]["eligible_hours_same"]
    assert hours == int((cv["scorable"] & cv["eligible"] & cv["news2_total"].notna()).sum()) > 0
