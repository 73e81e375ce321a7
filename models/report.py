"""The evaluation report: the twin against NEWS2 (and the challenger) on held-out patients.

:func:`evaluate` scores a prepared dataset and returns the report as plain data (JSON-ready);
:func:`format_table` renders it as text for the terminal, :func:`write_report` as ``report.json``,
PNG plots and ``index.html``. The numbers themselves come from :mod:`models.metrics`.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from models.challenger import Challenger
from models.labels import HORIZON
from models.metrics import (
    REARM_WINDOWS,
    auroc,
    bootstrap,
    calibration,
    expected_calibration_error,
    match_truth,
    monitored,
    operating_point,
    reliability,
)
from models.train import Dataset, Progress, split_of
from models.twin import Twin

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


def evaluate(twin: Twin, dataset: Dataset, *, cohort_fingerprint: dict[str, Any],
             challenger_path: str | Path | None = None, n_bootstrap: int = 200, seed: int = 0,
             progress: Progress = _quiet) -> dict[str, Any]:
    """Twin vs NEWS2 (and the challenger) on held-out patients; returns the JSON report (plain data)."""
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

    out = [f"NEWS2 >= 5: {fmt(news)}.", f"twin >= 0.7 (the default alert threshold before twin v3): {fmt(twin)}."]
    if matched is not None and matched in ops:
        m = ops[matched]
        out.append(f"{matched} (the service's default alert threshold, from the artifact: chosen on development "
                   f"patients to match NEWS2 >= 5's first-event sensitivity there): {fmt(m)}.")
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


def write_report(report: dict[str, Any], out: str | Path) -> None:
    """report.json, roc.png, calibration.png, lead_time.png and index.html in ``out``."""
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


__all__ = ["AGE_BANDS", "OPERATING_POINTS", "evaluate", "format_table", "operating_notes", "write_report"]
