"""Train the twin: windows → features and labels → patient-level split → standardised logistic
regression (``class_weight="balanced"``) → Platt calibration on the validation patients, folded into
the coefficients → a JSON artifact with its model card.

Split
    By patient, never by window: ``u = sha256(f"{seed}:{patient_id}")`` read as a fraction in [0, 1);
    ``u < 0.6`` train, ``u < 0.8`` validation, else test. The rule is stored in the artifact, so
    ``wardtwin evaluate`` on the training cohort finds the same test patients.
Calibration
    Balanced class weights inflate the raw risk; Platt scaling fits ``y ~ sigmoid(a·s + c)`` on the
    raw logit ``s = w·z + b`` of eligible validation windows. Since ``a·s + c = (a·w)·z + (a·b + c)``,
    the calibrated model is again linear in ``z``: ``a·w`` are the shipped coefficients and
    ``a·b + c`` the intercept, so contributions stay exact and add up to the calibrated logit.
Determinism
    Fixed seed, a deterministic solver, no wall clock; the artifact is written with sorted keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression

from models import evaluate as E
from models import features as F
from models import labels as L
from models import news2 as N
from models.twin import ARTIFACT_FORMAT

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
SPLIT_FRACTIONS: Final[tuple[float, float]] = (0.6, 0.8)
C_REGULARISATION: Final[float] = 1.0
#: Standardised values are winsorised at ±Z_CLIP SD (training and serving alike).
Z_CLIP: Final[float] = 4.0


def _quiet(_: str) -> None:
    return None


def split_of(patient_ids: pd.Series | np.ndarray | list[str], seed: int) -> np.ndarray:
    """"train" / "validation" / "test" per patient id (hash rule in the module docstring)."""
    out = []
    for pid in patient_ids:
        h = hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest()
        u = int(h[:13], 16) / 16**13
        out.append("train" if u < SPLIT_FRACTIONS[0] else "validation" if u < SPLIT_FRACTIONS[1] else "test")
    return np.asarray(out, dtype=object)


@dataclass
class Dataset:
    """Everything evaluation and training need, one row per window (aligned): features, labels, NEWS2."""

    frame: pd.DataFrame            # patient_id, window_end, FEATURES..., label, eligible, onset, news2 cols
    events: pd.DataFrame           # derived events (models.labels.events)
    patients: pd.DataFrame         # patient_id, age, sex, archetype
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
    return E.logistic_fit(s, y, iterations=iterations)


def fit_scaler(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    scale = np.nanstd(x, axis=0)
    scale = np.where(~np.isfinite(scale) | (scale < 1e-9), 1.0, scale)
    return mean, scale


def standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, clip: float = Z_CLIP) -> np.ndarray:
    z = np.clip((x - mean) / scale, -clip, clip)
    z[np.isnan(z)] = 0.0
    return z


def train(windows: pd.DataFrame, events: pd.DataFrame, patients: pd.DataFrame, *, seed: int,
          cohort_fingerprint: dict, progress: Progress = _quiet, dataset: Dataset | None = None) -> dict:
    """Train and calibrate the twin; returns the JSON artifact (a plain dict)."""
    ds = dataset if dataset is not None else prepare(windows, patients, events, progress=progress)
    frame = ds.frame
    split = split_of(frame["patient_id"].to_numpy(), seed)
    elig = frame["eligible"].to_numpy(bool)
    y = frame["label"].to_numpy(int)
    x = frame.loc[:, list(F.FEATURE_NAMES)].to_numpy(float)
    tr, va, te = (elig & (split == s) for s in ("train", "validation", "test"))
    if y[tr].min(initial=1) == y[tr].max(initial=0) or y[va].sum() == 0:
        raise ValueError("the training cohort needs deterioration events in both train and validation patients")

    progress(f"fit: {tr.sum()} train windows ({y[tr].sum()} positive), {va.sum()} validation, {te.sum()} test")
    mean, scale = fit_scaler(x[tr])
    z = standardise(x, mean, scale)
    model = LogisticRegression(C=C_REGULARISATION, class_weight="balanced", solver="lbfgs", max_iter=5000,
                               tol=1e-10, random_state=seed)
    model.fit(z[tr], y[tr])
    w = model.coef_[0].astype(float)
    b = float(model.intercept_[0])
    progress("calibrate (Platt, validation patients)")
    a, c = _platt(z[va] @ w + b, y[va])
    coef = a * w
    intercept = a * b + c

    logit = z @ coef + intercept
    risk = E.sigmoid(logit)
    metrics = {
        "test": E.summary(y[te], risk[te], frame["news2"].to_numpy(float)[te]),
        "validation": E.summary(y[va], risk[va], frame["news2"].to_numpy(float)[va]),
        "train": E.summary(y[tr], risk[tr], frame["news2"].to_numpy(float)[tr]),
    }
    matched = matched_threshold(ds, split == "validation", risk)
    progress(f"threshold matching NEWS2 >= 5 sensitivity on validation patients: {matched['threshold']}")
    n_pat = {s: int(frame.loc[split == s, "patient_id"].nunique()) for s in ("train", "validation", "test")}
    body = {
        "format": ARTIFACT_FORMAT,
        "feature_names": list(F.FEATURE_NAMES),
        "features": [{"name": f.name, "unit": f.unit, "description": f.description} for f in F.FEATURES],
        "scaler": {"mean": mean.tolist(), "scale": scale.tolist(), "clip": Z_CLIP},
        "coefficients": coef.tolist(),
        "intercept": float(intercept),
        "uncalibrated": {"coefficients": w.tolist(), "intercept": b},
        "calibration": {"method": "platt-on-logit", "a": float(a), "c": float(c),
                        "fitted_on": "eligible validation windows"},
        "estimator": {"kind": "LogisticRegression", "C": C_REGULARISATION, "class_weight": "balanced",
                      "solver": "lbfgs", "penalty": "l2"},
        "split": {"rule": "sha256(f'{seed}:{patient_id}') as a fraction: <0.6 train, <0.8 validation, else test",
                  "seed": seed, "patients": n_pat},
        "labels": {"horizon_h": L.HORIZON / pd.Timedelta(hours=1), "sustain_min": L.SUSTAIN / pd.Timedelta(minutes=1),
                   "merge_gap_h": L.MERGE_GAP / pd.Timedelta(hours=1),
                   "refractory_h": L.REFRACTORY / pd.Timedelta(hours=1)},
        "cohort": dict(cohort_fingerprint),
        "metrics": metrics,
        "operating_points": {"match_news2_5": matched},
        "library_versions": {"python": platform.python_version(), "numpy": np.__version__,
                             "pandas": pd.__version__, "scikit-learn": sklearn.__version__},
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    body["version"] = f"twin-1.{digest}"
    body["card"] = model_card(body)
    progress(f"done: version {body['version']}, test AUROC {metrics['test']['auroc']:.3f} "
             f"(NEWS2 {metrics['test']['news2_auroc']:.3f})")
    return body


def matched_threshold(ds: Dataset, patients_mask: np.ndarray, risk: np.ndarray) -> dict[str, Any]:
    """The highest twin threshold whose event sensitivity on the given patients reaches NEWS2 >= 5's there
    (a validation-set choice, so the test set never tunes it). None when there are no events."""
    frame = ds.frame
    mon = E.monitored(frame) & patients_mask
    sub = frame.loc[mon].reset_index(drop=True)
    events = ds.events[ds.events["patient_id"].isin(set(sub["patient_id"]))]
    news = E.operating_point(sub, events, sub["news2"].to_numpy() >= 5, L.HORIZON)
    target = news["sensitivity"]
    if target is None:
        return {"threshold": None, "news2_5_sensitivity": None, "rule": "no validation events"}
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
        return {"threshold": None, "news2_5_sensitivity": target, "rule": "no observable validation events"}
    need = math.ceil(target * len(best) - 1e-9)
    kth = sorted(best, reverse=True)[max(need, 1) - 1]
    chosen = math.floor(kth * 200) / 200  # 0.005 grid, rounded down so the sensitivity is reached
    achieved = float(np.mean(np.asarray(best) >= chosen))
    return {"threshold": chosen, "news2_5_sensitivity": target, "twin_sensitivity": achieved,
            "rule": "highest twin threshold on a 0.005 grid whose event sensitivity reaches NEWS2 >= 5's, "
                    "chosen on validation patients"}


def model_card(artifact: dict[str, Any]) -> dict[str, Any]:
    coefs = sorted(zip(artifact["feature_names"], artifact["coefficients"], strict=True), key=lambda t: -abs(t[1]))
    return {
        "name": "wardtwin deterioration twin",
        "intended_use": ("Decision support on general adult wards: a calibrated probability that a monitored "
                         "patient meets a deterioration criterion (HR > 120 or < 50 bpm, SBP < 90 mmHg, SpO2 < 90 %, "
                         "temperature > 39 °C, sustained) within the next 6 hours, shown beside NEWS2 with the "
                         "reasons in words. It prompts a nurse to look; it does not replace NEWS2 escalation."),
        "not_for": ["paediatric or obstetric patients", "ICU / level 2-3 care", "patients on SpO2 scale 2 targets",
                    "automated treatment decisions"],
        "cohort": artifact["cohort"],
        "features": [{"name": n, "coefficient": round(c, 4)} for n, c in coefs],
        "metrics_test": artifact["metrics"]["test"],
        "limitations": [
            "Trained and evaluated on simulated patients (wardtwin simulator), not on real ward data; "
            "performance on real patients is unknown until a prospective silent evaluation.",
            "The label is a vital-sign threshold crossing derived from the monitor itself, not a clinical outcome "
            "(ICU admission, cardiac arrest, death).",
            "Linear in its features: interactions the physiology has are only partly captured.",
            "Missing features are imputed with the training mean (zero contribution); a patient with few "
            "measurements looks average, not safe — check the 'not measured' lines.",
            "NEWS2 is computed from window aggregates with SpO2 scale 1 and no charted new confusion beyond ACVPU.",
        ],
    }


def render_model_card(artifact: dict[str, Any]) -> str:
    card = artifact["card"]
    m = artifact["metrics"]["test"]
    lines = [
        f"# Model card — {card['name']} `{artifact['version']}`", "",
        "_Generated from `twin.json` by `wardtwin train`; do not edit by hand._", "",
        "## Intended use", "", card["intended_use"], "", "Not for: " + "; ".join(card["not_for"]) + ".", "",
        "## Training cohort", "",
        *(f"- {k}: {v}" for k, v in sorted(artifact["cohort"].items())),
        f"- split: {artifact['split']['rule']} (seed {artifact['split']['seed']}; patients "
        f"{artifact['split']['patients']})", "",
        "## Model", "",
        f"Logistic regression on {len(artifact['feature_names'])} standardised features "
        f"(L2, C={artifact['estimator']['C']}, class_weight=balanced), Platt-calibrated on validation patients "
        f"(a={artifact['calibration']['a']:.4f}, c={artifact['calibration']['c']:.4f}) and folded into the "
        "coefficients, so each contribution is coefficient × standardised value and they add up to the logit.", "",
        "| feature | unit | coefficient (per SD) | description |", "|---|---|---|---|",
    ]
    units = {f["name"]: (f["unit"], f["description"]) for f in artifact["features"]}
    for name, coef in sorted(zip(artifact["feature_names"], artifact["coefficients"], strict=True),
                             key=lambda t: -abs(t[1])):
        lines.append(f"| `{name}` | {units[name][0]} | {coef:+.3f} | {units[name][1]} |")
    lines += ["", "## Test metrics (held-out patients of the training cohort, eligible windows)", "",
              "| metric | twin | NEWS2 |", "|---|---|---|",
              f"| AUROC | {m['auroc']:.3f} | {m['news2_auroc']:.3f} |",
              f"| AUPRC | {m['auprc']:.3f} | {m['news2_auprc']:.3f} |",
              f"| Brier | {m['brier']:.4f} | |",
              f"| calibration slope / intercept | {m['calibration_slope']:.2f} / {m['calibration_intercept']:.2f} | |",
              f"| windows / positives | {m['n']} / {m['positives']} | |", "",
              "See `reports/evaluation/` (`wardtwin evaluate`) for bootstrap intervals, operating points, lead "
              "times, subgroups and the challenger.", "", "## Limitations", "",
              *(f"- {x}" for x in card["limitations"]), ""]
    return "\n".join(lines)


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
    """HistGradientBoostingClassifier on the twin's train patients (same split), exported as JSON trees."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from models.twin import CHALLENGER_FORMAT

    frame = dataset.frame
    split = split_of(frame["patient_id"].to_numpy(), seed)
    elig = frame["eligible"].to_numpy(bool)
    tr = elig & (split == "train")
    x = frame.loc[:, list(F.FEATURE_NAMES)].to_numpy(float)
    y = frame["label"].to_numpy(int)
    progress(f"challenger: HistGradientBoostingClassifier on {tr.sum()} train windows")
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
    (p.parent / "MODEL_CARD.md").write_text(render_model_card(artifact), encoding="utf-8")
    return p


__all__ = ["Dataset", "export_hgb", "fit_scaler", "model_card", "prepare", "render_model_card", "split_of",
           "standardise", "train", "train_challenger", "write_artifact", "write_json"]
