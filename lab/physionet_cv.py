"""The twin's model fitted on real patients: 5-fold patient-level cross-validation on PhysioNet 2012 set A.
A measurement, not a shipped artifact. Pure: no app imports.

Rows: the hourly stay-hours of :func:`lab.physionet_eval.stay_hours` (windows → ``carry_forward`` →
``models.features.build`` at hour ends 1..48, the 6-hour charted-event labels and eligibility, NEWS2 charted hourly),
exactly the rows the shipped twin is scored on. A stay-hour is *scorable* where the service would score it (a
feature row exists and the newest HR, SpO2 or RR window is at most 60 min old), i.e. where the shipped twin's risk
is not empty.

Folds (:func:`patient_folds`): by stay (RecordID), stratified by whether the stay has a charted event, fixed seed
(``numpy.random.default_rng(seed)`` permutes the sorted ids of each stratum; ids are dealt to folds in turn, the
second stratum continuing where the first stopped). Every stay-hour of a stay is in its stay's fold.

Fit per outer fold ``k`` (training = the other folds; the test fold plays no part), with ``lab.train``'s
functions and settings: all ``FEATURES`` free (every feature, the two-sided level features included, none left
out), ``fit_scaler`` + ``standardise`` (winsorised at ±``Z_CLIP``), ``fit_constrained`` (sign-constrained,
class-balanced, L2 at train.py's default ``C_REGULARISATION``: nothing is tuned, so no inner search), and Platt
calibration (``lab.train._platt``) on *inner* cross-fitted logits: the training stays are cut into
``INNER_FOLDS`` stratified patient folds (seed ``seed + 1 + k``), each scored by a fit on the others, as the shipped
artifact is calibrated. Training rows: eligible scorable hours of the training stays.

Out-of-fold risk: fold ``k``'s calibrated model on every scorable stay-hour of fold ``k``'s stays.

Threshold per outer fold, matched to NEWS2 >= 5 (the rule the artifact used before issue 20's alert budget, which
needs a ward's patient-days and is not defined on ICU stays) on the training stays only: on
their inner cross-fitted calibrated risks, each training stay's first event is caught when an eligible hour (where
both the risk and NEWS2 exist) in [onset − 6 h, onset − 30 min] is at or above the threshold; the threshold is
the highest on a 0.005 grid that catches as many first events as NEWS2 >= 5 does on the same hours. The test
fold's hours are then alerted at their own fold's threshold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import pandas as pd
from scipy.special import expit

from lab import metrics as M
from lab import physionet_eval as E
from lab import train as T
from lab.physionet2012 import Outcome
from models import features as F

OUTER_FOLDS: Final[int] = 5
INNER_FOLDS: Final[int] = T.CV_FOLDS
CV_SEED: Final[int] = 2012
#: Where the shipped twin is chosen and served, unchanged by this measurement.
NOT_SHIPPED: Final[str] = (
    "Not shipped: lab.source_choice.SOURCE_RULE (stated before its comparison) weighs training on the simulator, "
    "on set A and on both by the worse of their two margins over NEWS2 (set A; the simulated ward at monitor "
    "cadence). Fitted on set A alone, the twin ranks the simulated ward's events worse than NEWS2, so the rule "
    "does not ship it (reports/sources/ names the candidate it ships). This variant stays as the set-A-only "
    "reference.")


def patient_folds(patient_ids: np.ndarray | list[str], has_event: np.ndarray | list[bool], folds: int, seed: int
                  ) -> dict[str, int]:
    """Stay → fold 0..folds-1, stratified by ``has_event`` (module docstring)."""
    ids = np.asarray(patient_ids, dtype=object)
    flag = np.asarray(has_event, dtype=bool)
    rng = np.random.default_rng(seed)
    out: dict[str, int] = {}
    start = 0
    for stratum in (False, True):
        members = np.sort(ids[flag == stratum].astype(str))
        members = members[rng.permutation(len(members))]
        for i, pid in enumerate(members):
            out[str(pid)] = (start + i) % folds
        start = (start + len(members)) % folds
    return out


def row_folds(pids: np.ndarray, events: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Each row's fold: its stay's :func:`patient_folds` fold, stratified by whether the stay has an event."""
    stays = pd.unique(pids)
    with_event = set(events["patient_id"])
    fold_of = patient_folds(stays, [p in with_event for p in stays], folds, seed)
    return np.asarray([fold_of[str(p)] for p in pids], dtype=int)


def hour_table(hours: pd.DataFrame, hourly_feats: pd.DataFrame) -> pd.DataFrame:
    """``stay_hours``' hours with their feature values and ``scorable`` (one row per stay and hour)."""
    cols = ["patient_id", "window_end", *F.FEATURE_NAMES, "fresh"]
    out = hours.merge(hourly_feats.loc[:, cols], on=["patient_id", "window_end"], how="left")
    has_row = out["fresh"].notna().to_numpy()
    out["scorable"] = has_row & out["fresh"].fillna(False).astype(bool).to_numpy()
    return out.drop(columns="fresh")


def _inner_logits(x: np.ndarray, y: np.ndarray, fit: np.ndarray, pids: np.ndarray, has_event: dict[str, bool],
                  directions: np.ndarray, free: np.ndarray, seed: int) -> np.ndarray | None:
    """Cross-fitted raw logits of the training rows (NaN elsewhere); None when the training stays are too few for
    every inner fit to see both classes."""
    stays = pd.unique(pids[fit])
    events = np.asarray([has_event[str(p)] for p in stays])
    k = min(INNER_FOLDS, int(events.sum()), int((~events).sum()))
    if k < 2:
        return None
    inner = patient_folds(stays, events, k, seed)
    fold = np.asarray([inner.get(str(p), -1) for p in pids])
    try:
        return T._cross_fit(x, y, fit, fold, directions, free, folds=k)
    except ValueError:  # an inner fit saw one class only
        return None


def _threshold(table: pd.DataFrame, events: pd.DataFrame, rows: np.ndarray, risk: np.ndarray) -> dict[str, Any]:
    """The NEWS2 >= 5-matched threshold (module docstring) on the given rows (training stays, scorable hours where
    NEWS2 exists)."""
    frame = table.loc[:, ["patient_id", "window_end", "eligible"]].assign(news2=table["news2_total"].to_numpy(float))
    ds = T.Dataset(frame=frame, events=events, patients=pd.DataFrame(), truth=pd.DataFrame(), hours=0.0)
    twin_max, news_max = T._first_event_maxima(ds, rows, np.nan_to_num(risk))
    if len(twin_max) == 0:
        return {"threshold": None, "first_events": 0}
    target = float(np.mean(news_max >= E.NEWS2_THRESHOLD))
    thr = T._highest_threshold(twin_max, target)
    return {"threshold": float(thr), "first_events": len(twin_max), "news2_5_sensitivity": target,
            "twin_sensitivity": float(np.mean(twin_max >= thr))}


def cross_validate(table: pd.DataFrame, events: pd.DataFrame, *, folds: int = OUTER_FOLDS, seed: int = CV_SEED,
                   progress: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Out-of-fold risks for every scorable stay-hour of :func:`hour_table`, and the per-fold fits.

    Returns ``table`` with ``fold``, ``cv_risk`` (NaN where not scorable) and ``cv_alert`` (risk at or above its
    fold's threshold), and ``{"folds": [...], "coefficients": ...}``.
    """
    say = progress or (lambda _: None)
    table = table.reset_index(drop=True)
    pids = table["patient_id"].to_numpy(object)
    with_event = set(events["patient_id"])
    has_event = {str(p): p in with_event for p in pd.unique(pids)}
    fold = row_folds(pids, events, folds, seed)
    x = table.loc[:, list(F.FEATURE_NAMES)].to_numpy(float)
    y = table["label"].to_numpy(int)
    scorable = table["scorable"].to_numpy(bool)
    train_rows = scorable & table["eligible"].to_numpy(bool)
    news_known = table["news2_total"].notna().to_numpy()
    directions = np.asarray([F.DIRECTIONS[n] for n in F.FEATURE_NAMES], dtype=int)
    free = np.ones(len(F.FEATURE_NAMES), dtype=bool)
    cv_risk = np.full(len(table), np.nan)
    cv_alert = np.zeros(len(table), dtype=bool)
    fits: list[dict[str, Any]] = []
    for k in range(folds):
        t0 = time.monotonic()
        fit, test = train_rows & (fold != k), scorable & (fold == k)
        if y[fit].min(initial=1) == y[fit].max(initial=0):
            raise ValueError(f"outer fold {k}: the training stays need hours with and without an event")
        oof = _inner_logits(x, y, fit, pids, has_event, directions, free, seed + 1 + k)
        if oof is None:
            a, c, calibration = 1.0, 0.0, "none: too few training stays for inner cross-fitting (fixtures only)"
        else:
            a, c = T._platt(oof[fit], y[fit])
            calibration = f"Platt on {INNER_FOLDS}-fold inner cross-fitted logits of the training stays"
            if not a > 0:  # would flip the signs (train.py refuses to ship it); only with a handful of stays
                calibration = f"none: Platt slope {a:.3g} is not positive (too few training stays)"
                a, c = 1.0, 0.0
        mean, scale = T.fit_scaler(x[fit])
        w, b = T._fit_free(T.standardise(x[fit], mean, scale), y[fit], directions, free, T.floors(scale))
        coef, intercept = a * w, a * b + c
        cv_risk[test] = expit(T.standardise(x[test], mean, scale) @ coef + intercept)
        inner_risk = expit(a * oof + c) if oof is not None else expit(T.standardise(x, mean, scale) @ coef + intercept)
        thr = _threshold(table, events, fit & news_known & (fold != k), np.where(fit, inner_risk, np.nan))
        if thr["threshold"] is not None:
            cv_alert[test] = cv_risk[test] >= thr["threshold"]
        test_stays = set(pids[fold == k])
        fits.append({
            "fold": k, "training_stays": len(set(pids[fold != k])), "test_stays": len(test_stays),
            "training_hours": int(fit.sum()), "training_positive_hours": int(y[fit].sum()),
            "test_scorable_hours": int(test.sum()), "calibration": calibration, "platt_a": float(a),
            "platt_c": float(c), "intercept": float(intercept), "coefficients": coef.tolist(),
            "threshold": thr, "seconds": round(time.monotonic() - t0, 1)})
        say(f"cv fold {k}: {int(fit.sum())} training hours ({int(y[fit].sum())} positive), {int(test.sum())} "
            f"test hours, threshold {thr['threshold']}, {fits[-1]['seconds']} s")
    out = table.assign(fold=fold, cv_risk=cv_risk, cv_alert=cv_alert)
    return out, {"folds": fits, "seed": seed, "coefficients": coefficient_summary(fits)}


def coefficient_summary(fits: list[dict[str, Any]]) -> dict[str, dict[str, float | int]]:
    """Per feature: the calibrated coefficient per SD of the feature (mean, min, max over folds, folds at 0)."""
    c = np.asarray([f["coefficients"] for f in fits], dtype=float)
    return {n: {"mean": float(c[:, j].mean()), "min": float(c[:, j].min()), "max": float(c[:, j].max()),
                "folds_zero": int((np.abs(c[:, j]) < 1e-9).sum()), "direction": F.DIRECTIONS[n]}
            for j, n in enumerate(F.FEATURE_NAMES)}


def evaluate(cv: pd.DataFrame, events: pd.DataFrame, outcomes: dict[int, Outcome], fits: dict[str, Any], *,
             shipped_risk: np.ndarray | None = None, n_bootstrap: int = 500, seed: int = 2012,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The report's metrics on the out-of-fold risks (``cv_variant.json``).

    ``shipped_risk`` (aligned to ``cv``): the shipped twin's risk, compared on the same hours as a third score.
    """
    say = progress or (lambda _: None)
    ids = set(cv["patient_id"])
    events = events[events["patient_id"].isin(ids)]
    same_mask = (cv["scorable"] & cv["news2_total"].notna() & cv["eligible"]).to_numpy(bool)
    same = cv[same_mask].reset_index(drop=True)
    y = same["label"].to_numpy(int)
    risk, news = same["cv_risk"].to_numpy(float), same["news2_total"].to_numpy(float)
    scores = {"twin_cv": risk, "news2": news}
    if shipped_risk is not None:
        scores["twin_shipped"] = np.asarray(shipped_risk, dtype=float)[same_mask]
    say(f"cv task (a): {len(same)} eligible hours, {int(y.sum())} positive; bootstrap {n_bootstrap}")
    disc = M.bootstrap(y, scores, same["patient_id"].to_numpy(object), n=n_bootstrap, seed=seed)
    per_fold = []
    for k, g in same.groupby("fold", sort=True):
        yk = g["label"].to_numpy(int)
        per_fold.append({"fold": int(k), "hours": len(g), "positive": int(yk.sum()),
                         "auroc_twin_cv": M.auroc(yk, g["cv_risk"].to_numpy(float)),
                         "auroc_news2": M.auroc(yk, g["news2_total"].to_numpy(float))})
    thresholds = [f["threshold"]["threshold"] for f in fits["folds"]]
    ops = {f"NEWS2 >= {E.NEWS2_THRESHOLD}": E.first_event_sensitivity(same, events, news, E.NEWS2_THRESHOLD,
                                                                      n_bootstrap=n_bootstrap, seed=seed),
           "twin_cv >= its fold's threshold": E.first_event_sensitivity(
               same, events, same["cv_alert"].to_numpy(float), 0.5, n_bootstrap=n_bootstrap, seed=seed)}
    ops["twin_cv >= its fold's threshold"]["threshold"] = None
    ops["twin_cv >= its fold's threshold"]["fold_thresholds"] = thresholds
    alerted_hours = {"twin_cv": float(same["cv_alert"].mean()) if len(same) else None,
                     f"NEWS2 >= {E.NEWS2_THRESHOLD}": float(np.mean(news >= E.NEWS2_THRESHOLD)) if len(same) else None}
    slope, citl = M.calibration(y, np.clip(risk, 1e-9, 1 - 1e-9)) if len(same) else (None, None)
    events_goal = E.events_goal_of(disc["twin_cv"])

    say("cv task (b): in-hospital death from peak and last out-of-fold risk")
    per_stay = E.per_stay_predictors(cv.assign(risk=cv["cv_risk"]), outcomes)
    death = E.death_section(per_stay, n_bootstrap=n_bootstrap, seed=seed)
    death.pop("_complete")

    coefs = fits["coefficients"]
    top = sorted(coefs, key=lambda n: -abs(coefs[n]["mean"]))[:12]
    return {
        "variant": "twin-cv-set-a",
        "scope": f"the twin's model (all {len(F.FEATURE_NAMES)} FEATURES, sign-constrained logistic regression, "
                 f"Platt-calibrated) fitted on PhysioNet 2012 set A with {len(fits['folds'])}-fold patient-level "
                 f"cross-validation; {len(ids)} stays; every number below is out-of-fold",
        "design": {
            "folds": len(fits["folds"]), "seed": fits["seed"],
            "fold_rule": "by RecordID, stratified by whether the stay has a charted event; numpy default_rng(seed) "
                         "permutes each stratum's sorted ids, dealt to folds in turn",
            "training_rows": "eligible scorable hours of the training stays",
            "regularisation": f"C = {T.C_REGULARISATION} (lab.train.C_REGULARISATION, the default; not tuned)",
            "calibration": f"Platt on {INNER_FOLDS}-fold inner cross-fitted logits of the training stays",
            "threshold": "lab.train.ALERT_TARGET on the training stays' inner cross-fitted risks: " + T.ALERT_TARGET,
            "features": "all FEATURES free (no variant's leave-outs)",
        },
        "events_6h": {
            "eligible_hours_same": len(same), "positive_hours": int(y.sum()),
            "stays": int(same["patient_id"].nunique()), "events": len(events),
            "discrimination": disc, "per_fold": per_fold,
            "sensitivity_30min_lead": ops, "alerted_share_of_hours": alerted_hours,
            "calibration": {"mean_risk": float(risk.mean()) if len(risk) else None,
                            "event_rate": float(y.mean()) if len(y) else None,
                            "slope": slope, "intercept_in_the_large": citl},
            "goal": events_goal,
        },
        "death": death,
        "coefficients": {"unit": "calibrated log-odds per SD of the feature (standardised on the training folds)",
                         "level_features": {n: coefs[n] for n in F.NOW_FEATURES},
                         "top_by_mean_magnitude": {n: coefs[n] for n in top},
                         "all": coefs,
                         "zero_in_every_fold": [n for n, v in coefs.items() if v["folds_zero"] == len(fits["folds"])]},
        "folds": [{k: v for k, v in f.items() if k != "coefficients"} for f in fits["folds"]],
        "not_shipped": NOT_SHIPPED,
    }


def summary_lines(cv: dict[str, Any], shipped: dict[str, Any] | None = None) -> list[str]:
    """Plain-text summary of ``cv_variant.json`` (beside the shipped twin's numbers when given)."""
    ev, de = cv["events_6h"], cv["death"]
    d = ev["discrimination"]
    f = E._f
    lines = [f"Variant twin-cv-set-a: {cv['scope']}.",
             f"(a) 6-hour events, {ev['eligible_hours_same']} eligible hours ({ev['positive_hours']} positive):",
             f"    AUROC twin (CV) {E._ci(d['twin_cv'])} vs NEWS2 {E._ci(d['news2'])}; difference "
             f"{f(d['twin_cv'].get('auroc_minus_news2'), '+.3f')} ({f(d['twin_cv']['auroc_minus_news2_ci'][0], '+.3f')}"
             f" to {f(d['twin_cv']['auroc_minus_news2_ci'][1], '+.3f')}). {E.GOAL_TEXT}: "
             f"{'met' if ev['goal']['met'] else 'NOT met'}."]
    if "twin_shipped" in d:
        lines.append(f"    shipped twin on the same hours {E._ci(d['twin_shipped'])}")
    for name, op in ev["sensitivity_30min_lead"].items():
        lo, hi = op["sensitivity_ci"]
        extra = (" (thresholds " + ", ".join(f(t) for t in op["fold_thresholds"]) + ")") \
            if "fold_thresholds" in op else ""
        lines.append(f"    {name}{extra}: first-event sensitivity with ≥ 30 min lead {f(op['sensitivity'], '.2f')} "
                     f"({f(lo, '.2f')}–{f(hi, '.2f')}; {op['detected']}/{op['first_events']}), median lead "
                     f"{f(op['median_lead_h'], '.1f')} h")
    share = ev["alerted_share_of_hours"]
    lines.append("    share of eligible hours at or above threshold: " +
                 ", ".join(f"{k} {f(v, '.1%')}" for k, v in share.items()))
    lines.append(f"(b) in-hospital death, {de['stays']} stays ({de['deaths']} deaths), AUROC (95 % CI):")
    for k in E.DEATH_PREDICTORS:
        name = k.replace("twin_", "twin_cv_") if k.startswith("twin") else k
        lines.append(f"    {name:<14} {E._ci(de['discrimination'][k])}")
    lines.append(f"    Goal (twin ≥ 0.75): {'met' if de['goal']['met'] else 'NOT met'} "
                 f"(best out-of-fold twin {f(de['goal']['best_twin_auroc'])}).")
    if shipped is not None:
        sd = shipped["death"]["discrimination"]
        lines.append(f"    shipped twin: peak {E._ci(sd['twin_peak'])}, last {E._ci(sd['twin_last'])}")
    c = cv["coefficients"]
    lines.append("Level-feature coefficients (" + c["unit"] + "; mean [min, max] over folds):")
    for n, v in c["level_features"].items():
        lines.append(f"    {n:<22} {v['mean']:+.3f} [{v['min']:+.3f}, {v['max']:+.3f}]"
                     + (f", 0 in {v['folds_zero']} folds" if v["folds_zero"] else ""))
    lines.append("Top features by mean |coefficient|: " + ", ".join(
        f"{n} {v['mean']:+.3f}" for n, v in list(c["top_by_mean_magnitude"].items())[:8]) + ".")
    lines.append(cv["not_shipped"])
    return lines


__all__ = ["CV_SEED", "INNER_FOLDS", "NOT_SHIPPED", "OUTER_FOLDS", "coefficient_summary", "cross_validate",
           "evaluate", "hour_table", "patient_folds", "row_folds", "summary_lines"]
