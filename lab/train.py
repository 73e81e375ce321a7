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
Operating point (the service's alert threshold)
    ``ALERT_TARGET``: on the development patients' cross-fitted (calibrated) risks, each patient's first
    derived event counts as caught when an eligible window ending 6 h to 30 min before its onset is at or
    above the threshold; the threshold is the *highest* on a 0.005 grid whose first-event sensitivity reaches
    NEWS2 >= 5's on the same events (so, at NEWS2's sensitivity, the fewest twin alerts). The artifact records
    the target, the threshold, a patient-bootstrap 95 % interval (resampling the development events,
    ``THRESHOLD_BOOTSTRAP`` draws) and both policies' alert rates (``lab.metrics.alerts``, 1 h re-arm) on
    the development patients. The service alerts at it unless a site overrides ``WARDTWIN_ALERT_THRESHOLD``;
    the clear threshold is ``models.twin.CLEAR_FRACTION`` of it.
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
#: Standardised values are winsorised at ±Z_CLIP SD (training and serving alike).
Z_CLIP: Final[float] = 4.0

#: Variants compared on development patients: name → features left out (coefficient fixed at 0).
#: ``v2-trends`` is the previous twin's inputs; the ``v3-*`` variants add the levels of ``F.NOW_FEATURES``.
#: ``v3-levels-once`` removes the cause of the previous twin's zero level coefficients (model card): each vital's
#: level enters once, as the NEWS2 points of its latest value, instead of three near-copies (a 1-hour hinge, the
#: 4-hour time in range, correlation 0.77–0.91 on development windows, and the NEWS2 points) between which the
#: sign-constrained fit floored whichever partial effect came out negative.
_POINTS_ONLY: Final[tuple[str, ...]] = tuple(n for n in F.NOW_FEATURES if n != "news2_latest")
_LEVEL_COPIES: Final[tuple[str, ...]] = (
    "hr_above_90_1h", "hr_below_60_1h", "spo2_below_96_1h", "rr_above_20_1h", "rr_below_12_1h", "sbp_below_110",
    "temp_above_37_5", "spo2_below_95_min_4h", "hr_above_100_min_4h", "sbp_below_100_min_4h", "rr_above_20_min_4h",
    "temp_above_38_min_4h", "o2_l_min", "news2_latest")
VARIANTS: Final[dict[str, tuple[str, ...]]] = {
    "v2-trends": F.NOW_FEATURES,
    "v3-points": ("news2_latest",),
    "v3-aggregate": _POINTS_ONLY,
    "v3-all": (),
    "v3-levels-once": _LEVEL_COPIES,
}
SELECTION_TIE: Final[float] = 0.002
SELECTION_RULE: Final[str] = (
    "highest cross-fitted AUROC on eligible development (train + validation) windows; variants within "
    f"{SELECTION_TIE} of the best are tied and the tied variant with the fewest free features is shipped; "
    "stated before any PhysioNet 2012 set-A result was seen")
#: The alert threshold's target (module docstring, "Operating point").
ALERT_TARGET: Final[str] = (
    "catch at least as many first deterioration events (with at least 30 min lead, within 6 h) as NEWS2 >= 5 "
    "on the development patients, with the fewest twin alerts: the highest threshold on a 0.005 grid whose "
    "first-event sensitivity reaches NEWS2 >= 5's")
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


def standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, clip: float = Z_CLIP) -> np.ndarray:
    z = np.clip((x - mean) / scale, -clip, clip)
    z[np.isnan(z)] = 0.0
    return z


def fit_constrained(z: np.ndarray, y: np.ndarray, directions: np.ndarray, *, c_reg: float = 1.0,
                    sample_weight: np.ndarray | None = None, penalised: np.ndarray | None = None
                    ) -> tuple[np.ndarray, float]:
    """Sign-constrained, L2-penalised, class-balanced logistic regression on standardised features.

    Minimises ``Σ_i s_i · logloss_i + ||w||² / (2 C)`` (scikit-learn's objective for
    ``LogisticRegression(C, class_weight="balanced")``, intercept unpenalised) subject to ``w_j >= 0``
    where ``directions[j] = +1``, ``w_j <= 0`` where ``-1`` and no bound where ``0``, with L-BFGS-B
    from zero. The objective is divided by ``Σ s_i`` for conditioning (same minimiser). Deterministic.
    ``sample_weight`` (e.g. equal total weight per data source) multiplies each row's weight; the class balance is
    then taken over the weighted rows, and with no weights the fit is exactly the unweighted one. ``penalised``
    (boolean per column, default all) leaves columns such as per-source intercepts out of the L2 penalty.
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

    bounds = [(0.0, None) if d > 0 else (None, 0.0) if d < 0 else (None, None) for d in directions] + [(None, None)]
    res = minimize(objective, np.zeros(k + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 20_000, "maxcor": 30, "ftol": 1e-15, "gtol": 1e-10})
    if not res.success and "ABNORMAL" not in str(res.message).upper():
        raise RuntimeError(f"constrained logistic regression did not converge: {res.message}")
    w = np.asarray(res.x[:k], dtype=float)
    w = np.where(np.asarray(directions) > 0, np.maximum(w, 0.0), np.where(np.asarray(directions) < 0,
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


def train(windows: pd.DataFrame, events: pd.DataFrame, patients: pd.DataFrame, *, seed: int,
          cohort_fingerprint: dict, progress: Progress = _quiet, dataset: Dataset | None = None,
          variant: str | None = None, pooled: PooledFit | None = None) -> dict:
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
        w, b = _fit_free(standardise(x[dev], mean, scale), y[dev], directions, free)
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
    alert = alert_threshold(ds, fold >= 0, np.nan_to_num(oof_risk), seed=seed)
    progress(f"alert threshold ({ALERT_TARGET}): {alert['threshold']} (95 % interval {alert['threshold_ci']})")
    n_pat = {s: int(frame.loc[split == s, "patient_id"].nunique()) for s in ("train", "validation", "test")}
    body = {
        "format": ARTIFACT_FORMAT,
        "feature_names": list(F.FEATURE_NAMES),
        "features": [{"name": f.name, "unit": f.unit, "description": f.description, "direction": f.direction,
                      "reason": f.reason} for f in F.FEATURES],
        "directions": directions.tolist(),
        "scaler": {"mean": mean.tolist(), "scale": scale.tolist(), "clip": Z_CLIP},
        "coefficients": coef.tolist(),
        "intercept": float(intercept),
        "uncalibrated": {"coefficients": w.tolist(), "intercept": float(b)},
        "calibration": {"method": "platt-on-logit", "a": float(a), "c": float(c),
                        "fitted_on": f"cross-fitted logits of eligible development (train + validation) windows, "
                                     f"{CV_FOLDS} patient folds"},
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
        "operating_points": {"alert": alert, "match_news2_5": alert},
        "variants": selection,
        "library_versions": {"python": platform.python_version(), "numpy": np.__version__,
                             "pandas": pd.__version__, "scikit-learn": sklearn.__version__,
                             "scipy": scipy.__version__},
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    body["version"] = f"twin-3.{digest}"
    body["card"] = model_card(body)
    progress(f"done: version {body['version']}, test AUROC {metrics['test']['auroc']:.3f} "
             f"(NEWS2 {metrics['test']['news2_auroc']:.3f})")
    return body


def _fit_free(z: np.ndarray, y: np.ndarray, directions: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`fit_constrained` on the free columns only; the left-out features' coefficients are exactly 0."""
    w = np.zeros(z.shape[1])
    w_free, b = fit_constrained(z[:, free], y, directions[free], c_reg=C_REGULARISATION)
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
        w_k, b_k = _fit_free(standardise(x[fit_k], mean_k, scale_k), y[fit_k], directions, free)
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


def alert_threshold(ds: Dataset, patients_mask: np.ndarray, risk: np.ndarray, *, seed: int,
                    n_boot: int = THRESHOLD_BOOTSTRAP) -> dict[str, Any]:
    """The service's twin alert threshold from ``ALERT_TARGET`` on the given (development) patients."""
    twin_max, news_max = _first_event_maxima(ds, patients_mask, risk)
    if len(twin_max) == 0:
        return {"threshold": None, "target": ALERT_TARGET, "rule": "no observable development events"}
    target = float(np.mean(news_max >= 5))
    chosen = _highest_threshold(twin_max, target)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        i = rng.integers(0, len(twin_max), len(twin_max))
        draws.append(_highest_threshold(twin_max[i], float(np.mean(news_max[i] >= 5))))
    lo, hi = np.percentile(draws, [2.5, 97.5]) if draws else (math.nan, math.nan)
    frame = ds.frame
    mon = M.monitored(frame) & patients_mask
    sub = frame.loc[mon].reset_index(drop=True)
    days = len(sub) * 5 / 60 / 24
    twin_alerts = int(M.alerts(sub, risk[mon] >= chosen).sum())
    news_alerts = int(M.alerts(sub, sub["news2"].to_numpy() >= 5).sum())
    return {
        "threshold": chosen, "threshold_ci": [float(lo), float(hi)], "target": ALERT_TARGET,
        "rule": ALERT_TARGET + "; chosen on the cross-fitted risks of development (train + validation) patients",
        "first_events": len(twin_max), "news2_5_sensitivity": target,
        "twin_sensitivity": float(np.mean(twin_max >= chosen)),
        "twin_alerts_per_100_patient_days": round(100 * twin_alerts / days, 1) if days else None,
        "news2_5_alerts_per_100_patient_days": round(100 * news_alerts / days, 1) if days else None,
        "alert_counting": "lab.metrics.alerts (a new alert after an hour below), monitored development windows",
        "bootstrap": {"draws": n_boot, "resampled": "development first events (one per patient)", "seed": seed},
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
    "ALERT_TARGET", "CV_FOLDS", "SELECTION_RULE", "VARIANTS", "Dataset", "alert_threshold", "export_hgb",
    "fit_constrained", "fit_scaler", "fold_of", "matched_threshold", "prepare", "select_variant", "split_of",
    "standardise", "train", "train_challenger", "write_artifact", "write_json",
]
