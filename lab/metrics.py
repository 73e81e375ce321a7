"""Metrics for the twin and NEWS2: discrimination, calibration, patient-level bootstrap, alerts as a
nurse meets them (event sensitivity, PPV, lead time). Pure numpy / pandas / scikit-learn: no I/O, no model
loading; used by training (Platt scaling, the matched threshold) and by the evaluation report.

The honest evaluation (``wardtwin evaluate``) adds:

- :func:`first_event_point`: each patient's *first* ground-truth event counts once, detected only by a
  window at or above the threshold ending ``MIN_LEAD`` (30 min) to ``HORIZON`` (6 h) before onset;
- :func:`charted_news2`: NEWS2 as a nurse charts it, re-observed at the RCP 2017 chart-4 frequency of the last
  charted result (``models.news2.clinical_response(...).observe_within_min``) and carried forward between;
- :func:`patient_draws` / :func:`ratio_ci`: patient-bootstrap intervals of any ratio of per-patient sums;
- :func:`calibration_in_the_large`, :func:`net_benefit` and :func:`decision_curve`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.metrics import average_precision_score, roc_auc_score

from models import news2 as N
from models.labels import HORIZON, MIN_HISTORY


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


def patient_draws(patient_ids: np.ndarray, *, n: int, seed: int) -> np.ndarray:
    """``(n, n_patients)`` bootstrap counts: how often each of ``patient_ids`` (unique, in that order) is drawn
    in each of ``n`` resamples of patients with replacement."""
    k = len(patient_ids)
    rng = np.random.default_rng(seed)
    out = np.zeros((n, k))
    for i in range(n):
        out[i] = np.bincount(rng.integers(0, k, k), minlength=k) if k else out[i]
    return out


def bootstrap(y: np.ndarray, scores: dict[str, np.ndarray], patient: np.ndarray, *, n: int, seed: int,
              references: tuple[str, ...] = ("news2",), draws: tuple[np.ndarray, np.ndarray] | None = None
              ) -> dict[str, Any]:
    """Point estimates and patient-level (cluster) bootstrap 95 % intervals of AUROC and AUPRC, plus paired
    differences (AUROC and AUPRC) of every other score against each of ``references`` present in ``scores``
    (keys ``auroc_minus_<ref>``, ``auprc_minus_<ref>`` and their ``_ci``).

    ``draws``: ``(patient ids, counts)`` from :func:`patient_draws`, to share resamples with other intervals.
    """
    if draws is None:
        ids = pd.unique(pd.Series(patient))
        draws = (np.asarray(ids), patient_draws(np.asarray(ids), n=n, seed=seed))
    ids, counts_matrix = draws
    codes = pd.Index(ids).get_indexer(patient)
    n = len(counts_matrix)
    ranked = {k: _Ranked(y, s) for k, s in scores.items()}
    point = {k: r.metrics() for k, r in ranked.items()}
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in scores}
    for counts in counts_matrix:
        w = counts[codes]
        for k, r in ranked.items():
            samples[k].append(r.metrics(w))
    arrays = {k: np.asarray(samples[k]) if n else np.full((1, 2), np.nan) for k in scores}
    out: dict[str, Any] = {}
    for k in scores:
        arr = arrays[k]
        out[k] = {
            "auroc": _nan(point[k][0]), "auroc_ci": _ci(arr[:, 0]),
            "auprc": _nan(point[k][1]), "auprc_ci": _ci(arr[:, 1]),
        }
        for ref in references:
            if k == ref or ref not in scores or not n:
                continue
            for j, metric in enumerate(("auroc", "auprc")):
                out[k][f"{metric}_minus_{ref}"] = _nan(point[k][j] - point[ref][j])
                out[k][f"{metric}_minus_{ref}_ci"] = _ci(arr[:, j] - arrays[ref][:, j])
    return out


def ratio_ci(numerator: np.ndarray, denominator: np.ndarray, counts: np.ndarray) -> list[float | None]:
    """Patient-bootstrap percentile 95 % interval of ``Σ numerator / Σ denominator`` (per-patient arrays in the
    column order of ``counts`` from :func:`patient_draws`)."""
    if not len(counts):
        return [None, None]
    num = counts @ np.asarray(numerator, dtype=float)
    den = counts @ np.asarray(denominator, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _ci(np.where(den > 0, num / np.where(den > 0, den, 1), np.nan))


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


# --------------------------------------------------------------------------------------------
# The honest evaluation: first events, charted NEWS2, calibration in the large, net benefit.

#: A detection must come at least this long before onset to count (a warning with no time to act is none).
MIN_LEAD = pd.Timedelta(minutes=30)


def first_events(truth: pd.DataFrame) -> pd.DataFrame:
    """Each patient's first ground-truth event: ``patient_id, onset`` (UTC), one row per patient."""
    if truth is None or truth.empty:
        return pd.DataFrame({"patient_id": pd.Series([], dtype=object),
                             "onset": pd.Series([], dtype="datetime64[ns, UTC]")})
    t = truth.assign(onset=pd.to_datetime(truth["onset"], utc=True))
    return t.groupby("patient_id", sort=True, as_index=False)["onset"].min()


def first_event_point(frame: pd.DataFrame, first: pd.DataFrame, above: np.ndarray, *,
                      patient_days: pd.Series | None = None, horizon: pd.Timedelta = HORIZON,
                      min_lead: pd.Timedelta = MIN_LEAD) -> dict[str, Any]:
    """First-event sensitivity, lead time, model-side alerts per patient-day and PPV at one threshold.

    ``frame``: the windows a ward would alert on (``monitored``), ``patient_id, window_end``, sorted by patient
    and time; ``above`` (aligned): the score is at or above the threshold. ``first``: one ground-truth first
    event per patient (:func:`first_events`). ``patient_days``: per patient (index ``patient_id``), the
    denominator of alerts per patient-day (default: the patient's rows × 5 min).

    - An event *counts* when its patient has a window ending in ``[onset − horizon, onset − min_lead]``
      (``observable``); otherwise (onset in the first 1.5 h of monitoring) it is reported as ``unobservable``.
    - It is *detected* when such a window is at or above the threshold; the lead is onset minus the earliest.
      Repeat crossings never add events (one per patient); a window closer than ``min_lead`` never detects.
    - Alerts: :func:`alerts` (a new alert after an hour below; model-side, not the service's alert engine).
    - PPV: alerts raised before the patient's first event onset; *true* when that onset is ``min_lead`` to
      ``horizon`` after the alert; left out: alerts at or after onset (deterioration already under way) and
      alerts of event-free patients whose next ``horizon`` is not fully observed (censored).

    Also returns ``per_patient`` (a DataFrame, not JSON): the per-patient sums behind every ratio, for
    :func:`ratio_ci`.
    """
    pid = frame["patient_id"].to_numpy()
    ns = pd.DatetimeIndex(frame["window_end"]).as_unit("ns").asi8
    above = np.asarray(above, dtype=bool)
    new = alerts(frame, above)
    ids = pd.unique(pd.Series(pid))
    onset_by = {p: pd.Timestamp(o).value for p, o in zip(first["patient_id"], first["onset"], strict=True)}
    rows = []
    leads: list[float] = []
    hour = pd.Timedelta(hours=1).value
    bounds = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1], True]) if len(pid) else np.array([0])
    for a, b in itertools.pairwise(bounds):
        p = pid[a]
        t, up, nw = ns[a:b], above[a:b], new[a:b]
        onset = onset_by.get(p)
        considered = detected = 0
        lead = math.nan
        true_alerts = known_alerts = 0
        if onset is not None:
            inside = (t >= onset - horizon.value) & (t <= onset - min_lead.value)
            considered = int(inside.any())
            hit = inside & up
            if hit.any():
                detected = 1
                lead = (onset - int(t[hit].min())) / hour
                leads.append(lead)
            before = nw & (t < onset)
            known_alerts = int(before.sum())
            true_alerts = int((before & (t >= onset - horizon.value) & (t <= onset - min_lead.value)).sum())
        else:
            known_alerts = int((nw & (t + horizon.value <= t[-1])).sum())
        days = (b - a) * 5 / 1440 if patient_days is None else float(patient_days.get(p, (b - a) * 5 / 1440))
        rows.append((p, onset is not None, considered, detected, lead, int(nw.sum()), days, true_alerts,
                     known_alerts))
    per = pd.DataFrame(rows, columns=["patient_id", "has_event", "considered", "detected", "lead_h", "alerts",
                                      "days", "true_alerts", "known_alerts"]).set_index("patient_id")
    missing = set(onset_by) - set(ids)
    n_events = int(per["has_event"].sum()) + len(missing)
    considered, detected = int(per["considered"].sum()), int(per["detected"].sum())
    n_alerts, days = int(per["alerts"].sum()), float(per["days"].sum())
    known, true = int(per["known_alerts"].sum()), int(per["true_alerts"].sum())
    return {
        "first_events": n_events, "events": considered, "unobservable": n_events - considered,
        "detected": detected, "sensitivity": detected / considered if considered else None,
        "alerts": n_alerts, "alerts_per_patient_day": n_alerts / days if days else None,
        "ppv": true / known if known else None, "ppv_alerts": known,
        "median_lead_h": float(np.median(leads)) if leads else None,
        "lead_iqr_h": [float(np.percentile(leads, 25)), float(np.percentile(leads, 75))] if leads else [None, None],
        "lead_times_h": leads, "per_patient": per,
    }


def with_intervals(op: dict[str, Any], ids: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    """``op`` from :func:`first_event_point` with patient-bootstrap 95 % intervals (``*_ci``) of sensitivity,
    alerts per patient-day and PPV, and without its ``per_patient`` table (the JSON-ready form)."""
    per = op["per_patient"].reindex(ids).fillna(0)
    out = {k: v for k, v in op.items() if k != "per_patient"}
    out["sensitivity_ci"] = ratio_ci(per["detected"], per["considered"], counts)
    out["alerts_per_patient_day_ci"] = ratio_ci(per["alerts"], per["days"], counts)
    out["ppv_ci"] = ratio_ci(per["true_alerts"], per["known_alerts"], counts)
    return out


def _wait_table() -> np.ndarray:
    """``[single_parameter_3, total]`` → minutes to the next charted set, from the RCP chart-4 rows."""
    return np.array([[N.clinical_response(t, bool(s)).observe_within_min for t in range(N.MAX_TOTAL + 1)]
                     for s in (0, 1)])


def charted_news2(frame: pd.DataFrame) -> np.ndarray:
    """NEWS2 as a ward charts it: the total a nurse last charted, carried forward, per row.

    ``frame``: ``patient_id, window_end, news2`` and the ``news2_<parameter>`` points, sorted by patient and time.
    The nurse charts at the patient's first window, then again at the first window ending at or after the last
    charted time plus the RCP 2017 monitoring interval of the last charted result
    (``models.news2.clinical_response(total, any 3).observe_within_min``: 0 → 720 min, 1–4 → 360 (the upper
    bound of "every 4–6 h"), a 3 in one parameter or 5–6 → 60, ≥ 7 → 0, i.e. every window); each chart reads
    that window's values (its ``news2``).
    """
    total = frame["news2"].to_numpy(int)
    single3 = np.zeros(len(frame), dtype=bool)
    for k in N.PARAMETERS:
        col = f"news2_{k}"
        if col in frame:
            single3 |= frame[col].to_numpy(int) == 3
    wait_ns = _wait_table()[single3.astype(int), np.clip(total, 0, N.MAX_TOTAL)].astype("int64") * 60 * 10**9
    pid = frame["patient_id"].to_numpy()
    ns = pd.DatetimeIndex(frame["window_end"]).as_unit("ns").asi8
    out = np.empty(len(frame), dtype=float)
    bounds = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1], True]) if len(pid) else np.array([0])
    for a, b in itertools.pairwise(bounds):
        t = ns[a:b]
        i = 0
        while i < b - a:
            j = max(i + 1, int(np.searchsorted(t, t[i] + wait_ns[a + i], side="left")))
            out[a + i:a + j] = total[a + i]
            i = j
    return out


def calibration_in_the_large(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """Observed − expected event rate, and the calibration intercept with the slope fixed at 1 (logistic
    regression of ``y`` on offset ``logit p``; 0 is perfect, > 0 the model under-predicts)."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if not len(y):
        return {"observed": None, "expected": None, "observed_minus_expected": None, "intercept_slope_1": None}
    intercept = logistic_fit(logit(p), y, offset=True)[1] if len(np.unique(y)) == 2 else None
    return {"observed": float(y.mean()), "expected": float(p.mean()),
            "observed_minus_expected": float(y.mean() - p.mean()), "intercept_slope_1": intercept}


def net_benefit(y: np.ndarray, treat: np.ndarray, threshold: float) -> float:
    """Net benefit of treating (alerting on) ``treat`` at threshold probability ``threshold`` (Vickers & Elkin
    2006): ``TP/n − FP/n · pt/(1 − pt)``."""
    y = np.asarray(y, dtype=bool)
    treat = np.asarray(treat, dtype=bool)
    n = len(y)
    if not n:
        return math.nan
    tp = float(np.sum(treat & y))
    fp = float(np.sum(treat & ~y))
    return tp / n - fp / n * threshold / (1 - threshold)


DECISION_THRESHOLDS: tuple[float, ...] = tuple(float(x) for x in np.round(np.arange(0.01, 0.5001, 0.01), 2))


def decision_curve(y: np.ndarray, risk: np.ndarray, policies: dict[str, np.ndarray],
                   thresholds: tuple[float, ...] = DECISION_THRESHOLDS) -> dict[str, Any]:
    """Net benefit over threshold probabilities: the model (alert when ``risk >= pt``), treat all, treat none
    (always 0) and fixed policies (``policies``: name → boolean alert per row, e.g. NEWS2 >= 5)."""
    y = np.asarray(y, dtype=bool)
    out: dict[str, Any] = {"thresholds": list(thresholds),
                           "model": [net_benefit(y, risk >= t, t) for t in thresholds],
                           "treat_all": [net_benefit(y, np.ones(len(y), dtype=bool), t) for t in thresholds],
                           "treat_none": [0.0 for _ in thresholds]}
    for name, treat in policies.items():
        out[name] = [net_benefit(y, treat, t) for t in thresholds]
    return out


__all__ = ["DECISION_THRESHOLDS", "MIN_LEAD", "REARM_WINDOWS", "TRUTH_TOLERANCE", "alerts", "auprc", "auroc",
           "bootstrap", "calibration", "calibration_in_the_large", "charted_news2", "decision_curve",
           "expected_calibration_error", "first_event_point", "first_events", "logistic_fit", "logit", "match_truth",
           "monitored", "net_benefit", "operating_point", "patient_draws", "ratio_ci", "reliability", "summary",
           "with_intervals"]
