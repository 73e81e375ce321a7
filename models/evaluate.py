"""Metrics for the twin and NEWS2 (pure numpy / scikit-learn); the full report is built by :func:`evaluate`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.exp(-np.logaddexp(0.0, -x))


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
        p = sigmoid(theta[0] * s + theta[1])
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
