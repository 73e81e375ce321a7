"""Metrics for the twin and NEWS2: discrimination, calibration, patient-level bootstrap, alerts as a
nurse meets them (event sensitivity, PPV, lead time). Pure numpy / pandas / scikit-learn: no I/O, no model
loading; used by training (Platt scaling, the matched threshold) and by the evaluation report."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.metrics import average_precision_score, roc_auc_score

from models.labels import MIN_HISTORY


def logit(p: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def logistic_fit(s: np.ndarray, y: np.ndarray, *, offset: bool = False, iterations: int = 100) -> tuple[float, float]:
    """ML fit of ``P(y) = sigmoid(a·s + c)`` (Newton, step-halving); with ``offset`` a is fixed at 1.

    Returns ``(a, c)``. Deterministic; used for Platt scaling and for calibration slope/intercept.
    """
    s = np.asarray(s, dtype=float)
    y = np.asarray(y, dtype=float)
    theta = np.array([1.0, 0.0])

    def nll(th: np.ndarray) -> float:
        eta = th[0] * s + th[1]
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta))

    current = nll(theta)
    for _ in range(iterations):
        p = expit(theta[0] * s + theta[1])
        r = y - p
        wgt = p * (1 - p)
        if offset:
            h = float(np.sum(wgt)) + 1e-12
            step = np.array([0.0, float(np.sum(r)) / h])
        else:
            g = np.array([np.sum(r * s), np.sum(r)])
            hm = np.array([[np.sum(wgt * s * s), np.sum(wgt * s)], [np.sum(wgt * s), np.sum(wgt)]]) + 1e-12 * np.eye(2)
            step = np.linalg.solve(hm, g)
        t = 1.0
        while t > 1e-8:
            cand = theta + t * step
            value = nll(cand)
            if value <= current + 1e-12:
                break
            t /= 2
        else:
            break
        theta, previous, current = cand, current, value
        if abs(previous - current) < 1e-12 * max(1.0, abs(current)) and np.max(np.abs(t * step)) < 1e-10:
            break
    return float(theta[0]), float(theta[1])


def _safe(fn, *args, **kwargs) -> float | None:  # type: ignore[no-untyped-def]
    try:
        v = float(fn(*args, **kwargs))
    except ValueError:
        return None
    return None if math.isnan(v) else v


def auroc(y: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    return _safe(roc_auc_score, y, score, sample_weight=weight)


def auprc(y: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    return _safe(average_precision_score, y, score, sample_weight=weight)


def calibration(y: np.ndarray, p: np.ndarray) -> tuple[float | None, float | None]:
    """Calibration slope (logistic regression of y on logit p) and intercept (calibration-in-the-large)."""
    if len(np.unique(y)) < 2:
        return None, None
    lp = logit(p)
    slope, _ = logistic_fit(lp, y)
    _, intercept = logistic_fit(lp, y, offset=True)
    return slope, intercept


def summary(y: np.ndarray, risk: np.ndarray, news2: np.ndarray) -> dict[str, Any]:
    y = np.asarray(y, dtype=int)
    slope, intercept = calibration(y, risk)
    return {
        "n": len(y), "positives": int(y.sum()),
        "auroc": auroc(y, risk), "auprc": auprc(y, risk),
        "brier": float(np.mean((risk - y) ** 2)) if len(y) else None,
        "calibration_slope": slope, "calibration_intercept": intercept,
        "news2_auroc": auroc(y, news2), "news2_auprc": auprc(y, news2),
    }


# --------------------------------------------------------------------------------------------
# Fast weighted AUROC / AUPRC for the patient-level bootstrap (tie groups computed once per score).


class _Ranked:
    """A score vector sorted once; AUROC and average precision for any window weights in O(n)."""

    def __init__(self, y: np.ndarray, score: np.ndarray) -> None:
        order = np.argsort(-score, kind="mergesort")
        s = score[order]
        self.order = order
        self.group = np.r_[0, np.cumsum(s[1:] != s[:-1])]
        self.n_groups = int(self.group[-1]) + 1 if len(s) else 0
        self.y = y[order].astype(float)

    def metrics(self, weight: np.ndarray | None = None) -> tuple[float, float]:
        w = np.ones(len(self.y)) if weight is None else weight[self.order]
        pos = np.bincount(self.group, weights=w * self.y, minlength=self.n_groups)
        neg = np.bincount(self.group, weights=w * (1 - self.y), minlength=self.n_groups)
        p, n = pos.sum(), neg.sum()
        if p <= 0 or n <= 0:
            return math.nan, math.nan
        neg_above = np.cumsum(neg) - neg  # negatives scored strictly higher (groups are descending)
        auc = 1.0 - float(np.sum(pos * (neg_above + 0.5 * neg))) / (p * n)
        tp, fp = np.cumsum(pos), np.cumsum(neg)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        ap = float(np.sum(pos / p * precision))
        return auc, ap


def bootstrap(y: np.ndarray, scores: dict[str, np.ndarray], patient: np.ndarray, *, n: int, seed: int
              ) -> dict[str, Any]:
    """Point estimates and patient-level (cluster) bootstrap 95 % intervals of AUROC and AUPRC, plus
    paired differences against ``"news2"`` when present."""
    codes, _ = pd.factorize(patient)
    n_pat = int(codes.max()) + 1 if len(codes) else 0
    ranked = {k: _Ranked(y, s) for k, s in scores.items()}
    point = {k: r.metrics() for k, r in ranked.items()}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[tuple[float, float]]] = {k: [] for k in scores}
    for _ in range(n):
        counts = np.bincount(rng.integers(0, n_pat, n_pat), minlength=n_pat).astype(float)
        w = counts[codes]
        for k, r in ranked.items():
            draws[k].append(r.metrics(w))
    out: dict[str, Any] = {}
    for k in scores:
        arr = np.asarray(draws[k]) if n else np.full((1, 2), np.nan)
        out[k] = {
            "auroc": _nan(point[k][0]), "auroc_ci": _ci(arr[:, 0]),
            "auprc": _nan(point[k][1]), "auprc_ci": _ci(arr[:, 1]),
        }
        if k != "news2" and "news2" in scores and n:
            diff = arr[:, 0] - np.asarray(draws["news2"])[:, 0]
            out[k]["auroc_minus_news2"] = _nan(point[k][0] - point["news2"][0])
            out[k]["auroc_minus_news2_ci"] = _ci(diff)
    return out


def _nan(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _ci(a: np.ndarray) -> list[float | None]:
    a = a[np.isfinite(a)]
    if len(a) == 0:
        return [None, None]
    lo, hi = np.percentile(a, [2.5, 97.5])
    return [float(lo), float(hi)]


# --------------------------------------------------------------------------------------------
# Alerts as a nurse meets them, event sensitivity, PPV, lead time.

#: A new alert is raised at a monitored window whose score is at or above the threshold when none of
#: the patient's previous 12 monitored windows (1 hour) was: an alert is re-armed after an hour below.
REARM_WINDOWS = 12


def alerts(frame: pd.DataFrame, above: np.ndarray) -> np.ndarray:
    """Boolean per row (rows sorted by patient, window_end; only monitored windows): a new alert here."""
    s = pd.Series(above.astype(float))
    prev = s.groupby(frame["patient_id"].to_numpy(), sort=False).transform(
        lambda x: x.shift(1).rolling(REARM_WINDOWS, min_periods=1).max())
    return above & ~(prev.fillna(0.0).to_numpy() > 0)


def operating_point(frame: pd.DataFrame, events: pd.DataFrame, above: np.ndarray, horizon: pd.Timedelta
                    ) -> dict[str, Any]:
    """Sensitivity for events, PPV of alerts, alerts per patient-day and lead times at one threshold.

    ``frame``: monitored windows (patient_id, window_end, eligible, label), sorted by patient and time.
    ``events``: the events to detect: onset of each, for the patients in ``frame``.
    An event is *detected* when some eligible window ending in ``[onset - horizon, onset]`` is at or above
    the threshold; its lead time is ``onset`` minus the earliest such window end. An alert is *true* when an
    event begins within ``horizon`` after it; alerts with neither an event nor the full horizon observed
    (censored) are left out of PPV.
    """
    new = alerts(frame, above)
    elig = frame["eligible"].to_numpy(bool)
    days = len(frame) * 5 / 1440
    ns = pd.DatetimeIndex(frame["window_end"]).as_unit("ns").asi8
    hits = pd.DataFrame({"patient_id": frame["patient_id"].to_numpy(), "t": ns})[elig & above]
    leads: list[float] = []
    detected = 0
    considered = 0
    by_patient = {p: g["t"].to_numpy() for p, g in hits.groupby("patient_id", sort=False)}
    observable = pd.DataFrame({"patient_id": frame["patient_id"].to_numpy(), "t": ns})[elig]
    obs_by_patient = {p: g["t"].to_numpy() for p, g in observable.groupby("patient_id", sort=False)}
    hour = pd.Timedelta(hours=1).value
    for ev in events.itertuples(index=False):
        onset = pd.Timestamp(ev.onset).value
        lo = onset - horizon.value
        obs = obs_by_patient.get(ev.patient_id)
        if obs is None or not np.any((obs >= lo) & (obs <= onset)):
            continue
        considered += 1
        t = by_patient.get(ev.patient_id)
        if t is None:
            continue
        inside = t[(t >= lo) & (t <= onset)]
        if len(inside):
            detected += 1
            leads.append((onset - int(inside.min())) / hour)
    alert_rows = frame.loc[new]
    true_alert = alert_rows["label"].to_numpy(int) == 1
    known = true_alert | alert_rows["eligible"].to_numpy(bool)
    n_alerts = int(new.sum())
    return {
        "events": considered, "detected": detected,
        "sensitivity": detected / considered if considered else None,
        "alerts": n_alerts, "alerts_per_patient_day": n_alerts / days if days else None,
        "ppv": float(true_alert.sum() / known.sum()) if known.sum() else None,
        "median_lead_h": float(np.median(leads)) if leads else None,
        "lead_iqr_h": [float(np.percentile(leads, 25)), float(np.percentile(leads, 75))] if leads else [None, None],
        "lead_times_h": leads,
    }


def monitored(frame: pd.DataFrame) -> np.ndarray:
    """Windows a ward would score and alert on: not within an event or its refractory hour, and at least
    ``models.labels.MIN_HISTORY`` of history. ``frame`` sorted by patient and window end."""
    first = frame.groupby("patient_id", sort=False)["window_end"].transform("min")
    age = frame["window_end"] - first + pd.Timedelta(minutes=5)
    return (~frame["in_event"].to_numpy(bool)) & (age >= MIN_HISTORY).to_numpy(bool)


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Reliability table on fixed-width risk bins (0–0.1, …, 0.9–1)."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
                        "mean_predicted": float(p[m].mean()), "observed": float(y[m].mean())})
    return out


def expected_calibration_error(table: list[dict[str, float]]) -> float | None:
    """Expected calibration error: the window-weighted mean |observed − mean predicted| over the bins."""
    n = sum(r["n"] for r in table)
    if not n:
        return None
    return float(sum(r["n"] * abs(r["observed"] - r["mean_predicted"]) for r in table) / n)


TRUTH_TOLERANCE = pd.Timedelta(hours=1)


def match_truth(derived: pd.DataFrame, truth: pd.DataFrame, tolerance: pd.Timedelta = TRUTH_TOLERANCE
                ) -> dict[str, Any]:
    """Cross-check derived events against the simulator's ground truth (per patient, onsets within ±1 h)."""
    if truth is None or truth.empty:
        return {"truth_events": 0, "derived_events": len(derived), "note": "no ground-truth events given"}
    truth = truth.assign(onset=pd.to_datetime(truth["onset"], utc=True))
    matched_truth, diffs = 0, []
    used: set[int] = set()
    d_by = {p: g for p, g in derived.reset_index(drop=True).reset_index().groupby("patient_id")}
    for ev in truth.itertuples(index=False):
        g = d_by.get(ev.patient_id)
        if g is None:
            continue
        delta = (g["onset"] - ev.onset).abs()
        j = int(delta.idxmin())
        if delta.loc[j] <= tolerance:
            matched_truth += 1
            used.add(int(g.loc[j, "index"]))
            diffs.append(float((g.loc[j, "onset"] - ev.onset) / pd.Timedelta(minutes=1)))
    return {
        "truth_events": len(truth), "derived_events": len(derived),
        "truth_found_by_rule": matched_truth / len(truth) if len(truth) else None,
        "derived_matching_truth": len(used) / len(derived) if len(derived) else None,
        "median_onset_difference_min": float(np.median(diffs)) if diffs else None,
        "tolerance_h": tolerance / pd.Timedelta(hours=1),
    }


__all__ = ["REARM_WINDOWS", "TRUTH_TOLERANCE", "alerts", "auprc", "auroc", "bootstrap", "calibration",
           "expected_calibration_error", "logistic_fit", "logit", "match_truth", "monitored", "operating_point",
           "reliability", "summary"]
