"""Train the twin: windows → features and labels → patient-level split → sign-constrained, standardised
logistic regression (class-balanced, L2) → Platt calibration on cross-fitted logits, folded into the
coefficients → a JSON artifact (its model card is written by :mod:`lab.model_card`). Also fits and
exports the gradient-boosting challenger (walked by :mod:`models.challenger`).

Split
    By patient, never by window: ``u = sha256(f"{seed}:{patient_id}")`` read as a fraction in [0, 1);
    ``u < 0.6`` train, ``u < 0.8`` validation, else test. Train + validation are the *development*
    patients (80 %); the test patients (20 %) are never used for fitting, calibration or thresholds.
    The rule is stored in the artifact, so ``wardtwin evaluate`` on the training cohort finds the same
    test patients.
Sign constraints
    Every feature declares its clinically expected direction (``models.features.Feature.direction``,
    with a one-line reason). The coefficients are fitted with bounds (:func:`fit_constrained`): a
    feature whose risk rises with its value can get a positive coefficient or zero, never a negative one.
    Training refuses to ship a coefficient against its declared direction.
Calibration
    Balanced class weights inflate the raw risk; Platt scaling fits ``y ~ sigmoid(a·s + c)`` on raw
    logits ``s``. A single validation split holds only ~40 events and gave Platt slopes from 0.9 to 1.3
    depending on the patients drawn, so the logits are *cross-fitted*: the development patients are cut
    into ``CV_FOLDS`` patient folds, each fold is scored by a model fitted on the others, and Platt is
    fitted on all of those out-of-fold logits (as scikit-learn's ``CalibratedClassifierCV(ensemble=False)``).
    The shipped coefficients are then fitted on all development patients. Since
    ``a·s + c = (a·w)·z + (a·b + c)`` and ``a > 0`` (checked), the calibrated model is again linear in
    ``z`` with the same signs: ``a·w`` are the shipped coefficients and ``a·b + c`` the intercept, so
    contributions stay exact and add up to the calibrated logit.
Variants and the choice of the shipped twin (twin v3, stated before any PhysioNet 2012 set-A result)
    ``VARIANTS`` name sets of features each variant leaves out (their coefficients are fixed at 0, so every
    artifact keeps ``FEATURES``). Each variant is cross-fitted on the development patients; the shipped one is
    chosen by ``SELECTION_RULE``: the highest cross-fitted development AUROC (eligible development windows);
    variants within ``SELECTION_TIE`` (0.002) of the best are tied, and among tied variants the one with the
    fewest free features wins (then the order of ``VARIANTS``). Test patients, the evaluation cohort and set A
    play no part. Every variant's numbers are kept in the artifact (``variants``).
Operating point (the service's alert threshold; issue 20: a threshold from an alert budget)
    ``ALERT_TARGET``: the lowest threshold on a 0.005 grid whose twin alerts stay within
    ``ALERT_BUDGET_PER_100_PATIENT_DAYS`` (5, or ``wardtwin train --alert-budget``) per 100 patient-days on the
    simulated general ward. Counted on the development patients' cross-fitted (calibrated) risks, monitored windows
    only, as the service's engine raises and clears: an alert when the risk has held at or above the threshold for
    ``SUSTAIN_WINDOWS`` consecutive windows, a new one only after it fell below ``models.twin.CLEAR_FRACTION`` × the
    threshold. The training cohort is enriched with deteriorations, so each development patient is weighted by
    (ward share / development share) of their archetype (``ward_weights``): the rate is the ward's. The artifact
    records the budget, the sustain rule, the threshold with a patient-bootstrap 95 % interval
    (``THRESHOLD_BOOTSTRAP`` draws), the rate it reaches, the alert curve, and the first-event sensitivity it buys
    (an eligible sustained window 6 h to 30 min before onset) beside NEWS2 >= 5 every 5 minutes. Test patients play
    no part. The service alerts at it unless a site overrides ``WARDTWIN_ALERT_THRESHOLD``.
Calibration check
    Calibration slope, intercept at slope 1 and observed / expected, with patient-bootstrap 95 % intervals
    (``lab.calibrate.calibration_report``), on the test patients and on the cross-fitted development logits.
Determinism
    Fixed seed, deterministic solvers (L-BFGS-B from zero), no wall clock; the artifact is written with
    sorted keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import scipy
import sklearn
from scipy.special import expit

from lab import metrics as M
from lab.calibrate import calibration_report
from lab.model_card import model_card, write_model_card
from models import features as F
from models import labels as L
from models import news2 as N
from models.challenger import CHALLENGER_FORMAT
from models.twin import ARTIFACT_FORMAT

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
SPLIT_FRACTIONS: Final[tuple[float, float]] = (0.6, 0.8)
C_REGULARISATION: Final[float] = 1.0
#: Patient folds for cross-fitting the calibration and the matched threshold.
CV_FOLDS: Final[int] = 5
#: Standardised values are winsorised at ±Z_CLIP SD (training and serving alike; ``clips`` for NEWS2's features).
Z_CLIP: Final[float] = 4.0

#: Variants compared on development patients: name → features left out (coefficient fixed at 0).
#: Twin v4 (issue 20): every level is two-sided (``F.LEVELS``). ``v4-levels-once`` leaves out the 4-hour times
#: outside the band and the oxygen flow, so each vital's level and the oxygen need enter once (the copies' partial
#: effects are what the sign constraint floored in twin v3).
_LEVEL_COPIES: Final[tuple[str, ...]] = (
    "hr_outside_normal_min_4h", "rr_outside_normal_min_4h", "spo2_below_normal_min_4h", "sbp_outside_normal_min_4h",
    "temp_outside_normal_min_4h", "o2_l_min")
VARIANTS: Final[dict[str, tuple[str, ...]]] = {
    "v4-all": (),
    "v4-levels-once": _LEVEL_COPIES,
}
#: The floor (issue 20: RR, new confusion and oxygen must carry clinically plausible weight): every feature NEWS2
#: itself scores gets at least ``NEWS2_FLOOR`` log-odds per NEWS2 point on the fitted (pre-Platt) scale: the
#: two-sided levels per NEWS2 point, new confusion per its 3 points, oxygen per its 2. 0.1 per point (odds ratio
#: 1.105; 3 points 1.35) is well below the 0.3-0.5 per point that the NEWS2 aggregate carries for 24-hour outcomes,
#: so the floor only stops the fit from ignoring a parameter NEWS2 counts; where the data give more, it is not felt.
NEWS2_FLOOR: Final[float] = 0.1
NEWS2_POINTS_PER_UNIT: Final[dict[str, float]] = {**{lv.name: 1.0 for lv in F.LEVELS}, "not_alert": 3.0,
                                                  "on_oxygen": 2.0}
SELECTION_TIE: Final[float] = 0.002
SELECTION_RULE: Final[str] = (
    "highest cross-fitted AUROC on eligible development (train + validation) windows; variants within "
    f"{SELECTION_TIE} of the best are tied and the tied variant with the fewest free features is shipped; "
    "stated before any PhysioNet 2012 set-A result was seen")
#: The twin's alert budget (module docstring, "Operating point"): alerts per 100 patient-days on the simulated
#: general-ward mix, the twin alone, raised on sustained risk (``SUSTAIN_WINDOWS``). Kaiser's Advance Alert Monitor
#: runs at about 3 per 100 patient-days (Escobar, NEJM 2020); issue 20 gives the twin at most 10 beyond charted NEWS2.
ALERT_BUDGET_PER_100_PATIENT_DAYS: Final[float] = 5.0
#: The twin raises after this many consecutive 5-minute windows at or above its threshold (15 minutes); the
#: service's ``Settings.twin_sustain_windows`` (default 3) applies the same rule; the artifact records it.
SUSTAIN_WINDOWS: Final[int] = 3
ALERT_TARGET: Final[str] = (
    "the lowest twin threshold on a 0.005 grid at and above which every threshold keeps its alerts within the budget "
    "of {budget:g} per 100 patient-days on the simulated general-ward mix (development patients' cross-fitted risks, "
    "reweighted by archetype to the ward mix), counting an alert when the risk has been at or above the threshold "
    "for {sustain} consecutive 5-minute windows and a new one only after the risk fell below 0.8 x the threshold "
    "(the service's hysteresis)")
ALERT_LEAD: Final[pd.Timedelta] = pd.Timedelta(minutes=30)
THRESHOLD_BOOTSTRAP: Final[int] = 1000


def _quiet(_: str) -> None:
    return None


def _fraction(pid: object, seed: int) -> float:
    h = hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest()
    return int(h[:13], 16) / 16**13


def split_of(patient_ids: pd.Series | np.ndarray | list[str], seed: int) -> np.ndarray:
    """"train" / "validation" / "test" per patient id (hash rule in the module docstring)."""
    out = []
    for pid in patient_ids:
        u = _fraction(pid, seed)
        out.append("train" if u < SPLIT_FRACTIONS[0] else "validation" if u < SPLIT_FRACTIONS[1] else "test")
    return np.asarray(out, dtype=object)


@dataclass
class Dataset:
    """Everything evaluation and training need, one row per window (aligned): features, labels, NEWS2."""

    frame: pd.DataFrame            # patient_id, window_end, FEATURES..., label, eligible, onset, news2 cols
    events: pd.DataFrame           # derived events (models.labels.events)
    patients: pd.DataFrame         # patient_id, age, sex, archetype, spo2_scale
    truth: pd.DataFrame            # simulator ground-truth events (patient_id, kind, onset), may be empty
    hours: float                   # total patient-hours of windows


def prepare(windows: pd.DataFrame, patients: pd.DataFrame, truth: pd.DataFrame | None = None,
            *, progress: Progress = _quiet) -> Dataset:
    windows = windows.sort_values(["patient_id", "start"], kind="mergesort").reset_index(drop=True)
    progress(f"features: {windows['patient_id'].nunique()} patients, {len(windows)} windows")
    feats = F.build(windows)
    progress("labels and events")
    ev = L.events(windows)
    labs = L.label(windows, ev)
    if "spo2_scale" in patients:  # NEWS2 on the SpO2 scale the ward charts each patient on
        scale = patients.drop_duplicates("patient_id").set_index("patient_id")["spo2_scale"]
        news = N.from_windows(windows.assign(spo2_scale=windows["patient_id"].map(scale).fillna(1)))
    else:
        news = N.from_windows(windows)
    frame = feats.copy()
    for c in ("label", "eligible", "onset", "in_event"):
        frame[c] = labs[c].to_numpy()
    for c in ("news2", "partial", "band", *(f"news2_{k}" for k in N.PARAMETERS)):
        frame[c] = news[c].to_numpy()
    if not (labs["window_end"].to_numpy() == feats["window_end"].to_numpy()).all():
        raise RuntimeError("features and labels are misaligned")
    hours = len(windows) * 5 / 60
    if truth is None:
        truth = pd.DataFrame({"patient_id": [], "kind": [], "onset": pd.Series([], dtype="datetime64[ns, UTC]")})
    return Dataset(frame=frame, events=ev, patients=patients.reset_index(drop=True), truth=truth, hours=hours)


def _platt(s: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Maximum-likelihood ``(a, c)`` for ``P(y=1) = sigmoid(a·s + c)`` by Newton's method."""
    return M.logistic_fit(s, y, iterations=iterations)


def fit_scaler(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale; a feature never computed (all NaN, e.g. SpO2 variability at charted cadence)
    gets mean 0 and scale 1, so numpy's empty-slice warnings for it are expected and silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
        scale = np.nanstd(x, axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    scale = np.where(~np.isfinite(scale) | (scale < 1e-9), 1.0, scale)
    return mean, scale


#: The NEWS2-counted features are winsorised no lower than this many NEWS2 points (``clips``).
LEVEL_CAP_POINTS: Final[float] = 4.0


def clips(mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per feature, the winsorising bound in SD: ``Z_CLIP``, except that a feature NEWS2 counts
    (``NEWS2_POINTS_PER_UNIT``) is never cut below ``LEVEL_CAP_POINTS`` NEWS2 points' worth: most windows sit in the
    normal band, so its SD is small and 4 SD would make heart rate 38 bpm read like 118 bpm (and cut new confusion,
    a 0/1 feature, below 1)."""
    per_unit = np.asarray([NEWS2_POINTS_PER_UNIT.get(n, 0.0) for n in F.FEATURE_NAMES])
    with np.errstate(divide="ignore", invalid="ignore"):
        cap = np.where(per_unit > 0, (LEVEL_CAP_POINTS / np.where(per_unit > 0, per_unit, 1.0) - mean) / scale, 0.0)
    return np.maximum(Z_CLIP, np.where(np.isfinite(cap), cap, Z_CLIP))


def standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, clip: float | np.ndarray | None = None
                ) -> np.ndarray:
    """(x − mean) / scale, winsorised at ±``clip`` SD (default ``clips(mean, scale)``), missing → 0."""
    bound = clips(mean, scale) if clip is None else clip
    z = np.clip((x - mean) / scale, -bound, bound)
    z[np.isnan(z)] = 0.0
    return z


def fit_constrained(z: np.ndarray, y: np.ndarray, directions: np.ndarray, *, c_reg: float = 1.0,
                    sample_weight: np.ndarray | None = None, penalised: np.ndarray | None = None,
                    lower: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Sign-constrained, L2-penalised, class-balanced logistic regression on standardised features.

    Minimises ``Σ_i s_i · logloss_i + ||w||² / (2 C)`` (scikit-learn's objective for
    ``LogisticRegression(C, class_weight="balanced")``, intercept unpenalised) subject to ``w_j >= 0``
    where ``directions[j] = +1``, ``w_j <= 0`` where ``-1`` and no bound where ``0``, with L-BFGS-B
    from zero. The objective is divided by ``Σ s_i`` for conditioning (same minimiser). Deterministic.
    ``sample_weight`` (e.g. equal total weight per data source) multiplies each row's weight; the class balance is
    then taken over the weighted rows, and with no weights the fit is exactly the unweighted one. ``penalised``
    (boolean per column, default all) leaves columns such as per-source intercepts out of the L2 penalty. ``lower``
    (per column, default 0) raises the bound of a ``+1`` column above 0 (``NEWS2_FLOOR``).
    """
    from scipy.optimize import minimize

    y = np.asarray(y, dtype=float)
    if sample_weight is None:
        n_pos = float(y.sum())
        n_neg = float(len(y) - n_pos)
        sw = np.where(y == 1, len(y) / (2 * n_pos), len(y) / (2 * n_neg))
    else:
        v = np.asarray(sample_weight, dtype=float)
        v = v / v.mean()  # the penalty's strength stays that of an unweighted fit on as many rows
        n_pos, n_neg = float(v[y == 1].sum()), float(v[y == 0].sum())
        sw = v * np.where(y == 1, v.sum() / (2 * n_pos), v.sum() / (2 * n_neg))
    total = float(sw.sum())
    k = z.shape[1]
    lam = np.where(np.ones(k, dtype=bool) if penalised is None else np.asarray(penalised, dtype=bool),
                   1.0 / (c_reg * total), 0.0)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:k], theta[k]
        eta = z @ w + b
        loss = float(np.sum(sw * (np.logaddexp(0.0, eta) - y * eta))) / total + 0.5 * float(lam @ (w * w))
        r = sw * (expit(eta) - y) / total
        grad = np.empty(k + 1)
        grad[:k] = z.T @ r + lam * w
        grad[k] = float(r.sum())
        return loss, grad

    low = np.zeros(k) if lower is None else np.maximum(np.asarray(lower, dtype=float), 0.0)
    bounds = [(float(lo), None) if d > 0 else (None, 0.0) if d < 0 else (None, None)
              for d, lo in zip(directions, low, strict=True)] + [(None, None)]
    res = minimize(objective, np.zeros(k + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 20_000, "maxcor": 30, "ftol": 1e-15, "gtol": 1e-10})
    if not res.success and "ABNORMAL" not in str(res.message).upper():
        raise RuntimeError(f"constrained logistic regression did not converge: {res.message}")
    w = np.asarray(res.x[:k], dtype=float)
    w = np.where(np.asarray(directions) > 0, np.maximum(w, low), np.where(np.asarray(directions) < 0,
                                                                         np.minimum(w, 0.0), w))
    return w, float(res.x[k])


def fold_of(patient_ids: pd.Series | np.ndarray | list[str], seed: int, folds: int = CV_FOLDS) -> np.ndarray:
    """Cross-fitting fold (0..folds-1) of each development patient (train or validation), -1 for test.

    The same hash fraction ``u`` as :func:`split_of`: development is ``u < 0.8``, cut into equal slices.
    """
    out = []
    for pid in patient_ids:
        u = _fraction(pid, seed)
        out.append(int(u / SPLIT_FRACTIONS[1] * folds) if u < SPLIT_FRACTIONS[1] else -1)
    return np.asarray(out, dtype=int)


@dataclass(frozen=True)
class PooledFit:
    """A model fitted on more than the simulator (``lab.source_choice``), handed to :func:`train` to be
    calibrated, thresholded and written like any other: ``oof`` are its out-of-fold raw logits on the simulator
    dataset's rows (NaN outside the development folds), ``mean``/``scale``/``w``/``b`` its raw fit on all its rows."""

    name: str
    oof: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    w: np.ndarray
    b: float
    fitted_on: str
    selection: dict[str, Any]
    #: Set A's rows for the calibration check: out-of-fold raw logit, label, patient, joint fold (measured rows only).
    external: dict[str, np.ndarray] | None = None


def train(windows: pd.DataFrame, events: pd.DataFrame, patients: pd.DataFrame, *, seed: int,
          cohort_fingerprint: dict, progress: Progress = _quiet, dataset: Dataset | None = None,
          variant: str | None = None, pooled: PooledFit | None = None,
          budget: float = ALERT_BUDGET_PER_100_PATIENT_DAYS, external: dict[str, np.ndarray] | None = None) -> dict:
    """Train and calibrate the twin; returns the JSON artifact (a plain dict).

    ``variant`` forces one of ``VARIANTS`` (to study a variant the rule did not choose; never for shipping).
    ``pooled``: ship this fit (chosen by ``lab.source_choice.SOURCE_RULE``) instead of a simulator-only variant.
    """
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    ds = dataset if dataset is not None else prepare(windows, patients, events, progress=progress)
    frame = ds.frame
    pids = frame["patient_id"].to_numpy()
    split = split_of(pids, seed)
    fold = fold_of(pids, seed)
    elig = frame["eligible"].to_numpy(bool)
    y = frame["label"].to_numpy(int)
    x = frame.loc[:, list(F.FEATURE_NAMES)].to_numpy(float)
    directions = np.asarray([F.DIRECTIONS[n] for n in F.FEATURE_NAMES], dtype=int)
    tr, va, te = (elig & (split == s) for s in ("train", "validation", "test"))
    dev = tr | va
    if y[tr].min(initial=1) == y[tr].max(initial=0) or y[va].sum() == 0:
        raise ValueError("the training cohort needs deterioration events in both train and validation patients")

    variants: dict[str, dict[str, Any]] = {}
    oofs: dict[str, np.ndarray] = {}
    if pooled is None:
        progress(f"cross-fitting: {CV_FOLDS} patient folds over {dev.sum()} development windows "
                 f"({y[dev].sum()} positive), {len(VARIANTS)} variants")
        for vname, left_out in VARIANTS.items():
            free = np.asarray([n not in left_out for n in F.FEATURE_NAMES])
            oofs[vname] = _cross_fit(x, y, dev, fold, directions, free)
            variants[vname] = {"left_out": list(left_out), "free_features": int(free.sum()),
                               "cross_fitted_auroc": M.auroc(y[dev], oofs[vname][dev]),
                               "cross_fitted_auprc": M.auprc(y[dev], oofs[vname][dev])}
            progress(f"variant {vname}: {int(free.sum())} features, cross-fitted development AUROC "
                     f"{variants[vname]['cross_fitted_auroc']:.4f}")
        chosen = select_variant(variants) if variant is None else variant
        free = np.asarray([n not in VARIANTS[chosen] for n in F.FEATURE_NAMES])
        oof = oofs[chosen]
        progress(f"shipped variant: {chosen} ({SELECTION_RULE})")
        selection = {"candidates": variants, "chosen": chosen,
                     "rule": SELECTION_RULE if variant is None else f"forced with --variant {variant} (not shipped)"}
    else:
        chosen, oof = pooled.name, np.asarray(pooled.oof, dtype=float)
        selection = dict(pooled.selection)
        progress(f"shipped: {chosen}, fitted on {pooled.fitted_on}")
    progress("calibrate (Platt on the cross-fitted logits of all development patients)")
    a, c = _platt(oof[dev], y[dev])
    if not a > 0:
        raise ValueError(f"Platt slope {a:.3g} is not positive: calibration would flip the coefficients' signs")

    if pooled is None:
        progress(f"fit: {dev.sum()} development windows, sign-constrained; {te.sum()} test windows held out")
        mean, scale = fit_scaler(x[dev])
        w, b = _fit_free(standardise(x[dev], mean, scale), y[dev], directions, free, floors(scale))
        fitted_on = "eligible development (train + validation) windows"
    else:
        mean, scale, w, b = pooled.mean, pooled.scale, np.asarray(pooled.w, dtype=float), float(pooled.b)
        fitted_on = pooled.fitted_on
    z = standardise(x, mean, scale)
    coef = a * w
    intercept = a * b + c
    bad = [n for n, d, v in zip(F.FEATURE_NAMES, directions, coef, strict=True) if d * v < 0]
    if bad:
        raise AssertionError(f"coefficients against their declared direction: {bad}")

    logit = z @ coef + intercept
    risk = expit(logit)
    oof_risk = np.where(np.isnan(oof), np.nan, expit(a * np.nan_to_num(oof) + c))
    news = frame["news2"].to_numpy(float)
    metrics = {
        "test": M.summary(y[te], risk[te], news[te]),
        "cross_fitted": M.summary(y[dev], oof_risk[dev], news[dev]),
        "development": M.summary(y[dev], risk[dev], news[dev]),
    }
    progress("calibration slope and observed/expected with patient-bootstrap intervals (test, cross-fitted)")
    calibration = {
        "test": calibration_report(y[te], logit[te], pids[te], seed=seed),
        "cross_fitted": calibration_report(y[dev], a * oof[dev] + c, pids[dev], seed=seed),
    }
    ext = pooled.external if pooled is not None else external
    if pooled is None and external and "source_choice" in external:  # the source rule chose the simulator alone
        selection["source_choice"] = external["source_choice"]
    if ext and "y" in ext:
        if "x" in ext:  # the shipped twin never saw these rows: it scores them itself
            ext_logit = standardise(np.asarray(ext["x"], dtype=float), mean, scale) @ coef + intercept
        else:  # out-of-fold raw logits of the pooled fit, through the ward's Platt map
            ext_logit = a * np.asarray(ext["logit"], dtype=float) + c
        calibration["set_a_out_of_fold"] = external_calibration(ext, ext_logit, seed=seed)
    alert = alert_threshold(ds, fold >= 0, np.nan_to_num(oof_risk), seed=seed, budget=budget)
    progress(f"alert threshold ({alert['target']}): {alert['threshold']} (95 % interval {alert['threshold_ci']}), "
             f"{alert.get('twin_alerts_per_100_patient_days')} alerts per 100 ward patient-days")
    n_pat = {s: int(frame.loc[split == s, "patient_id"].nunique()) for s in ("train", "validation", "test")}
    body = {
        "format": ARTIFACT_FORMAT,
        "feature_names": list(F.FEATURE_NAMES),
        "features": [{"name": f.name, "unit": f.unit, "description": f.description, "direction": f.direction,
                      "reason": f.reason} for f in F.FEATURES],
        "directions": directions.tolist(),
        "scaler": {"mean": mean.tolist(), "scale": scale.tolist(), "clip": clips(mean, scale).tolist()},
        "coefficients": coef.tolist(),
        "intercept": float(intercept),
        "uncalibrated": {"coefficients": w.tolist(), "intercept": float(b)},
        "calibration": {"method": "platt-on-logit", "a": float(a), "c": float(c),
                        "fitted_on": f"cross-fitted logits of eligible development (train + validation) windows, "
                                     f"{CV_FOLDS} patient folds"},
        "floors": {"log_odds_per_news2_point": NEWS2_FLOOR, "points_per_unit": dict(NEWS2_POINTS_PER_UNIT),
                   "per_sd_fitted": dict(zip(F.FEATURE_NAMES, floors(scale).tolist(), strict=True)),
                   "rule": "coefficient per SD >= floor x NEWS2 points per unit x SD on the fitted (pre-Platt) "
                           "scale; the shipped coefficient is the Platt slope times it"},
        "estimator": {"kind": "sign-constrained logistic regression", "C": C_REGULARISATION,
                      "class_weight": "balanced", "solver": "scipy L-BFGS-B with bounds", "penalty": "l2",
                      "fitted_on": fitted_on},
        "split": {"rule": "sha256(f'{seed}:{patient_id}') as a fraction: <0.6 train, <0.8 validation, else test; "
                          f"train + validation = development, cut into {CV_FOLDS} folds by the same fraction",
                  "seed": seed, "patients": n_pat, "folds": CV_FOLDS},
        "labels": {"horizon_h": L.HORIZON / pd.Timedelta(hours=1), "sustain_min": L.SUSTAIN / pd.Timedelta(minutes=1),
                   "merge_gap_h": L.MERGE_GAP / pd.Timedelta(hours=1),
                   "refractory_h": L.REFRACTORY / pd.Timedelta(hours=1)},
        "cohort": dict(cohort_fingerprint),
        "metrics": metrics,
        "calibration_check": calibration,
        "operating_points": {"alert": alert},
        "variants": selection,
        "library_versions": {"python": platform.python_version(), "numpy": np.__version__,
                             "pandas": pd.__version__, "scikit-learn": sklearn.__version__,
                             "scipy": scipy.__version__},
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    body["version"] = f"twin-4.{digest}"
    body["card"] = model_card(body)
    progress(f"done: version {body['version']}, test AUROC {metrics['test']['auroc']:.3f} "
             f"(NEWS2 {metrics['test']['news2_auroc']:.3f})")
    return body


def external_calibration(ext: dict[str, np.ndarray], shipped: np.ndarray, *, seed: int) -> dict[str, Any]:
    """Calibration on another population (set A) of the shipped twin's calibrated logits ``shipped`` (out of fold
    where the twin was fitted on it): as shipped, and after a site recalibration (``lab.calibrate``: slope and
    intercept) fitted out of fold — each fold's map fitted on the other folds' rows — which is what ``wardtwin
    calibrate`` on a site's own data would give."""
    y, pid, fold = (np.asarray(ext[k]) for k in ("y", "patient", "fold"))
    site = np.full(len(y), np.nan)
    for k in np.unique(fold[fold >= 0]):
        fit_rows, out_rows = (fold >= 0) & (fold != k), fold == k
        slope, shift = M.logistic_fit(shipped[fit_rows], y[fit_rows].astype(float))
        site[out_rows] = slope * shipped[out_rows] + shift
    ok = np.isfinite(site)
    return {"as_shipped": calibration_report(y, shipped, pid, seed=seed),
            "after_site_calibration_out_of_fold": calibration_report(y[ok], site[ok], pid[ok], seed=seed),
            "rows": "set A eligible scorable stay-hours with NEWS2, the shipped twin's logits (out of fold where it "
                    "saw set A); site calibration refitted per joint fold on the other folds"}


def floors(scale: np.ndarray) -> np.ndarray:
    """Per feature (``F.FEATURE_NAMES`` order), the lowest coefficient per SD the fit may give it: ``NEWS2_FLOOR``
    log-odds per NEWS2 point × points per unit of the feature (``NEWS2_POINTS_PER_UNIT``) × its SD; 0 elsewhere."""
    per_unit = np.asarray([NEWS2_POINTS_PER_UNIT.get(n, 0.0) for n in F.FEATURE_NAMES])
    return NEWS2_FLOOR * per_unit * np.asarray(scale, dtype=float)


def _fit_free(z: np.ndarray, y: np.ndarray, directions: np.ndarray, free: np.ndarray,
              lower: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """:func:`fit_constrained` on the free columns only; the left-out features' coefficients are exactly 0."""
    w = np.zeros(z.shape[1])
    w_free, b = fit_constrained(z[:, free], y, directions[free], c_reg=C_REGULARISATION,
                                lower=None if lower is None else np.asarray(lower)[free])
    w[free] = w_free
    return w, b


def _cross_fit(x: np.ndarray, y: np.ndarray, dev: np.ndarray, fold: np.ndarray, directions: np.ndarray,
               free: np.ndarray, folds: int = CV_FOLDS) -> np.ndarray:
    """Out-of-fold raw logits of the development windows (NaN elsewhere), ``folds`` patient folds numbered
    ``0 .. folds - 1`` in ``fold``."""
    oof = np.full(len(y), np.nan)
    for k in range(folds):
        fit_k, out_k = dev & (fold != k), dev & (fold == k)
        if y[fit_k].min(initial=1) == y[fit_k].max(initial=0) or not out_k.any():
            raise ValueError("every cross-fitting fold needs both classes; the cohort is too small")
        mean_k, scale_k = fit_scaler(x[fit_k])
        w_k, b_k = _fit_free(standardise(x[fit_k], mean_k, scale_k), y[fit_k], directions, free, floors(scale_k))
        oof[out_k] = standardise(x[out_k], mean_k, scale_k) @ w_k + b_k
    return oof


def select_variant(variants: dict[str, dict[str, Any]]) -> str:
    """``SELECTION_RULE``: best cross-fitted development AUROC; within ``SELECTION_TIE`` → fewest free features."""
    best = max(float(v["cross_fitted_auroc"] or 0.0) for v in variants.values())
    tied = [k for k, v in variants.items() if float(v["cross_fitted_auroc"] or 0.0) >= best - SELECTION_TIE]
    return min(tied, key=lambda k: (variants[k]["free_features"], list(variants).index(k)))


def _first_event_maxima(ds: Dataset, patients_mask: np.ndarray, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per patient's first derived event with an eligible window ending in [onset − 6 h, onset − 30 min]:
    the highest twin risk and the highest NEWS2 in those windows."""
    frame = ds.frame
    keep = patients_mask & frame["eligible"].to_numpy(bool)
    pid = frame["patient_id"].to_numpy()[keep]
    ns = pd.DatetimeIndex(frame["window_end"].to_numpy()[keep]).as_unit("ns").asi8
    r, news = risk[keep], frame["news2"].to_numpy(float)[keep]
    where: dict[object, np.ndarray] = {p: np.flatnonzero(pid == p) for p in pd.unique(pid)} if len(pid) else {}
    ev = ds.events[ds.events["patient_id"].isin(set(where))]
    if ev.empty:
        return np.zeros(0), np.zeros(0)
    first = ev.assign(onset=pd.to_datetime(ev["onset"], utc=True)).sort_values("onset").drop_duplicates("patient_id")
    twin_max, news_max = [], []
    for p, onset in zip(first["patient_id"], first["onset"], strict=True):
        rows = where[p]
        t = ns[rows]
        m = (t >= onset.value - L.HORIZON.value) & (t <= onset.value - ALERT_LEAD.value)
        if m.any():
            twin_max.append(float(r[rows][m].max()))
            news_max.append(float(news[rows][m].max()))
    return np.asarray(twin_max), np.asarray(news_max)


def _highest_threshold(best: np.ndarray, target: float) -> float:
    need = max(math.ceil(target * len(best) - 1e-9), 1)
    kth = np.sort(best)[::-1][min(need, len(best)) - 1]
    return math.floor(kth * 200) / 200  # 0.005 grid, rounded down so the sensitivity is reached


def sustained_risk(frame: pd.DataFrame, risk: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Per row: the lowest risk over the row and the ``n - 1`` windows before it, when all ``n`` are ``mask`` rows
    of the same patient on consecutive 5-minute windows; ``-inf`` otherwise. "Sustained at or above T" is
    ``sustained_risk >= T``. ``frame`` sorted by patient and window end."""
    pid = frame["patient_id"].to_numpy()
    t = pd.DatetimeIndex(frame["window_end"]).as_unit("ns").asi8
    s = np.where(mask, risk, -np.inf)
    out = s.copy()
    step = pd.Timedelta(minutes=5).value
    for k in range(1, n):
        same = np.zeros(len(s), dtype=bool)
        same[k:] = (pid[k:] == pid[:-k]) & (t[k:] - t[:-k] == k * step)
        prev = np.full(len(s), -np.inf)
        prev[k:] = s[:-k]
        out = np.minimum(out, np.where(same, prev, -np.inf))
    return out


def alert_counts(frame: pd.DataFrame, risk: np.ndarray, sustained: np.ndarray, mask: np.ndarray, codes: np.ndarray,
                 n_patients: int, threshold: float, clear: float) -> np.ndarray:
    """Twin alerts per patient (``codes``: patient index per row): one per run of ``mask`` windows at or above
    ``clear`` (consecutive, same patient) that holds a sustained window at or above ``threshold`` — the engine
    raises there and keeps the alert open until the risk falls below ``clear``."""
    pid = frame["patient_id"].to_numpy()
    t = pd.DatetimeIndex(frame["window_end"]).as_unit("ns").asi8
    hold = mask & (risk >= clear)
    cont = np.zeros(len(hold), dtype=bool)
    cont[1:] = hold[:-1] & (pid[1:] == pid[:-1]) & (t[1:] - t[:-1] == pd.Timedelta(minutes=5).value)
    seg = np.cumsum(hold & ~cont)
    raised = hold & (sustained >= threshold)
    first = np.unique(seg[raised], return_index=True)[1]
    return np.bincount(codes[np.flatnonzero(raised)[first]], minlength=n_patients).astype(float)


def ward_weights(patients: pd.DataFrame, ids: np.ndarray, hours_per_patient: float) -> tuple[np.ndarray, str]:
    """Per patient (``ids``): the weight that makes the development patients' archetype mix the simulated general
    ward's (``simulator.archetypes.mix_for_event_rate`` at the cohort's stay length); all 1 when the patients'
    archetypes are not the simulator's."""
    from simulator.archetypes import WARD_EVENT_RATE_PER_DAY, mix_for_event_rate

    ward = mix_for_event_rate(WARD_EVENT_RATE_PER_DAY, max(hours_per_patient, 1.0))
    if "archetype" not in patients:
        return np.ones(len(ids)), "development mix (no archetypes recorded)"
    arch = patients.drop_duplicates("patient_id").set_index("patient_id")["archetype"].reindex(ids)
    if arch.isna().any() or not set(arch).issubset(ward):
        return np.ones(len(ids)), "development mix (archetypes not the simulator's)"
    share = arch.value_counts(normalize=True)
    w = np.asarray([ward[a] / share[a] for a in arch], dtype=float)
    return w, (f"reweighted by archetype to the simulated general ward ({WARD_EVENT_RATE_PER_DAY:g} planned "
               f"deteriorations per patient-day over {hours_per_patient:.0f} h stays)")


def _lowest_within(grid: np.ndarray, rate: np.ndarray, budget: float) -> float:
    """The lowest grid threshold at and above which every threshold's rate is within ``budget`` (rates need not fall
    monotonically: at a very low threshold hysteresis merges a stay's alerts into one long one)."""
    over = np.flatnonzero(rate > budget)
    if not len(over):
        return float(grid[0])
    return float(grid[min(int(over.max()) + 1, len(grid) - 1)])


def alert_threshold(ds: Dataset, patients_mask: np.ndarray, risk: np.ndarray, *, seed: int,
                    n_boot: int = THRESHOLD_BOOTSTRAP, budget: float = ALERT_BUDGET_PER_100_PATIENT_DAYS,
                    sustain: int = SUSTAIN_WINDOWS) -> dict[str, Any]:
    """The service's twin alert threshold from the alert budget (``ALERT_TARGET``) on the given (development)
    patients' risks; with the first-event sensitivity it buys and a patient-bootstrap interval."""
    from models.twin import CLEAR_FRACTION

    frame = ds.frame
    mon = M.monitored(frame) & patients_mask
    ids, codes = np.unique(frame["patient_id"].to_numpy(object), return_inverse=True)
    present = np.bincount(codes[mon], minlength=len(ids)) > 0
    days = np.bincount(codes[mon], minlength=len(ids)) * 5 / 60 / 24
    if not present.any():
        return {"threshold": None, "target": ALERT_TARGET.format(budget=budget, sustain=sustain),
                "rule": "no development patients"}
    n_pat = int(present.sum())
    weights, weighting = ward_weights(ds.patients, ids[present], ds.hours / max(frame["patient_id"].nunique(), 1))
    w = np.zeros(len(ids))
    w[present] = weights
    sus = sustained_risk(frame, risk, mon, sustain)
    grid = np.round(np.arange(1, 200) / 200, 3)
    counts = np.vstack([alert_counts(frame, risk, sus, mon, codes, len(ids), float(g), CLEAR_FRACTION * float(g))
                        for g in grid])  # thresholds × patients
    rate = 100 * (counts @ w) / float(days @ w)
    chosen = _lowest_within(grid, rate, budget)
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(present)
    draws = []
    for _ in range(n_boot):
        c = np.bincount(rng.integers(0, len(idx), len(idx)), minlength=len(idx)).astype(float)
        wd = np.zeros(len(ids))
        wd[idx] = c * w[idx]
        draws.append(_lowest_within(grid, 100 * (counts @ wd) / max(float(days @ wd), 1e-12), budget))
    lo, hi = np.percentile(draws, [2.5, 97.5])
    at = int(np.flatnonzero(grid == chosen)[0])
    twin_max, news_max = _first_event_maxima(ds, patients_mask, np.where(np.isfinite(sus), sus, 0.0))
    news = frame["news2"].to_numpy(float)
    news_on = np.where(np.isnan(news), -np.inf, news)
    news_counts = alert_counts(frame, news_on, news_on, mon, codes, len(ids), 5.0, 5.0)
    return {
        "threshold": chosen, "threshold_ci": [float(lo), float(hi)],
        "target": ALERT_TARGET.format(budget=budget, sustain=sustain),
        "rule": ALERT_TARGET.format(budget=budget, sustain=sustain)
        + "; chosen on the cross-fitted risks of development (train + validation) patients, never test patients",
        "budget_alerts_per_100_patient_days": budget, "budget_met": bool(rate[at] <= budget),
        "sustain_windows": sustain, "clear_fraction": CLEAR_FRACTION,
        "twin_alerts_per_100_patient_days": round(float(rate[at]), 2),
        "twin_alerts_per_100_patient_days_development_mix": round(float(100 * counts[at].sum() / days.sum()), 2),
        "news2_5_every_5min_alerts_per_100_patient_days": round(float(100 * (news_counts @ w) / float(days @ w)), 1),
        "weighting": weighting, "patients": n_pat, "patient_days": round(float(days.sum()), 1),
        "first_events": len(twin_max),
        "twin_sensitivity": float(np.mean(twin_max >= chosen)) if len(twin_max) else None,
        "news2_5_sensitivity": float(np.mean(news_max >= 5)) if len(news_max) else None,
        "sensitivity_rule": "first derived event per development patient caught when a sustained twin window (NEWS2 "
                            "every 5 min: one window >= 5) ends 6 h to 30 min before onset; development event mix, "
                            "not reweighted",
        "curve": [{"threshold": float(g), "alerts_per_100_patient_days": round(float(x), 2)}
                  for i, (g, x) in enumerate(zip(grid, rate, strict=True)) if i % 2 == 1 and g <= 0.3],
        "alert_counting": f"a twin alert per run of monitored windows at or above 0.8 x the threshold holding "
                          f"{sustain} consecutive windows at or above it (the engine's raise and clear)",
        "bootstrap": {"draws": n_boot, "resampled": "development patients", "seed": seed},
    }


def matched_threshold(ds: Dataset, patients_mask: np.ndarray, risk: np.ndarray) -> dict[str, Any]:
    """The highest twin threshold whose event sensitivity on the given patients reaches NEWS2 >= 5's there
    (chosen on development patients, so the test set never tunes it). None when there are no events."""
    frame = ds.frame
    mon = M.monitored(frame) & patients_mask
    sub = frame.loc[mon].reset_index(drop=True)
    events = ds.events[ds.events["patient_id"].isin(set(sub["patient_id"]))]
    news = M.operating_point(sub, events, sub["news2"].to_numpy() >= 5, L.HORIZON)
    target = news["sensitivity"]
    if target is None:
        return {"threshold": None, "news2_5_sensitivity": None, "rule": "no development events"}
    r = risk[mon]
    ns = pd.DatetimeIndex(sub["window_end"]).as_unit("ns").asi8
    elig = sub["eligible"].to_numpy(bool)
    pid = sub["patient_id"].to_numpy()
    best = []  # per observable event: the highest twin risk in an eligible window of its 6 h before onset
    for ev in events.itertuples(index=False):
        onset = pd.Timestamp(ev.onset).value
        m = elig & (pid == ev.patient_id) & (ns >= onset - L.HORIZON.value) & (ns <= onset)
        if m.any():
            best.append(float(r[m].max()))
    if not best:
        return {"threshold": None, "news2_5_sensitivity": target, "rule": "no observable development events"}
    need = math.ceil(target * len(best) - 1e-9)
    kth = sorted(best, reverse=True)[max(need, 1) - 1]
    chosen = math.floor(kth * 200) / 200  # 0.005 grid, rounded down so the sensitivity is reached
    achieved = float(np.mean(np.asarray(best) >= chosen))
    return {"threshold": chosen, "news2_5_sensitivity": target, "twin_sensitivity": achieved,
            "rule": "highest twin threshold on a 0.005 grid whose event sensitivity reaches NEWS2 >= 5's, "
                    "chosen on the cross-fitted risks of development (train + validation) patients"}


def export_hgb(model: Any) -> tuple[float, list[dict[str, Any]]]:
    """A fitted binary HistGradientBoostingClassifier → (baseline raw score, plain-data trees)."""
    baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
    trees = []
    for predictors in model._predictors:
        nodes = predictors[0].nodes
        if bool(np.any(nodes["is_categorical"])):
            raise ValueError("categorical splits cannot be exported")
        trees.append({
            "feature": nodes["feature_idx"].astype(int).tolist(),
            "threshold": [x if math.isfinite(x) else ("inf" if x > 0 else "-inf")
                          for x in nodes["num_threshold"].astype(float).tolist()],
            "missing_left": nodes["missing_go_to_left"].astype(int).tolist(),
            "left": nodes["left"].astype(int).tolist(),
            "right": nodes["right"].astype(int).tolist(),
            "is_leaf": nodes["is_leaf"].astype(int).tolist(),
            "value": nodes["value"].astype(float).tolist(),
            "depth": int(nodes["depth"].max()) + 1,
        })
    return baseline, trees


def train_challenger(dataset: Dataset, *, seed: int, twin: dict[str, Any] | None = None,
                     progress: Progress = _quiet) -> dict[str, Any]:
    """HistGradientBoostingClassifier on the twin's development patients (same split), exported as JSON trees."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = dataset.frame
    split = split_of(frame["patient_id"].to_numpy(), seed)
    elig = frame["eligible"].to_numpy(bool)
    tr = elig & ((split == "train") | (split == "validation"))
    x = frame.loc[:, list(F.FEATURE_NAMES)].to_numpy(float)
    y = frame["label"].to_numpy(int)
    progress(f"challenger: HistGradientBoostingClassifier on {tr.sum()} development windows")
    model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=50,
                                           l2_regularization=1.0, early_stopping=False, random_state=seed)
    model.fit(x[tr], y[tr])
    baseline, trees = export_hgb(model)
    body = {
        "format": CHALLENGER_FORMAT, "feature_names": list(F.FEATURE_NAMES), "baseline": baseline, "trees": trees,
        "estimator": {"kind": "HistGradientBoostingClassifier", "max_iter": 150, "learning_rate": 0.1,
                      "max_leaf_nodes": 31, "min_samples_leaf": 50, "l2_regularization": 1.0, "seed": seed},
        "split": {"seed": seed, "same_as_twin": twin["version"] if twin else None},
        "library_versions": {"scikit-learn": sklearn.__version__},
    }
    body["version"] = "challenger-1." + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    return body


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n", encoding="utf-8")
    return p


def write_artifact(artifact: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(artifact, sort_keys=True, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    write_model_card(artifact, p.parent / "MODEL_CARD.md")
    return p


__all__ = [
    "ALERT_BUDGET_PER_100_PATIENT_DAYS", "ALERT_TARGET", "CV_FOLDS", "NEWS2_FLOOR", "NEWS2_POINTS_PER_UNIT",
    "SELECTION_RULE", "SUSTAIN_WINDOWS", "VARIANTS", "Dataset", "alert_counts", "alert_threshold", "export_hgb",
    "external_calibration", "fit_constrained", "fit_scaler", "floors", "fold_of", "matched_threshold", "prepare",
    "select_variant", "split_of", "standardise", "sustained_risk", "train", "train_challenger", "ward_weights",
    "write_artifact", "write_json",
]
