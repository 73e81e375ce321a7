"""Metrics for the twin and NEWS2 (pure numpy / scikit-learn); the full report is built by :func:`evaluate`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
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
    from models.labels import MIN_HISTORY

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


# --------------------------------------------------------------------------------------------
# The report.

AGE_BANDS: tuple[tuple[str, int, int], ...] = (("18-49", 0, 50), ("50-69", 50, 70), ("70+", 70, 200))
OPERATING_POINTS: tuple[tuple[str, str, float], ...] = (
    ("twin >= 0.7", "twin", 0.7), ("NEWS2 >= 5", "news2", 5), ("NEWS2 >= 7", "news2", 7),
    ("challenger >= 0.7", "challenger", 0.7), ("twin >= 0.5", "twin", 0.5), ("twin >= 0.3", "twin", 0.3),
)


def _quiet(_: str) -> None:
    return None


def _same_cohort(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("seed", "n_patients", "hours", "simulator_version", "start")
    return all(a.get(k) == b.get(k) for k in keys)


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


def evaluate(twin: Any, dataset: Any, *, cohort_fingerprint: dict[str, Any], challenger_path: Any = None,
             n_bootstrap: int = 200, seed: int = 0, progress: Any = _quiet) -> dict[str, Any]:
    """Twin vs NEWS2 (and the challenger) on held-out patients; returns the JSON report (plain data)."""
    from models.train import split_of
    from models.twin import Challenger

    frame = dataset.frame
    art = twin.artifact
    if _same_cohort(cohort_fingerprint, art.get("cohort", {})):
        split = split_of(frame["patient_id"].to_numpy(), art["split"]["seed"])
        frame = frame[split == "test"]
        scope = "test patients of the training cohort (patient-level split)"
    else:
        scope = "an independent cohort: no patient was used for training or calibration"
    frame = frame.sort_values(["patient_id", "window_end"], kind="mergesort").reset_index(drop=True)
    from models.labels import HORIZON

    is_monitored = monitored(frame)
    progress(f"scoring {len(frame)} windows of {frame['patient_id'].nunique()} patients ({scope})")

    # Every scored window: contributions + intercept == logit (the TwinScore objects themselves).
    max_err = 0.0
    for lo in range(0, len(frame), 20_000):
        for s in twin.score(frame.iloc[lo:lo + 20_000], explain=False):
            max_err = max(max_err, abs(s.intercept + sum(c.points for c in s.contributions) - s.logit))
    if max_err > 1e-9:
        raise AssertionError(f"contributions do not add up to the logit (max error {max_err:.3g})")
    risk = twin.risk(frame)
    scores = {"twin": risk, "news2": frame["news2"].to_numpy(float)}
    challenger = None
    if challenger_path is not None:
        challenger = Challenger.load(challenger_path)
        scores["challenger"] = challenger.risk(frame)
    elig = frame["eligible"].to_numpy(bool)
    y = frame["label"].to_numpy(int)
    pids = frame["patient_id"].to_numpy()
    progress(f"bootstrap: {n_bootstrap} patient-level resamples")
    disc = bootstrap(y[elig], {k: v[elig] for k, v in scores.items()}, pids[elig], n=n_bootstrap, seed=seed)
    cal: dict[str, Any] = {}
    for k in ("twin", "challenger"):
        if k in scores:
            p = scores[k][elig]
            slope, intercept = calibration(y[elig], p)
            rel = reliability(y[elig], p)
            cal[k] = {"brier": float(np.mean((p - y[elig]) ** 2)), "calibration_slope": slope,
                      "calibration_intercept": intercept, "reliability": rel,
                      "ece": expected_calibration_error(rel), "mean_predicted": float(p.mean()) if len(p) else None}
    cal["prevalence"] = float(y[elig].mean()) if elig.any() else None

    progress("operating points, lead times, subgroups")
    ids = set(frame["patient_id"])
    events = dataset.events[dataset.events["patient_id"].isin(ids)]
    mon = frame.loc[is_monitored].reset_index(drop=True)
    ops: dict[str, Any] = {}
    points = list(OPERATING_POINTS)
    matched = (art.get("operating_points") or {}).get("match_news2_5", {}).get("threshold")
    if matched is not None:
        points.insert(1, (f"twin >= {matched:g} (matched)", "twin", matched))
    for name, key, thr in points:
        if key in scores:
            ops[name] = operating_point(mon, events, scores[key][is_monitored] >= thr, HORIZON)

    patients = dataset.patients.set_index("patient_id") if "patient_id" in dataset.patients else pd.DataFrame()
    groups: dict[str, np.ndarray] = {}
    if "sex" in patients:
        sex = patients["sex"].reindex(pids).to_numpy()
        for v in sorted({str(x) for x in sex if isinstance(x, str)}):
            groups[f"sex={v}"] = sex == v
    if "age" in patients:
        age = patients["age"].reindex(pids).to_numpy(float)
        for label, lo, hi in AGE_BANDS:
            groups[f"age {label}"] = (age >= lo) & (age < hi)
    sub: dict[str, Any] = {}
    for g, m in groups.items():
        me, mm = m & elig, m[is_monitored]
        gids = set(pids[m])
        gev = events[events["patient_id"].isin(gids)]
        gm = mon.loc[mm].reset_index(drop=True)
        row = {"patients": len(gids), "windows": int(me.sum()), "positives": int(y[me].sum()),
               "twin_auroc": auroc(y[me], risk[me]), "news2_auroc": auroc(y[me], scores["news2"][me]),
               "twin_brier": float(np.mean((risk[me] - y[me]) ** 2)) if me.any() else None}
        group_points = list(OPERATING_POINTS[:2])
        if matched is not None:
            group_points.append(("twin matched", "twin", matched))
        for name, key, thr in group_points:
            op = operating_point(gm, gev, scores[key][is_monitored][mm] >= thr, HORIZON)
            row[f"{name} sensitivity"] = op["sensitivity"]
            row[f"{name} alerts/patient-day"] = op["alerts_per_patient_day"]
        sub[g] = row

    curves = {}
    from sklearn.metrics import roc_curve

    for k, v in scores.items():
        if len(np.unique(y[elig])) == 2:
            fpr, tpr, _ = roc_curve(y[elig], v[elig])
            keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 400)).astype(int))
            curves[k] = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}

    t, n2 = disc["twin"], disc["news2"]
    twin_op, news_op = ops["twin >= 0.7"], ops["NEWS2 >= 5"]
    matched_name = f"twin >= {matched:g} (matched)" if matched is not None else None
    matched_op = ops.get(matched_name) if matched_name else None
    goals = {
        "auroc_margin_over_news2": (t["auroc"] - n2["auroc"]) if t["auroc"] is not None and n2["auroc"] is not None
        else None,
        "auroc_at_least_0.05_above_news2": bool(t["auroc"] is not None and n2["auroc"] is not None
                                                and t["auroc"] - n2["auroc"] >= 0.05),
        "calibration_slope_in_0.9_1.1": bool(cal["twin"]["calibration_slope"] is not None
                                             and 0.9 <= cal["twin"]["calibration_slope"] <= 1.1),
        "fewer_alerts_than_news2_5_at_equal_or_better_sensitivity": bool(
            twin_op["sensitivity"] is not None and news_op["sensitivity"] is not None
            and twin_op["alerts_per_patient_day"] < news_op["alerts_per_patient_day"]
            and twin_op["sensitivity"] >= news_op["sensitivity"]),
        "matched_threshold_fewer_alerts_at_equal_or_better_sensitivity": bool(
            matched_op is not None and matched_op["sensitivity"] is not None and news_op["sensitivity"] is not None
            and matched_op["alerts_per_patient_day"] < news_op["alerts_per_patient_day"]
            and matched_op["sensitivity"] >= news_op["sensitivity"]),
    }
    notes = operating_notes(ops, news_op, twin_op, matched_name)
    patient_days = float(len(frame) * 5 / 1440)
    return {
        "scope": scope, "twin_version": twin.version,
        "challenger_version": challenger.version if challenger else None,
        "cohort": cohort_fingerprint, "training_cohort": art.get("cohort"),
        "patients": len(ids), "patient_days": patient_days,
        "monitored_patient_days": float(is_monitored.sum() * 5 / 1440),
        "eligible_windows": int(elig.sum()), "positive_windows": int(y[elig].sum()), "events": len(events),
        "events_per_patient_day": len(events) / patient_days if patient_days else None,
        "discrimination": disc, "calibration": cal, "operating_points": ops, "subgroups": sub, "goals": goals,
        "notes": notes,
        "contributions_check": {"windows": len(frame), "max_abs_error": max_err, "tolerance": 1e-9},
        "event_rule_vs_simulator_truth": match_truth(events, dataset.truth[dataset.truth["patient_id"].isin(ids)]
                                                     if len(dataset.truth) else dataset.truth),
        "rules": {
            "alert": f"a new alert when the score reaches the threshold and none of the previous {REARM_WINDOWS} "
                     "monitored windows (1 h) did; monitored = not within an event or its 1 h refractory, >= 1 h "
                     "of history",
            "sensitivity": "an event counts as detected when any eligible window ending in the 6 h before onset "
                           "(inclusive) is at or above the threshold; only events with such a window count",
            "ppv": "share of new alerts followed by an event onset within 6 h (censored alerts left out)",
            "lead_time": "event onset minus the earliest eligible window end at or above the threshold in the "
                         "6 h before it",
            "bootstrap": f"{n_bootstrap} resamples of patients (cluster bootstrap), percentile 95 % intervals",
        },
        "curves": curves,
    }


def operating_notes(ops: dict[str, Any], news: dict[str, Any], twin: dict[str, Any], matched: str | None
                    ) -> list[str]:
    """Plain-language statements of how the twin's operating points compare with NEWS2 >= 5 (numbers only)."""

    def fmt(op: dict[str, Any]) -> str:
        return (f"sensitivity {_f(op['sensitivity'], '.2f')} ({op['detected']}/{op['events']} events), "
                f"PPV {_f(op['ppv'], '.2f')}, {_f(op['alerts_per_patient_day'], '.2f')} alerts/patient-day, "
                f"median lead {_f(op['median_lead_h'], '.1f')} h")

    out = [f"NEWS2 >= 5: {fmt(news)}.", f"twin >= 0.7 (the service's default alert threshold): {fmt(twin)}."]
    if matched is not None and matched in ops:
        m = ops[matched]
        out.append(f"{matched} (chosen on development patients to match NEWS2 >= 5's sensitivity there): {fmt(m)}.")
        if m["sensitivity"] is not None and news["sensitivity"] is not None:
            if m["sensitivity"] >= news["sensitivity"] and m["alerts_per_patient_day"] < news["alerts_per_patient_day"]:
                out.append("At the matched threshold the twin reaches NEWS2 >= 5's sensitivity with fewer alerts.")
            else:
                out.append(
                    "At the matched threshold the twin does not reach NEWS2 >= 5's sensitivity with fewer alerts "
                    f"on these patients (sensitivity {m['sensitivity']:.2f} vs {news['sensitivity']:.2f}; "
                    f"{m['alerts_per_patient_day']:.2f} vs {news['alerts_per_patient_day']:.2f} alerts/patient-day).")
    dense = {k: v for k, v in ops.items() if k.startswith("twin") and v["sensitivity"] is not None}
    if dense:
        best = max(dense.items(), key=lambda kv: kv[1]["sensitivity"])
        out.append(f"Highest twin sensitivity among the reported thresholds: {best[0]} with {fmt(best[1])}.")
    return out


def _f(x: Any, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def format_table(report: dict[str, Any]) -> str:
    d, c, o = report["discrimination"], report["calibration"], report["operating_points"]
    lines = [
        f"Evaluation of {report['twin_version']} on {report['patients']} patients "
        f"({report['patient_days']:.1f} patient-days; {report['scope']})",
        f"eligible windows {report['eligible_windows']} (positive {report['positive_windows']}, prevalence "
        f"{_f(c['prevalence'])}), events {report['events']}",
        "",
        f"{'model':<12} {'AUROC (95% CI)':<24} {'AUPRC (95% CI)':<24} {'Brier':>7} {'slope':>6} {'intercept':>9} "
        f"{'ECE':>7}",
    ]
    for k in ("twin", "news2", "challenger"):
        if k in d:
            m = d[k]
            cc = c.get(k, {})
            lines.append(f"{k:<12} {_f(m['auroc'])} ({_f(m['auroc_ci'][0])}–{_f(m['auroc_ci'][1])})    "
                         f"{_f(m['auprc'])} ({_f(m['auprc_ci'][0])}–{_f(m['auprc_ci'][1])})    "
                         f"{_f(cc.get('brier'), '.4f'):>7} {_f(cc.get('calibration_slope'), '.2f'):>6} "
                         f"{_f(cc.get('calibration_intercept'), '.2f'):>9} {_f(cc.get('ece'), '.4f'):>7}")
    t = d["twin"]
    if "auroc_minus_news2" in t:
        lines.append(f"twin − NEWS2 AUROC: {_f(t['auroc_minus_news2'])} "
                     f"({_f(t['auroc_minus_news2_ci'][0])}–{_f(t['auroc_minus_news2_ci'][1])})")
    lines += ["", f"{'operating point':<26} {'sensitivity':>14} {'PPV':>6} {'alerts/pt-day':>14} "
                  f"{'median lead h':>14} {'alerts':>7}"]
    for name, op in o.items():
        sens = f"{_f(op['sensitivity'], '.2f')} ({op['detected']}/{op['events']})"
        lines.append(f"{name:<26} {sens:>14} {_f(op['ppv'], '.2f'):>6} {_f(op['alerts_per_patient_day'], '.3f'):>14} "
                     f"{_f(op['median_lead_h'], '.1f'):>14} {op['alerts']:>7}")
    lines += ["", f"{'subgroup':<12} {'patients':>8} {'positives':>9} {'twin AUROC':>10} {'NEWS2 AUROC':>11} "
                  f"{'twin sens':>9} {'N2>=5 sens':>10} {'twin al/d':>9} {'N2>=5 al/d':>10} {'match sens':>10} "
                  f"{'match al/d':>10}"]
    for g, r in report["subgroups"].items():
        lines.append(f"{g:<12} {r['patients']:>8} {r['positives']:>9} {_f(r['twin_auroc']):>10} "
                     f"{_f(r['news2_auroc']):>11} {_f(r['twin >= 0.7 sensitivity'], '.2f'):>9} "
                     f"{_f(r['NEWS2 >= 5 sensitivity'], '.2f'):>10} {_f(r['twin >= 0.7 alerts/patient-day']):>9} "
                     f"{_f(r['NEWS2 >= 5 alerts/patient-day']):>10} {_f(r.get('twin matched sensitivity'), '.2f'):>10} "
                     f"{_f(r.get('twin matched alerts/patient-day')):>10}")
    g = report["goals"]
    cc = report["contributions_check"]
    tr = report["event_rule_vs_simulator_truth"]
    lines += ["", *report.get("notes", [])]
    lines += ["", "goals: " + "; ".join(f"{k}={v if not isinstance(v, float) else format(v, '+.3f')}"
                                          for k, v in g.items()),
              f"contributions + intercept = logit on {cc['windows']} windows (max error {cc['max_abs_error']:.2e})",
              "event rule vs simulator truth: " + ", ".join(f"{k}={v if not isinstance(v, float) else format(v, '.3f')}"
                                                             for k, v in tr.items())]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: Any) -> None:
    """report.json, roc.png, calibration.png, lead_time.png and index.html in ``out``."""
    import json
    from html import escape
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, sort_keys=True, indent=1, allow_nan=False) + "\n",
                                     encoding="utf-8")
    fig, ax = plt.subplots(figsize=(5, 5))
    for k, cur in report["curves"].items():
        ax.plot(cur["fpr"], cur["tpr"], label=f"{k} (AUROC {_f(report['discrimination'][k]['auroc'])})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", title="ROC, eligible windows")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    for k in ("twin", "challenger"):
        if k in report["calibration"]:
            rel = report["calibration"][k]["reliability"]
            ax.plot([r["mean_predicted"] for r in rel], [r["observed"] for r in rel], "o-", label=k)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set(xlabel="predicted risk", ylabel="observed frequency", title="Reliability (10 risk bins)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    names = [n for n in ("twin >= 0.7", "NEWS2 >= 5", "NEWS2 >= 7", "challenger >= 0.7")
             if n in report["operating_points"]]
    data = [report["operating_points"][n]["lead_times_h"] or [np.nan] for n in names]
    ax.boxplot(data, tick_labels=names)
    ax.set(ylabel="hours before event onset", title="Lead time of detected events")
    fig.tight_layout()
    fig.savefig(out / "lead_time.png", dpi=100)
    plt.close(fig)
    html = ["<!doctype html><html><head><meta charset='utf-8'><title>wardtwin evaluation</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}pre{background:#f6f6f6;padding:1em;"
            "overflow-x:auto}img{max-width:32%}</style></head><body>",
            f"<h1>wardtwin evaluation — {escape(report['twin_version'])}</h1>",
            f"<p>{escape(report['scope'])}.</p><pre>{escape(format_table(report))}</pre>",
            "<img src='roc.png' alt='ROC curves'><img src='calibration.png' alt='reliability plot'>",
            "<img src='lead_time.png' alt='lead times'>", "<h2>Rules</h2><ul>",
            *(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in report["rules"].items()),
            "</ul><p>Full numbers: <a href='report.json'>report.json</a>.</p></body></html>"]
    (out / "index.html").write_text("\n".join(html), encoding="utf-8")
