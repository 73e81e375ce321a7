"""``lab.set_a_weights``: the shipped logit is the served one's ranking, and an under-weighted feature is found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from lab import set_a_weights as W
from lab import source_choice as S
from lab.output import Progress
from models import features as F
from models.twin import Twin


def test_shipped_raw_logit_is_the_served_logit_before_platt() -> None:
    twin = Twin.load()
    art = twin.artifact
    rng = np.random.default_rng(3)
    mean, scale = np.asarray(art["scaler"]["mean"]), np.asarray(art["scaler"]["scale"])
    x = mean + scale * rng.normal(size=(50, len(F.FEATURE_NAMES)))
    x[rng.random(x.shape) < 0.1] = np.nan
    served = twin.risk(pd.DataFrame(x, columns=list(F.FEATURE_NAMES)))
    cal = art["calibration"]
    assert np.allclose(expit(cal["a"] * W.shipped_raw_logit(art, x) + cal["c"]), served, rtol=1e-9, atol=1e-12)


def _synthetic(n_patients: int = 150, hours: int = 8, seed: int = 1) -> tuple[S.SourceRows, dict, str, str]:
    """Rows whose events depend on three features; a 'shipped' artifact that weights two of them right and leaves
    out the third (``missed``)."""
    rng = np.random.default_rng(seed)
    names = list(F.FEATURE_NAMES)
    strong, missed, third = (names.index(n) for n in ("sbp_outside_normal", "rr_outside_normal", "approach_temp_39"))
    n = n_patients * hours
    x = rng.normal(size=(n, len(names)))
    y = (rng.random(n) < expit(-2.5 + x[:, strong] + x[:, missed] + 0.5 * x[:, third])).astype(int)
    patient = np.repeat(np.asarray([f"p{i}" for i in range(n_patients)], dtype=object), hours)
    fold = np.repeat(np.arange(n_patients) % 5, hours)
    ok = np.ones(n, dtype=bool)
    news2 = np.round(2 + 0.5 * x[:, strong] + rng.normal(size=n))
    rows = S.SourceRows("set-a", x, y, ok, ok, news2, patient, fold)
    coef = np.zeros(len(names))
    coef[strong], coef[third] = 1.0, 0.5
    artifact = {"version": "twin-test", "scaler": {"mean": [0.0] * len(names), "scale": [1.0] * len(names),
                                                   "clip": [4.0] * len(names)},
                "uncalibrated": {"coefficients": coef.tolist(), "intercept": -2.5}}
    return rows, artifact, names[strong], names[missed]


def test_the_feature_the_shipped_twin_leaves_out_is_the_one_set_a_adds() -> None:
    rows, artifact, strong, missed = _synthetic()
    assert strong != missed
    report = W.analyse(rows, artifact, n_bootstrap=20, progress=Progress("test"))
    by_name = {f["feature"]: f for f in report["features"]}
    assert report["features"][0]["feature"] == missed  # the largest margin gain
    added = {n: f["added_on_set_a_per_set_a_sd"] for n, f in by_name.items()}
    assert added[missed] > 0.8
    assert all(abs(v) < added[missed] / 2.5 for n, v in added.items() if n != missed), added  # strong among them
    assert by_name[missed]["shipped_per_set_a_sd"] == 0.0 and by_name[missed]["set_a_fit_per_set_a_sd"] > 0.5
    models = report["models"]
    assert models["set-a fit"]["auroc"] > models["shipped"]["auroc"] + 0.05
    assert models["shipped + NEWS2-scored"]["margin"] > models["shipped"]["margin"] + 0.05  # rr is NEWS2-scored


def test_fold_models_reproduce_the_comparisons_pooled_margin_and_the_shipped_fit() -> None:
    """The pooled figure is exactly ``lab.source_choice.out_of_fold``'s; the all-folds refit is the 'shipped' one."""
    from lab import metrics as M
    from lab import train as T

    seta, _, _, _ = _synthetic(seed=2)
    sim, _, _, _ = _synthetic(n_patients=200, seed=3)
    sim = S.SourceRows("simulator", sim.x, sim.y, sim.fit, sim.measure, sim.news2, sim.patient, sim.fold)
    mean, scale, coef, b, _ = S.fit_on([sim], [sim.fit & (sim.fold >= 0)])
    artifact = {"scaler": {"mean": mean.tolist(), "scale": scale.tolist(), "clip": T.clips(mean, scale).tolist()},
                "uncalibrated": {"coefficients": coef.tolist(), "intercept": b}}
    out = W.fold_models(sim, seta, artifact, progress=Progress("test"))
    oof = S.out_of_fold("simulator", {"simulator": sim, "set-a": seta})["set-a"]
    m = seta.measure & (seta.fold >= 0)
    expected = M.auroc(seta.y[m], oof[m]) - M.auroc(seta.y[m], seta.news2[m])
    assert out["pooled_margin"] == pytest.approx(expected, abs=1e-12)
    assert out["refit_max_abs_coefficient_difference_from_shipped"] < 1e-9
    assert out["refit_on_all_folds_margin"] == pytest.approx(out["shipped_margin"], abs=1e-12)
    assert len(out["folds"]) == 5
