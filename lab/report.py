"""The evaluation report: the twin against NEWS2 (and the challenger) on held-out patients.

:func:`evaluate` scores a prepared dataset and returns the report as plain data (JSON-ready);
:func:`format_table` renders it as text for the terminal, :func:`write_report` as ``report.json``,
PNG plots and ``index.html``. The numbers themselves come from :mod:`lab.metrics`.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from lab.html_page import page, rule_items
from lab.metrics import (
    MIN_LEAD,
    REARM_WINDOWS,
    auroc,
    bootstrap,
    calibration,
    calibration_in_the_large,
    charted_news2,
    decision_curve,
    expected_calibration_error,
    first_event_point,
    first_events,
    match_truth,
    monitored,
    patient_draws,
    ratio_ci,
    reliability,
    with_intervals,
)
from lab.train import Dataset, Progress, split_of
from models.challenger import Challenger
from models.twin import Twin

AGE_BANDS: tuple[tuple[str, int, int], ...] = (("18-49", 0, 50), ("50-69", 50, 70), ("70+", 70, 200))
#: Subgroups the evaluation asks for: patients-table column → what it is. Missing columns are named in the report.
SUBGROUP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sex", "sex"), ("age", "age band"), ("archetype", "archetype"), ("spo2_scale", "SpO2 scale 2"),
    ("atrial_fibrillation", "atrial fibrillation"),
)
#: Scores compared: the twin, NEWS2 as charted at the RCP frequency, NEWS2 recomputed every 5 minutes.
NEWS2_CHARTED, NEWS2_5MIN = "news2_charted", "news2"
SCORE_NAMES: dict[str, str] = {"twin": "twin", NEWS2_CHARTED: "NEWS2 charted (RCP frequency)",
                               NEWS2_5MIN: "NEWS2 every 5 min", "challenger": "challenger"}
SERVICE_BURDEN_NOTE = (
    "Alerts per patient-day here are a model-side estimate (a new alert when the score reaches the threshold "
    "after an hour below, on monitored windows). The service's own alert-engine burden (NEWS2, twin and "
    "criteria-met alerts replayed through app/alerts) is measured separately by `wardtwin evaluate alert-burden`.")


def _quiet(_: str) -> None:
    return None


def _same_cohort(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("seed", "n_patients", "hours", "simulator_version", "start")
    return all(a.get(k) == b.get(k) for k in keys)


def operating_points(twin_threshold: float) -> list[tuple[str, str, float]]:
    """(name, score key, threshold): the service's twin threshold, the former 0.7, NEWS2 >= 5 and >= 7 both ways."""
    return [(f"twin >= {twin_threshold:g} (service default)", "twin", twin_threshold),
            ("twin >= 0.7 (default before v3)", "twin", 0.7),
            ("NEWS2 >= 5 charted", NEWS2_CHARTED, 5), ("NEWS2 >= 5 every 5 min", NEWS2_5MIN, 5),
            ("NEWS2 >= 7 charted", NEWS2_CHARTED, 7), ("NEWS2 >= 7 every 5 min", NEWS2_5MIN, 7)]


def _subgroups(patients: pd.DataFrame, pids: np.ndarray) -> tuple[dict[str, np.ndarray], list[str]]:
    table = patients.drop_duplicates("patient_id").set_index("patient_id") if "patient_id" in patients \
        else pd.DataFrame()
    groups: dict[str, np.ndarray] = {}
    missing = [what for col, what in SUBGROUP_COLUMNS if col not in table]

    def by_category(column: str) -> None:
        values = table[column].reindex(pids).to_numpy()
        for v in sorted({str(x) for x in values if isinstance(x, str)}):
            groups[f"{column}={v}"] = values == v

    if "sex" in table:
        by_category("sex")
    if "age" in table:
        age = table["age"].reindex(pids).to_numpy(float)
        for label, lo, hi in AGE_BANDS:
            groups[f"age {label}"] = (age >= lo) & (age < hi)
    if "archetype" in table:
        by_category("archetype")
    if "spo2_scale" in table:
        scale = table["spo2_scale"].reindex(pids).to_numpy(float)
        groups["SpO2 scale 2"] = scale == 2
        groups["SpO2 scale 1"] = scale != 2
    if "atrial_fibrillation" in table:
        af = table["atrial_fibrillation"].reindex(pids).fillna(False).to_numpy(bool)
        groups["atrial fibrillation"] = af
    return groups, missing


def evaluate(twin: Twin, dataset: Dataset, *, cohort_fingerprint: dict[str, Any],
             challenger_path: str | Path | None = None, n_bootstrap: int = 200, seed: int = 0,
             progress: Progress = _quiet, curves: bool = True) -> dict[str, Any]:
    """Twin vs NEWS2 (charted and every 5 min) and the challenger on held-out patients of one cohort (which
    may be several seeds pooled by :func:`pool_datasets`); returns the JSON report (plain data)."""
    frame = dataset.frame
    art = twin.artifact
    if _same_cohort(cohort_fingerprint, art.get("cohort", {})):
        split = split_of(frame["patient_id"].to_numpy(), art["split"]["seed"])
        frame = frame[split == "test"]
        scope = "test patients of the training cohort (patient-level split)"
    else:
        scope = "an independent cohort: no patient was used for training or calibration"
    frame = frame.sort_values(["patient_id", "window_end"], kind="mergesort").reset_index(drop=True)
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
    scores = {"twin": risk, NEWS2_CHARTED: charted_news2(frame), NEWS2_5MIN: frame["news2"].to_numpy(float)}
    challenger = None
    if challenger_path is not None:
        challenger = Challenger.load(challenger_path)
        scores["challenger"] = challenger.risk(frame)
    elig = frame["eligible"].to_numpy(bool)
    y = frame["label"].to_numpy(int)
    pids = frame["patient_id"].to_numpy()
    ids = np.asarray(pd.unique(pd.Series(pids)))
    counts = patient_draws(ids, n=n_bootstrap, seed=seed)
    progress(f"bootstrap: {n_bootstrap} patient-level resamples")
    disc = bootstrap(y[elig], {k: v[elig] for k, v in scores.items()}, pids[elig], n=n_bootstrap, seed=seed,
                     references=(NEWS2_CHARTED, NEWS2_5MIN), draws=(ids, counts))
    cal: dict[str, Any] = {}
    for k in ("twin", "challenger"):
        if k in scores:
            p = scores[k][elig]
            slope, intercept = calibration(y[elig], p)
            rel = reliability(y[elig], p)
            cal[k] = {"brier": float(np.mean((p - y[elig]) ** 2)), "calibration_slope": slope,
                      "calibration_intercept": intercept, "reliability": rel,
                      "in_the_large": calibration_in_the_large(y[elig], p),
                      "ece": expected_calibration_error(rel), "mean_predicted": float(p.mean()) if len(p) else None}
    cal["prevalence"] = float(y[elig].mean()) if elig.any() else None

    progress("first-event operating points, lead times, decision curve, subgroups")
    truth = dataset.truth[dataset.truth["patient_id"].isin(set(ids))] if len(dataset.truth) else dataset.truth
    first = first_events(truth)
    derived = dataset.events[dataset.events["patient_id"].isin(set(ids))]
    mon = frame.loc[is_monitored].reset_index(drop=True)
    days = pd.Series(pids).value_counts() * 5 / 1440
    threshold = twin.alert_threshold
    points = operating_points(threshold)
    raw_ops = {name: first_event_point(mon, first, scores[key][is_monitored] >= thr, patient_days=days)
               for name, key, thr in points}
    ops = {name: with_intervals(op, ids, counts) for name, op in raw_ops.items()}

    dc = decision_curve(y[elig], risk[elig], {"NEWS2 >= 5 charted": scores[NEWS2_CHARTED][elig] >= 5,
                                              "NEWS2 >= 5 every 5 min": scores[NEWS2_5MIN][elig] >= 5})

    groups, missing = _subgroups(dataset.patients, pids)
    sub: dict[str, Any] = {}
    for g, m in groups.items():
        me = m & elig
        gids = set(pids[m])
        if not gids:
            continue
        row: dict[str, Any] = {"patients": len(gids), "first_events": int(first["patient_id"].isin(gids).sum()),
                               "windows": int(me.sum()), "positives": int(y[me].sum()),
                               "twin_auroc": auroc(y[me], risk[me]),
                               "news2_charted_auroc": auroc(y[me], scores[NEWS2_CHARTED][me]),
                               "news2_5min_auroc": auroc(y[me], scores[NEWS2_5MIN][me]),
                               "twin_observed_minus_expected": calibration_in_the_large(
                                   y[me], risk[me])["observed_minus_expected"]}
        gid_arr = np.asarray([i for i in ids if i in gids])
        gcounts = counts[:, np.isin(ids, gid_arr)]
        for name, _, _ in points[:1] + points[2:4]:
            per = raw_ops[name]["per_patient"].reindex(gid_arr).fillna(0)
            det, con = float(per["detected"].sum()), float(per["considered"].sum())
            row[name] = {"sensitivity": det / con if con else None, "detected": int(det), "events": int(con),
                         "sensitivity_ci": ratio_ci(per["detected"], per["considered"], gcounts),
                         "alerts_per_patient_day": float(per["alerts"].sum() / per["days"].sum())
                         if per["days"].sum() else None}
        sub[g] = row

    roc: dict[str, Any] = {}
    if curves:
        for k, v in scores.items():
            if len(np.unique(y[elig])) == 2:
                fpr, tpr, _ = roc_curve(y[elig], v[elig])
                keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 400)).astype(int))
                roc[k] = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}

    t = disc["twin"]
    names = [n for n, _, _ in points]
    twin_op, charted5, every5 = ops[names[0]], ops[names[2]], ops[names[3]]
    goals = {
        "auroc_margin_over_news2_charted": t.get(f"auroc_minus_{NEWS2_CHARTED}"),
        "auroc_margin_over_news2_5min": t.get(f"auroc_minus_{NEWS2_5MIN}"),
        "auroc_at_least_0.05_above_news2_charted": bool((t.get(f"auroc_minus_{NEWS2_CHARTED}") or -1) >= 0.05),
        "calibration_slope_in_0.9_1.1": bool(cal["twin"]["calibration_slope"] is not None
                                             and 0.9 <= cal["twin"]["calibration_slope"] <= 1.1),
        "service_threshold_fewer_alerts_at_equal_or_better_sensitivity_than_news2_5_charted": _better(twin_op,
                                                                                                      charted5),
        "service_threshold_fewer_alerts_at_equal_or_better_sensitivity_than_news2_5_every_5_min": _better(twin_op,
                                                                                                         every5),
    }
    patient_days = float(len(frame) * 5 / 1440)
    report = {
        "scope": scope, "twin_version": twin.version, "twin_threshold": threshold,
        "challenger_version": challenger.version if challenger else None,
        "cohort": cohort_fingerprint, "training_cohort": art.get("cohort"),
        "patients": len(ids), "patient_days": patient_days,
        "monitored_patient_days": float(is_monitored.sum() * 5 / 1440),
        "eligible_windows": int(elig.sum()), "positive_windows": int(y[elig].sum()),
        "first_events": len(first), "derived_events": len(derived),
        "events_per_patient_day": len(first) / patient_days if patient_days else None,
        "discrimination": disc, "calibration": cal, "operating_points": ops, "decision_curve": dc,
        "subgroups": sub, "subgroups_missing": [f"{m}: not recorded in the cohort's patients table" for m in missing],
        "goals": goals, "contributions_check": {"windows": len(frame), "max_abs_error": max_err, "tolerance": 1e-9},
        "event_rule_vs_simulator_truth": match_truth(derived, truth),
        "charting": _charting_stats(frame, scores[NEWS2_CHARTED]),
        "curves": roc,
    }
    report["notes"] = operating_notes(report)
    report["rules"] = rules(n_bootstrap)
    return report


def _charting_stats(frame: pd.DataFrame, charted: np.ndarray) -> dict[str, Any]:
    """How often the simulated nurse charted: sets per patient-day, and the share of windows where the charted
    total is below the 5-minute total (the ward does not yet know)."""
    pid = frame["patient_id"].to_numpy()
    changed = np.r_[True, (pid[1:] != pid[:-1])]
    charted_s = pd.Series(charted)
    new_set = changed | (charted_s.diff().fillna(1).to_numpy() != 0)
    days = len(frame) * 5 / 1440
    live = frame["news2"].to_numpy(float)
    return {"distinct_charted_values_per_patient_day_lower_bound": float(new_set.sum() / days) if days else None,
            "windows_charted_below_5min": float(np.mean(charted < live)) if len(live) else None,
            "windows_charted_above_5min": float(np.mean(charted > live)) if len(live) else None}


def _better(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["sensitivity"] is not None and b["sensitivity"] is not None
                and a["alerts_per_patient_day"] is not None and b["alerts_per_patient_day"] is not None
                and a["sensitivity"] >= b["sensitivity"] and a["alerts_per_patient_day"] < b["alerts_per_patient_day"])


def rules(n_bootstrap: int) -> dict[str, str]:
    lead = int(MIN_LEAD / pd.Timedelta(minutes=1))
    return {
        "events": "each patient's first ground-truth event from the simulator (events.parquet / the cohort's "
                  "events), counted once; events re-derived from threshold crossings (models.labels) define only "
                  "the window labels of AUROC/AUPRC, calibration and the decision curve",
        "first-event sensitivity": f"a first event is detected when a monitored window ending {lead} min to 6 h "
                                   "before onset (inclusive) is at or above the threshold; events whose patient has "
                                   f"no monitored window in that span (onset within the first {60 + lead} min) are "
                                   "reported as unobservable and left out of the denominator",
        "lead time": "onset minus the earliest monitored window end at or above the threshold in that span; "
                     "median (IQR) over detected first events",
        "alerts per patient-day": f"model-side estimate: a new alert when the score reaches the threshold and none "
                                  f"of the previous {REARM_WINDOWS} monitored windows (1 h) did; monitored = not "
                                  "within a derived event or its 1 h refractory, >= 1 h of history; divided by all "
                                  "patient-days. " + SERVICE_BURDEN_NOTE,
        "ppv": f"share of alerts raised before the patient's first event that the first event follows {lead} min "
               "to 6 h later; alerts at or after onset, and alerts of event-free patients with less than 6 h of "
               "follow-up, are left out",
        "NEWS2 charted": "a simulated nurse charts NEWS2 at the patient's first window, then at the first window "
                         "ending at or after the last chart time + the RCP 2017 monitoring interval of the last "
                         "charted result (aggregate 0 → 12 h; 1–4 → 6 h, the upper bound of 4–6 h; a 3 in a single "
                         "parameter or 5–6 → 1 h; >= 7 → continuous, i.e. every 5-min window), reading that "
                         "window's values; the charted total is carried forward between charts",
        "NEWS2 every 5 min": "NEWS2 recomputed from every 5-minute window (no ward charts this often; an upper "
                             "bound on what monitor-fed NEWS2 could do)",
        "calibration": "slope: logistic regression of the 6 h window label on logit(risk); in the large: observed "
                       "minus mean predicted, and the intercept with slope fixed at 1 (offset logit(risk)); by "
                       "bin: 10 fixed-width risk bins (reliability plot)",
        "decision curve": "net benefit = TP/n − FP/n · pt/(1 − pt) on eligible windows (6 h label), pt 0.01–0.50; "
                          "twin alerts when risk >= pt; NEWS2 >= 5 (charted, every 5 min) as fixed policies; "
                          "treat all; treat none = 0",
        "bootstrap": f"{n_bootstrap} resamples of patients (cluster bootstrap), percentile 95 % intervals; the same "
                     "resamples for every score and operating point of a cohort, so differences are paired",
        "seeds": "each simulator seed is an independent evaluation cohort; 'pooled' evaluates all seeds' patients "
                 "together (patient ids prefixed by seed) with the same rules",
    }


def pool_datasets(datasets: dict[int, Dataset]) -> Dataset:
    """One dataset of several seeds' cohorts; patient ids become ``s<seed>:<id>`` so no two collide."""
    def tag(df: pd.DataFrame, s: int) -> pd.DataFrame:
        if df is None or "patient_id" not in df or df.empty:
            return df
        return df.assign(patient_id=f"s{s}:" + df["patient_id"].astype(str))

    parts = list(datasets.items())
    truths = [tag(d.truth, s) for s, d in parts if d.truth is not None and len(d.truth)]
    return Dataset(frame=pd.concat([tag(d.frame, s) for s, d in parts], ignore_index=True),
                   events=pd.concat([tag(d.events, s) for s, d in parts], ignore_index=True),
                   patients=pd.concat([tag(d.patients, s) for s, d in parts], ignore_index=True),
                   truth=pd.concat(truths, ignore_index=True) if truths else parts[0][1].truth,
                   hours=float(sum(d.hours for _, d in parts)))


def previous_summary(old: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headline numbers of an earlier (single-seed, re-derived-event) report, to print beside the new ones."""
    if not old:
        return None
    if "previous" in old:
        return old["previous"]
    if "discrimination" not in old:
        return None
    d, c = old["discrimination"], old.get("calibration", {})
    return {
        "cohort": old.get("cohort"), "twin_version": old.get("twin_version"), "events": old.get("events"),
        "event_definition": "events re-derived from threshold crossings (repeats counted), detected with any lead "
                            "(including 0) in the 6 h before onset; NEWS2 every 5 min; 1 h re-arm alerts; one seed",
        "discrimination": {k: {m: v.get(m) for m in ("auroc", "auroc_ci", "auprc", "auprc_ci", "auroc_minus_news2",
                                                      "auroc_minus_news2_ci") if m in v} for k, v in d.items()},
        "calibration": {k: {m: v.get(m) for m in ("brier", "calibration_slope", "calibration_intercept")}
                        for k, v in c.items() if isinstance(v, dict)},
        "operating_points": {k: {m: v.get(m) for m in ("sensitivity", "detected", "events", "ppv",
                                                        "alerts_per_patient_day", "median_lead_h", "lead_iqr_h")}
                             for k, v in old.get("operating_points", {}).items()},
    }


def evaluate_seeds(twin: Twin, datasets: dict[int, Dataset], fingerprints: dict[int, dict[str, Any]], *,
                   challenger_path: str | Path | None = None, n_bootstrap: int = 200,
                   previous: dict[str, Any] | None = None, progress: Progress = _quiet) -> dict[str, Any]:
    """One report per seed (each an independent cohort) and one on all seeds' patients pooled."""
    per_seed = {}
    for s, ds in datasets.items():
        progress(f"seed {s}")
        per_seed[str(s)] = evaluate(twin, ds, cohort_fingerprint=fingerprints[s], challenger_path=challenger_path,
                                    n_bootstrap=n_bootstrap, seed=s, progress=progress, curves=False)
    progress("pooled seeds")
    fp0 = next(iter(fingerprints.values()))
    pooled_fp = {**{k: v for k, v in fp0.items() if k != "seed"}, "seeds": [int(s) for s in datasets],
                 "n_patients": sum(int(f.get("n_patients", 0)) for f in fingerprints.values())}
    pooled = evaluate(twin, pool_datasets(datasets), cohort_fingerprint=pooled_fp, challenger_path=challenger_path,
                      n_bootstrap=n_bootstrap, seed=0, progress=progress)
    if len(datasets) > 1 and any(r["scope"].startswith("test") for r in per_seed.values()):
        pooled["scope"] = "seeds pooled; some seed is the training cohort (its test patients only)"
    return {"seeds": [int(s) for s in datasets], "per_seed": per_seed, "pooled": pooled, "previous": previous,
            "twin_version": pooled["twin_version"], "scope": pooled["scope"], "rules": pooled["rules"],
            "service_alert_burden": SERVICE_BURDEN_NOTE}


def operating_notes(report: dict[str, Any]) -> list[str]:
    """Plain-language statements of how the twin's operating point compares with NEWS2 (numbers only)."""
    ops = report["operating_points"]

    def fmt(name: str) -> str:
        op = ops[name]
        return (f"{name}: first-event sensitivity {_f(op['sensitivity'], '.2f')} {_ci_s(op['sensitivity_ci'], '.2f')} "
                f"({op['detected']}/{op['events']}), PPV {_f(op['ppv'], '.2f')} {_ci_s(op['ppv_ci'], '.2f')}, "
                f"{_f(op['alerts_per_patient_day'], '.2f')} {_ci_s(op['alerts_per_patient_day_ci'], '.2f')} "
                f"alerts/patient-day, median lead {_lead(op)}")

    out = [fmt(n) + "." for n in ops]
    out.append(SERVICE_BURDEN_NOTE)
    return out


def _ci_s(ci: Any, fmt: str = ".3f") -> str:
    if not ci or ci[0] is None:
        return "(—)"
    return f"({format(ci[0], fmt)}–{format(ci[1], fmt)})"


def _lead(op: dict[str, Any]) -> str:
    q = op.get("lead_iqr_h") or [None, None]
    return f"{_f(op['median_lead_h'], '.1f')} h (IQR {_f(q[0], '.1f')}–{_f(q[1], '.1f')})"


def _f(x: Any, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def format_cohort(report: dict[str, Any]) -> str:
    """One cohort's report (a seed, or the pooled seeds) as text."""
    d, c, o = report["discrimination"], report["calibration"], report["operating_points"]
    lines = [
        f"{report['twin_version']} on {report['patients']} patients ({report['patient_days']:.1f} patient-days; "
        f"{report['scope']})",
        f"eligible windows {report['eligible_windows']} (positive {report['positive_windows']}, prevalence "
        f"{_f(c['prevalence'])}); first true events {report['first_events']} (derived crossings "
        f"{report['derived_events']})",
        "",
        f"{'score':<32} {'AUROC (95% CI)':<22} {'AUPRC (95% CI)':<22} {'vs charted: dAUROC':<26} "
        f"{'vs every-5-min: dAUROC':<26}",
    ]
    for k in ("twin", NEWS2_CHARTED, NEWS2_5MIN, "challenger"):
        if k in d:
            m = d[k]
            dc, d5 = (f"{_f(m.get(f'auroc_minus_{r}'), '+.3f')} {_ci_s(m.get(f'auroc_minus_{r}_ci'))}"
                      if f"auroc_minus_{r}" in m else "" for r in (NEWS2_CHARTED, NEWS2_5MIN))
            lines.append(f"{SCORE_NAMES[k]:<32} {_f(m['auroc'])} {_ci_s(m['auroc_ci']):<16} "
                         f"{_f(m['auprc'])} {_ci_s(m['auprc_ci']):<16} {dc:<26} {d5:<26}")
    t = d["twin"]
    if f"auprc_minus_{NEWS2_CHARTED}" in t:
        lines.append(f"twin − NEWS2 AUPRC: vs charted {_f(t[f'auprc_minus_{NEWS2_CHARTED}'], '+.3f')} "
                     f"{_ci_s(t[f'auprc_minus_{NEWS2_CHARTED}_ci'])}; vs every 5 min "
                     f"{_f(t[f'auprc_minus_{NEWS2_5MIN}'], '+.3f')} {_ci_s(t[f'auprc_minus_{NEWS2_5MIN}_ci'])}")
    lines += ["", f"{'calibration':<12} {'Brier':>7} {'slope':>6} {'O − E':>8} {'intercept (slope 1)':>20} {'ECE':>7}"]
    for k in ("twin", "challenger"):
        if k in c:
            cc = c[k]
            itl = cc.get("in_the_large", {})
            lines.append(f"{k:<12} {_f(cc.get('brier'), '.4f'):>7} {_f(cc.get('calibration_slope'), '.2f'):>6} "
                         f"{_f(itl.get('observed_minus_expected'), '+.4f'):>8} "
                         f"{_f(itl.get('intercept_slope_1'), '+.2f'):>20} {_f(cc.get('ece'), '.4f'):>7}")
    lines += ["", f"{'operating point (first events)':<34} {'sensitivity (95% CI)':<28} {'PPV (95% CI)':<20} "
                  f"{'alerts/pt-day (95% CI)':<24} {'median lead (IQR)':<20}"]
    for name, op in o.items():
        sens = f"{_f(op['sensitivity'], '.2f')} {_ci_s(op['sensitivity_ci'], '.2f')} {op['detected']}/{op['events']}"
        lines.append(f"{name:<34} {sens:<28} {_f(op['ppv'], '.2f')} {_ci_s(op['ppv_ci'], '.2f'):<15} "
                     f"{_f(op['alerts_per_patient_day'], '.2f')} {_ci_s(op['alerts_per_patient_day_ci'], '.2f'):<19} "
                     f"{_lead(op)}")
    first_op = next(iter(o.values()))
    lines.append(f"unobservable first events (onset before {60 + int(MIN_LEAD / pd.Timedelta(minutes=1))} min of "
                 f"monitoring): {first_op['unobservable']} of {first_op['first_events']}")
    dc = report["decision_curve"]
    lines += ["", "decision curve (net benefit per 100 eligible windows)",
              f"{'pt':>5} {'twin':>8} {'treat all':>10} {'N2>=5 charted':>14} {'N2>=5 5-min':>12}"]
    for i, pt in enumerate(dc["thresholds"]):
        if round(pt * 100) in (1, 2, 5, 10, 20, 30, 50):
            lines.append(f"{pt:>5.2f} {100 * dc['model'][i]:>8.3f} {100 * dc['treat_all'][i]:>10.3f} "
                         f"{100 * dc['NEWS2 >= 5 charted'][i]:>14.3f} {100 * dc['NEWS2 >= 5 every 5 min'][i]:>12.3f}")
    twin_name = next(iter(o))
    lines += ["", f"{'subgroup':<30} {'pts':>5} {'ev':>4} {'twin AUROC':>10} {'N2 chart':>8} {'N2 5min':>8} "
                  f"{'twin sens':>9} {'N2>=5 ch sens':>13} {'N2>=5 5m sens':>13} {'twin al/d':>9} "
                  f"{'N2>=5 ch al/d':>13}"]
    for g, r in report["subgroups"].items():
        tw, ch, fv = r[twin_name], r["NEWS2 >= 5 charted"], r["NEWS2 >= 5 every 5 min"]
        lines.append(f"{g:<30} {r['patients']:>5} {r['first_events']:>4} {_f(r['twin_auroc']):>10} "
                     f"{_f(r['news2_charted_auroc']):>8} {_f(r['news2_5min_auroc']):>8} "
                     f"{_f(tw['sensitivity'], '.2f'):>9} {_f(ch['sensitivity'], '.2f'):>13} "
                     f"{_f(fv['sensitivity'], '.2f'):>13} {_f(tw['alerts_per_patient_day'], '.2f'):>9} "
                     f"{_f(ch['alerts_per_patient_day'], '.2f'):>13}")
    for m in report.get("subgroups_missing", []):
        lines.append(f"missing subgroup: {m}")
    cc = report["contributions_check"]
    tr = report["event_rule_vs_simulator_truth"]
    lines += ["", "goals: " + "; ".join(f"{k}={v if not isinstance(v, float) else format(v, '+.3f')}"
                                          for k, v in report["goals"].items()),
              f"contributions + intercept = logit on {cc['windows']} windows (max error {cc['max_abs_error']:.2e})",
              "derived-crossing rule vs simulator truth: " + ", ".join(
                  f"{k}={v if not isinstance(v, float) else format(v, '.3f')}" for k, v in tr.items())]
    return "\n".join(lines)


def _seed_table(report: dict[str, Any]) -> list[str]:
    rows = [("pooled", report["pooled"])] + [(f"seed {s}", r) for s, r in report["per_seed"].items()]
    o0 = report["pooled"]["operating_points"]
    names = list(o0)[:1] + [n for n in o0 if n.startswith("NEWS2")]
    lines = [f"{'cohort':<8} {'pts':>5} {'ev':>4} {'twin AUROC':<20} {'N2 charted AUROC':<20} {'N2 5-min AUROC':<20} "
             f"{'twin − charted':<22}"]
    for label, r in rows:
        d = r["discrimination"]
        lines.append(f"{label:<8} {r['patients']:>5} {r['first_events']:>4} "
                     f"{_f(d['twin']['auroc'])} {_ci_s(d['twin']['auroc_ci']):<14} "
                     f"{_f(d[NEWS2_CHARTED]['auroc'])} {_ci_s(d[NEWS2_CHARTED]['auroc_ci']):<14} "
                     f"{_f(d[NEWS2_5MIN]['auroc'])} {_ci_s(d[NEWS2_5MIN]['auroc_ci']):<14} "
                     f"{_f(d['twin'].get(f'auroc_minus_{NEWS2_CHARTED}'), '+.3f')} "
                     f"{_ci_s(d['twin'].get(f'auroc_minus_{NEWS2_CHARTED}_ci'))}")
    lines.append("")
    lines.append(f"{'cohort':<8} " + " ".join(f"{n + ': sens / al/d':<40}" for n in names))
    for label, r in rows:
        cells = []
        for n in names:
            op = r["operating_points"][n]
            cells.append(f"{_f(op['sensitivity'], '.2f')} {_ci_s(op['sensitivity_ci'], '.2f')} / "
                         f"{_f(op['alerts_per_patient_day'], '.2f')}".ljust(40))
        lines.append(f"{label:<8} " + " ".join(cells))
    return lines


def _previous_table(report: dict[str, Any]) -> list[str]:
    prev = report.get("previous")
    if not prev:
        return []
    pooled = report["pooled"]
    po, pd_ = prev["operating_points"], prev["discrimination"]
    thr = report["pooled"]["twin_threshold"]
    new_o = pooled["operating_points"]
    pairs = [(f"twin >= {thr:g} (matched)", f"twin >= {thr:g} (service default)"),
             ("twin >= 0.7", "twin >= 0.7 (default before v3)"), ("NEWS2 >= 5", "NEWS2 >= 5 charted"),
             ("NEWS2 >= 5", "NEWS2 >= 5 every 5 min"), ("NEWS2 >= 7", "NEWS2 >= 7 charted"),
             ("NEWS2 >= 7", "NEWS2 >= 7 every 5 min")]
    cohort = prev.get("cohort") or {}
    lines = [f"previous report (seed {cohort.get('seed', '?')}, {cohort.get('n_patients', '?')} patients; "
             f"{prev.get('event_definition')}) beside the new pooled numbers:",
             f"{'':<36} {'previous':<40} {'new (pooled seeds)':<40}"]
    nd = pooled["discrimination"]
    cells = [
        ("twin AUROC", f"{_f(pd_['twin']['auroc'])} {_ci_s(pd_['twin']['auroc_ci'])}",
         f"{_f(nd['twin']['auroc'])} {_ci_s(nd['twin']['auroc_ci'])}"),
        ("NEWS2 AUROC (previous: every 5 min)", f"{_f(pd_['news2']['auroc'])} {_ci_s(pd_['news2']['auroc_ci'])}",
         f"charted {_f(nd[NEWS2_CHARTED]['auroc'])} {_ci_s(nd[NEWS2_CHARTED]['auroc_ci'])}; "
         f"every 5 min {_f(nd[NEWS2_5MIN]['auroc'])} {_ci_s(nd[NEWS2_5MIN]['auroc_ci'])}"),
        ("twin − NEWS2 AUROC", f"{_f(pd_['twin'].get('auroc_minus_news2'), '+.3f')} "
                               f"{_ci_s(pd_['twin'].get('auroc_minus_news2_ci'))}",
         f"vs charted {_f(nd['twin'].get(f'auroc_minus_{NEWS2_CHARTED}'), '+.3f')} "
         f"{_ci_s(nd['twin'].get(f'auroc_minus_{NEWS2_CHARTED}_ci'))}; vs every 5 min "
         f"{_f(nd['twin'].get(f'auroc_minus_{NEWS2_5MIN}'), '+.3f')} "
         f"{_ci_s(nd['twin'].get(f'auroc_minus_{NEWS2_5MIN}_ci'))}"),
    ]
    lines += [f"{a:<36} {b:<40} {c}" for a, b, c in cells]
    for old_name, new_name in pairs:
        if old_name in po and new_name in new_o:
            a, b = po[old_name], new_o[new_name]
            left = (f"{_f(a['sensitivity'], '.2f')} ({a['detected']}/{a['events']}), "
                    f"{_f(a['alerts_per_patient_day'], '.2f')}/d, lead {_f(a['median_lead_h'], '.1f')} h")
            right = (f"{_f(b['sensitivity'], '.2f')} ({b['detected']}/{b['events']}), "
                     f"{_f(b['alerts_per_patient_day'], '.2f')}/d, lead {_f(b['median_lead_h'], '.1f')} h")
            lines.append(f"{new_name:<36} {left:<40} {right}")
    return lines


def format_table(report: dict[str, Any]) -> str:
    """The report as text: for a multi-seed report, the per-seed/pooled summary, the previous numbers and the
    pooled cohort in full; for a single cohort, that cohort."""
    if "pooled" not in report:
        return format_cohort(report)
    lines = [f"Evaluation of {report['twin_version']} on simulator seeds {', '.join(map(str, report['seeds']))}",
             "", *_seed_table(report), "", *_previous_table(report), "", "POOLED SEEDS", "",
             format_cohort(report["pooled"])]
    for s, r in report["per_seed"].items():
        lines += ["", f"SEED {s}", "", format_cohort(r)]
    lines += ["", report["service_alert_burden"]]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: str | Path) -> None:
    """report.json, roc.png, calibration.png, lead_time.png, decision_curve.png and index.html in ``out``
    (plots from the pooled cohort of a multi-seed report)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    main = report.get("pooled", report)
    (out / "report.json").write_text(json.dumps(report, sort_keys=True, indent=1, allow_nan=False) + "\n",
                                     encoding="utf-8")
    fig, ax = plt.subplots(figsize=(5, 5))
    for k, cur in main["curves"].items():
        auc = _f(main["discrimination"][k]["auroc"])
        ax.plot(cur["fpr"], cur["tpr"], label=f"{SCORE_NAMES.get(k, k)} (AUROC {auc})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", title="ROC, eligible windows")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    for k in ("twin", "challenger"):
        if k in main["calibration"]:
            rel = main["calibration"][k]["reliability"]
            ax.plot([r["mean_predicted"] for r in rel], [r["observed"] for r in rel], "o-", label=k)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set(xlabel="predicted risk", ylabel="observed frequency", title="Reliability (10 risk bins)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(main["operating_points"])
    data = [main["operating_points"][n]["lead_times_h"] or [np.nan] for n in names]
    ax.boxplot(data, tick_labels=[n.replace(" (", "\n(").replace(" every", "\nevery").replace(" charted", "\ncharted")
                                  for n in names])
    ax.tick_params(axis="x", labelsize=7)
    ax.set(ylabel="hours before first-event onset", title="Lead time of detected first events (≥ 30 min)")
    fig.tight_layout()
    fig.savefig(out / "lead_time.png", dpi=100)
    plt.close(fig)
    dc = main["decision_curve"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(dc["thresholds"], dc["model"], label="twin (alert when risk ≥ pt)")
    ax.plot(dc["thresholds"], dc["treat_all"], label="treat all", color="grey")
    ax.plot(dc["thresholds"], dc["treat_none"], label="treat none", color="black", lw=0.8)
    ax.plot(dc["thresholds"], dc["NEWS2 >= 5 charted"], label="NEWS2 ≥ 5 charted", ls="--")
    ax.plot(dc["thresholds"], dc["NEWS2 >= 5 every 5 min"], label="NEWS2 ≥ 5 every 5 min", ls=":")
    top = max(max(dc["model"]), max(dc["treat_all"]), 0.0)
    ax.set_ylim(-0.25 * max(top, 1e-3), 1.15 * max(top, 1e-3))
    ax.set(xlabel="threshold probability pt", ylabel="net benefit per window", title="Decision curve (6 h label)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "decision_curve.png", dpi=100)
    plt.close(fig)
    html = [f"<h1>wardtwin evaluation — {escape(report['twin_version'])}</h1>",
            f"<p>{escape(report['scope'])}.</p>",
            f"<p><b>Alert burden:</b> {escape(SERVICE_BURDEN_NOTE)}</p>",
            "<img src='roc.png' alt='ROC curves'><img src='calibration.png' alt='reliability plot'>",
            "<img src='lead_time.png' alt='lead times'><img src='decision_curve.png' alt='decision curve'>",
            f"<pre>{escape(format_table(report))}</pre>", "<h2>Definitions</h2><ul>",
            *rule_items(report["rules"]),
            "</ul><p>Full numbers: <a href='report.json'>report.json</a>.</p></body></html>"]
    (out / "index.html").write_text(page("wardtwin evaluation", html, width_px=1300, img_percent=48, pre_font_px=12),
                                    encoding="utf-8")


__all__ = ["AGE_BANDS", "SCORE_NAMES", "SERVICE_BURDEN_NOTE", "evaluate", "evaluate_seeds", "format_cohort",
           "format_table", "operating_notes", "operating_points", "pool_datasets", "previous_summary", "rules",
           "write_report"]
