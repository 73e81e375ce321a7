"""``wardtwin calibrate``: refit the twin's calibration map on a site's own out-of-sample scores.

A twin trained elsewhere ranks a site's patients by the same weights, but its risks may be too high, too low or too
spread out for that site (issue 20: set A's slope was about 1.3). Logistic recalibration (Steyerberg, *Clinical
Prediction Models*, ch. 20) fits ``P(event) = expit(slope · logit + intercept)`` on the site's outcomes, where
``logit`` is the twin's logit as shipped, and keeps the weights: the artifact gains a ``site_calibration`` entry,
folded in at load by ``models.twin.Twin`` (every coefficient × slope, so the signs and the exact contributions
hold), while ``coefficients``, ``intercept`` and ``scaler`` stay byte-identical. The alert threshold is mapped
through the same monotone map, so the same windows alert as before (the alert budget is unchanged).

Input: a CSV with an ``outcome`` column (0/1) and either ``logit`` or ``risk`` (the twin's, scored by this very
artifact on patients it was not fitted on), optionally ``patient_id`` (bootstrap by patient; else by row).

Also :func:`calibration_report`: calibration slope, calibration-in-the-large and observed/expected with
patient-bootstrap 95 % intervals, used by training and the model card.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from scipy.special import expit

from lab import metrics as M
from lab.output import out as say

CALIBRATION_BOOTSTRAP: Final[int] = 200


class ScoresFileError(ValueError):
    """The scores CSV cannot be used; the message names the column or row."""


def damped_newton(theta: np.ndarray, nll: Callable[[np.ndarray], float], step_of: Callable[[np.ndarray], np.ndarray],
                  iterations: int, *, step_tol: float | None = None) -> np.ndarray:
    """Minimise ``nll`` from ``theta`` by the Newton steps ``step_of`` gives, each halved until ``nll`` does not rise;
    stops when no halving helps, when ``nll`` settles (and, with ``step_tol``, the step is that small), or after
    ``iterations``. Deterministic."""
    current = nll(theta)
    for _ in range(iterations):
        step = step_of(theta)
        t = 1.0
        while t > 1e-8:
            value = nll(theta + t * step)
            if value <= current + 1e-12:
                break
            t /= 2
        else:
            break
        theta, previous, current = theta + t * step, current, value
        if abs(previous - current) < 1e-12 * max(1.0, abs(current)) and (
                step_tol is None or np.max(np.abs(t * step)) < step_tol):
            break
    return theta


def weighted_logistic_fit(s: np.ndarray, y: np.ndarray, w: np.ndarray, *, offset: bool = False,
                          iterations: int = 50) -> tuple[float, float]:
    """``lab.metrics.logistic_fit`` with row weights (bootstrap counts): ``(a, c)`` of ``P(y) = expit(a·s + c)``,
    ``a`` fixed at 1 with ``offset``. Newton steps with step-halving; deterministic. Plain element-wise sums, not
    BLAS dot products, which crawl when their threads compete for busy cores."""

    def nll(th: np.ndarray) -> float:
        eta = th[0] * s + th[1]
        return float(np.sum(w * (np.logaddexp(0.0, eta) - y * eta)))

    def step_of(theta: np.ndarray) -> np.ndarray:
        q = expit(theta[0] * s + theta[1])
        r, h = w * (y - q), w * q * (1 - q)
        if offset:
            return np.array([0.0, float(r.sum()) / (float(h.sum()) + 1e-12)])
        hs = float(np.sum(h * s))
        hm = np.array([[float(np.sum(h * s * s)), hs], [hs, float(h.sum())]]) + 1e-12 * np.eye(2)
        return np.linalg.solve(hm, np.array([float(np.sum(r * s)), float(r.sum())]))

    theta = damped_newton(np.array([1.0, 0.0]), nll, step_of, iterations, step_tol=1e-10)
    return float(theta[0]), float(theta[1])


def calibration_report(y: np.ndarray, logit: np.ndarray, patient: np.ndarray | None = None, *,
                       n_boot: int = CALIBRATION_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """Calibration slope, intercept at slope 1 and observed / expected events with patient-bootstrap 95 % intervals.

    ``logit``: the model's logits (risk = expit(logit)); ``patient``: cluster ids for the bootstrap (rows when None).
    """
    y = np.asarray(y, dtype=float)
    s = np.asarray(logit, dtype=float)
    p = expit(s)

    def stats(w: np.ndarray | None) -> tuple[float, float, float]:
        ww = np.ones(len(y)) if w is None else w
        events = float(np.sum(ww * y))
        if events <= 0 or events >= ww.sum():
            return math.nan, math.nan, math.nan
        slope = weighted_logistic_fit(s, y, ww)[0]
        citl = weighted_logistic_fit(s, y, ww, offset=True)[1]
        return slope, citl, events / float(np.sum(ww * p))

    point = stats(None)
    ids, codes = np.unique(np.arange(len(y)) if patient is None else np.asarray(patient, dtype=object).astype(str),
                           return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        counts = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))
        draws.append(stats(counts[codes].astype(float)))
    arr = np.asarray(draws, dtype=float).reshape(-1, 3)

    def ci(j: int) -> list[float | None]:
        col = arr[:, j][np.isfinite(arr[:, j])]
        return [float(x) for x in np.percentile(col, [2.5, 97.5])] if len(col) else [None, None]

    def fin(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return {"n": len(y), "events": int(y.sum()), "observed": float(y.mean()) if len(y) else None,
            "expected": float(p.mean()) if len(y) else None,
            "calibration_slope": fin(point[0]), "calibration_slope_ci": ci(0),
            "intercept_slope_1": fin(point[1]), "intercept_slope_1_ci": ci(1),
            "observed_over_expected": fin(point[2]), "observed_over_expected_ci": ci(2),
            "bootstrap": {"draws": n_boot, "seed": seed,
                          "resampled": "rows" if patient is None else "patients"}}


def read_scores(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(outcome, logit, patient ids or None) from a scores CSV; a clear error naming the column or row otherwise."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ScoresFileError(f"{path}: cannot read a CSV ({exc})") from exc
    if "outcome" not in frame:
        raise ScoresFileError(f"{path}: needs an 'outcome' column (0/1); found {list(frame.columns)}")
    y = pd.to_numeric(frame["outcome"], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isin(y, (0.0, 1.0)))
    if len(bad):
        raise ScoresFileError(f"{path}: row {int(bad[0]) + 2}, column outcome: expected 0 or 1, got "
                              f"{frame['outcome'].iloc[bad[0]]!r}")
    if "logit" in frame:
        s = pd.to_numeric(frame["logit"], errors="coerce").to_numpy(float)
        column = "logit"
    elif "risk" in frame:
        r = pd.to_numeric(frame["risk"], errors="coerce").to_numpy(float)
        bad = np.flatnonzero(~((r > 0) & (r < 1)))
        if len(bad):
            raise ScoresFileError(f"{path}: row {int(bad[0]) + 2}, column risk: expected a probability strictly "
                                  f"between 0 and 1, got {frame['risk'].iloc[bad[0]]!r}")
        s = np.log(r) - np.log1p(-r)
        column = "risk"
    else:
        raise ScoresFileError(f"{path}: needs a 'logit' or a 'risk' column beside 'outcome'")
    bad = np.flatnonzero(~np.isfinite(s))
    if len(bad):
        raise ScoresFileError(f"{path}: row {int(bad[0]) + 2}, column {column}: not a finite number")
    if len(np.unique(y)) < 2:
        raise ScoresFileError(f"{path}: the outcomes need both events (1) and non-events (0)")
    patient = frame["patient_id"].astype(str).to_numpy() if "patient_id" in frame else None
    return y, s, patient


def recalibrate(artifact: dict[str, Any], y: np.ndarray, logit: np.ndarray, patient: np.ndarray | None = None, *,
                source: str = "", n_boot: int = CALIBRATION_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """A new artifact: ``artifact`` with its calibration map refitted on (outcome, logit as served by it).

    The map composes with one already present, so recalibrating a recalibrated artifact stays exact. Refuses a
    slope that is not positive (the scores would rank the site's patients backwards: do not use the twin there).
    """
    slope, shift = M.logistic_fit(logit, y)
    if not (slope > 0 and math.isfinite(slope) and math.isfinite(shift)):
        raise ScoresFileError(f"the fitted calibration slope is {slope:.3g}: the twin's scores do not rank this "
                              "site's outcomes in the right direction; recalibration cannot fix that")
    before = calibration_report(y, logit, patient, n_boot=n_boot, seed=seed)
    after = calibration_report(y, slope * logit + shift, patient, n_boot=n_boot, seed=seed)
    old = artifact.get("site_calibration") or {"slope": 1.0, "intercept": 0.0}
    total_slope = slope * float(old["slope"])
    total_shift = slope * float(old["intercept"]) + shift
    new = copy.deepcopy(artifact)
    new["site_calibration"] = {
        "slope": total_slope, "intercept": total_shift,
        "fitted": {"slope": slope, "intercept": shift, "on": source, "rows": len(y), "events": int(y.sum())},
        "before": before, "after": after,
        "rule": "logistic recalibration P = expit(slope · logit + intercept) on the site's out-of-sample scores; "
                "weights unchanged, folded in at load (models.twin)",
    }
    point = (new.get("operating_points") or {}).get("alert")
    if point and point.get("threshold") is not None:
        t = float(point.get("threshold_before_site_calibration", point["threshold"]))
        base_logit = math.log(t) - math.log1p(-t)
        point["threshold_before_site_calibration"] = t
        point["threshold"] = float(expit(total_slope * base_logit + total_shift))
    base = str(artifact["version"]).split("+site.")[0]
    digest = hashlib.sha256(json.dumps(new["site_calibration"], sort_keys=True).encode()).hexdigest()[:8]
    new["version"] = f"{base}+site.{digest}"
    return new


def calibrate(*, scores: Path, out: Path, artifact: Path | None, bootstrap: int) -> int:
    """``wardtwin calibrate``: refit intercept and slope on a site's scores; write the new artifact."""
    from models.twin import DEFAULT_ARTIFACT, Twin

    src = artifact or DEFAULT_ARTIFACT
    body = json.loads(Path(src).read_text(encoding="utf-8"))
    Twin.from_dict(body)  # refuse an artifact the service would refuse
    try:
        y, s, patient = read_scores(scores)
        new = recalibrate(body, y, s, patient, source=Path(scores).name, n_boot=bootstrap)
    except ScoresFileError as exc:
        say(f"wardtwin calibrate: {exc}")
        return 2
    Twin.from_dict(new)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(new, sort_keys=True, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    fit, b, a = new["site_calibration"]["fitted"], new["site_calibration"]["before"], \
        new["site_calibration"]["after"]
    say(f"fitted on {fit['rows']} rows ({fit['events']} events): slope {fit['slope']:.3f}, intercept "
        f"{fit['intercept']:+.3f} (weights unchanged)")
    say(f"calibration slope {b['calibration_slope']:.3f} → {a['calibration_slope']:.3f}; observed/expected "
        f"{b['observed_over_expected']:.3f} → {a['observed_over_expected']:.3f}")
    say(f"twin {new['version']} written to {out}")
    return 0


__all__ = ["CALIBRATION_BOOTSTRAP", "ScoresFileError", "calibrate", "calibration_report", "read_scores",
           "recalibrate", "weighted_logistic_fit"]
