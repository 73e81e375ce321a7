"""The twin's model card: the ``card`` section stored in the artifact, and ``MODEL_CARD.md`` rendered from it.

:func:`model_card` is called by ``lab.train.train`` (the card is part of the artifact);
:func:`render_model_card` / :func:`write_model_card` turn an artifact, and optionally an evaluation
report of it (``lab.report.evaluate``), into Markdown. Plain text from plain data: no fitting here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from models.labels import CRITERIA


def _criteria_summary() -> str:
    """The deterioration criteria in short, thresholds and comparisons from ``models.labels.CRITERIA``."""
    c = {kind: (op, f"{threshold:g}") for kind, (_, op, threshold, _) in CRITERIA.items()}
    return (f"HR {' '.join(c['hr_high'])} or {' '.join(c['hr_low'])} bpm, SBP {' '.join(c['sbp_low'])} mmHg, "
            f"SpO2 {' '.join(c['spo2_low'])} %, temperature {' '.join(c['temp_high'])} °C")


def model_card(artifact: dict[str, Any]) -> dict[str, Any]:
    coefs = sorted(zip(artifact["feature_names"], artifact["coefficients"], strict=True), key=lambda t: -abs(t[1]))
    var = artifact.get("variants") or {}
    left_out = set(var.get("candidates", {}).get(var.get("chosen"), {}).get("left_out", []))
    zero = [n for n, c in coefs if c == 0.0 and n not in left_out]
    return {
        "name": "wardtwin deterioration twin",
        "intended_use": ("Decision support on general adult wards: a calibrated probability that a monitored "
                         f"patient meets a deterioration criterion ({_criteria_summary()}, "
                         "sustained) within the next 6 hours, shown beside NEWS2 with the "
                         "reasons in words. It prompts a nurse to look; it does not replace NEWS2 escalation."),
        "not_for": ["paediatric or obstetric patients", "ICU / level 2-3 care", "patients on SpO2 scale 2 targets",
                    "automated treatment decisions"],
        "cohort": artifact["cohort"],
        "features": [{"name": n, "coefficient": round(c, 4)} for n, c in coefs],
        "metrics_test": artifact["metrics"]["test"],
        "limitations": [
            _data_limitation(artifact),
            "The label is a vital-sign threshold crossing derived from the monitor itself, not a clinical outcome "
            "(ICU admission, cardiac arrest, death).",
            "Every coefficient is constrained to its clinically expected sign (all features here are 'more is "
            "worse'). Features whose data pointed the other way end at zero instead of learning a wrong-way "
            f"effect: {', '.join(f'`{n}`' for n in zero) if zero else 'none'}. A zero weight means the twin "
            "ignores that feature, not that it is harmless; NEWS2, shown beside the twin, still scores every "
            "vital, new confusion and oxygen — read both."
            + (" Here that includes " + " and ".join(f"`{n}`" for n in ("not_alert", "o2_l_min", "on_oxygen")
                                                   if n in zero)
               + ": in the simulated ward oxygen is started during or after an event (and hypercapnic-COPD patients "
               "live on it without events), so as forward predictors they carry no risk signal in the expected "
               "direction there (a treatment paradox of the simulator's labels, not evidence that oxygen is safe)."
               if {"not_alert", "o2_l_min", "on_oxygen"} & set(zero) else "")
            + (f" Left out by the shipped variant `{var.get('chosen')}` (coefficient fixed at 0 by design, see "
               "'Choice of the shipped variant'): " + ", ".join(f"`{n}`" for n in sorted(left_out)) + "."
               if left_out else ""),
            "Vital-sign levels enter two-sided, once per vital (`*_outside_normal`, twin v4): how far the last-hour "
            "mean (charted: the newest value) lies outside the NEWS2 zero-point band, in NEWS2 points, so heart rate "
            "118 bpm scores above 55 bpm and bradycardia counts by its own NEWS2 scale. Inside the band a value adds "
            "nothing, so the twin cannot tell 'high-normal' from 'low-normal'. Change from the patient's own baseline "
            "counts only in the harmful direction and needs 5 hours of history; for the respiratory rate that "
            "direction is up, so a rate recovering from bradypnoea (say 9 to 16 /min) reads as a rising rate and "
            "raises the risk a little, while the two-sided level beside it falls.",
            "Contributions are measured from the average development-cohort window (the standardisation mean), so "
            "a contribution below zero means 'less than a typical ward patient' and its sentence says it lowers "
            "the risk; it is not a statement that the patient is safe.",
            "Linear and additive in its features: interactions the physiology has are only partly captured "
            "(the gradient-boosting challenger in the evaluation shows what a non-linear model reaches).",
            _operating_point_limitation(artifact),
            "Calibration is checked on the independent evaluation cohort (reliability plot in the report); the "
            "highest risk bins hold few windows and were under-predicted there, so read a high risk as 'at least'.",
            "NEWS2 beside the twin uses SpO2 scale 1 in the service (the reading contract carries no prescribed "
            "target); training and evaluation score scale 2 for the simulated hypercapnic-COPD patients.",
            "Missing features are imputed with the development mean (zero contribution); a patient with few "
            "measurements looks average, not safe — check the 'not measured' lines. Gaps in heart-rate monitoring "
            "can only raise the risk, never lower it.",
            "Deterioration is rare (about 2 % of prediction windows are positive), so most calibrated risks are "
            "below 0.1; the calibration above 0.3 rests on few windows (see the reliability table in "
            "reports/evaluation/).",
            "NEWS2 is computed from window aggregates with SpO2 scale 1 and no charted new confusion beyond ACVPU.",
        ],
    }


def _data_limitation(artifact: dict[str, Any]) -> str:
    real = artifact["cohort"].get("real_data")
    if not real:
        return ("Trained and evaluated on simulated patients (wardtwin simulator), not on real ward data; "
                "performance on real patients is unknown until a prospective silent evaluation.")
    return (f"Trained on simulated ward patients and on {real['stays']} real ICU stays ({real['dataset']}), chosen "
            "by a rule stated before the comparison (`lab.source_choice.SOURCE_RULE`, `reports/sources/`). "
            "No real *ward* patient was used: set A is an ICU (SpO2 from blood gases, arterial pressures, sedation "
            "read as confusion, vitals charted hourly at best), so levels are learned from ICU patients and "
            "trends from the simulator. Calibration and the alert threshold come from the simulated ward only. "
            "Real-ward performance is unknown until a prospective silent evaluation.")


def _operating_point_limitation(artifact: dict[str, Any]) -> str:
    point = (artifact.get("operating_points") or {}).get("alert") or {}
    if point.get("threshold") is None:
        return ("Operating point: this artifact records no alert threshold, so the service alerts at 0.7 unless "
                "WARDTWIN_ALERT_THRESHOLD is set; patients already meeting a deterioration criterion are alerted "
                "whatever the risk.")
    lo, hi = point.get("threshold_ci") or (None, None)
    return (f"Operating point: the service alerts at the artifact's threshold {point['threshold']:g} (development "
            f"patients' 95 % bootstrap interval {_fmt(lo, '.3f')}–{_fmt(hi, '.3f')}; target: {point['target']}) "
            "and clears below 0.8 × it, unless a site sets WARDTWIN_ALERT_THRESHOLD / "
            "WARDTWIN_ALERT_CLEAR_THRESHOLD. The budget holds on the simulated ward; on another population the "
            "alert rate and sensitivity differ (see the evaluations); NEWS2 escalation on charted observations stays "
            "the floor.")


def _choice_section(artifact: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    var = artifact.get("variants")
    if var and "source_choice" in var:
        sc = var["source_choice"]
        lines += ["## Choice of the training data", "",
                  f"Rule (`lab.source_choice.SOURCE_RULE`): {sc['rule']}. Chosen: **{sc['chosen']}**.", "",
                  *_source_rows(sc["candidates"], sc["chosen"], "chosen")]
        lines += ["", "Out-of-fold on both sources (joint 5-fold patient cross-validation). The simulator alone "
                  "was chosen, so the twin never saw set A and its feature variant follows "
                  "`lab.train.SELECTION_RULE` below. Full comparison: `reports/sources/`.", ""]
    if var and "source_offsets" in var:
        lines += ["## Choice of the training data", "",
                  f"Rule (`lab.source_choice.SOURCE_RULE`): {var['rule']}. Shipped: **{var['chosen']}** "
                  f"(per-source intercepts {', '.join(f'{k} {v:+.3f}' for k, v in var['source_offsets'].items())}; "
                  "the shipped intercept is the simulated ward's).", "",
                  *_source_rows(var["candidates"], var["chosen"], "shipped")]
        lines += ["", "Out-of-fold on both sources (joint 5-fold patient cross-validation; simulator development "
                  "patients, NEWS2 every 5 min; set A stay-hours, NEWS2 charted hourly). Full comparison: "
                  "`reports/sources/`.", ""]
    elif var:
        lines += ["## Choice of the shipped variant", "",
                  f"Rule (`lab.train.SELECTION_RULE`): {var['rule']}. "
                  f"Shipped: **{var['chosen']}**.", "",
                  "| variant | features left out | free features | cross-fitted development AUROC | AUPRC |",
                  "|---|---|---|---|---|"]
        for name, v in var["candidates"].items():
            left = ", ".join(f"`{n}`" for n in v["left_out"]) or "none"
            lines.append(f"| {name}{' (shipped)' if name == var['chosen'] else ''} | {left} | {v['free_features']} "
                         f"| {_fmt(v['cross_fitted_auroc'], '.4f')} | {_fmt(v['cross_fitted_auprc'], '.4f')} |")
        lines.append("")
    lines += _threshold_section(artifact)
    return lines


def _floor_lines(artifact: dict[str, Any]) -> list[str]:
    fl = artifact.get("floors")
    if not fl:
        return []
    held = [n for n, lo in fl["per_sd_fitted"].items() if lo > 0 and n in artifact["feature_names"]
            and abs(artifact["uncalibrated"]["coefficients"][artifact["feature_names"].index(n)] - lo) < 1e-9]
    return [f"- A floor for what NEWS2 counts: every two-sided level, new confusion (`not_alert`, 3 NEWS2 points) "
            f"and oxygen (`on_oxygen`, 2 points) gets at least {fl['log_odds_per_news2_point']:g} log-odds per NEWS2 "
            "point (odds ratio "
            f"{math.exp(fl['log_odds_per_news2_point']):.3f} per point) on the fitted scale, so the twin cannot ignore "
            "a parameter NEWS2 scores; the shipped coefficient is the Platt slope times the fitted one. At the floor "
            "(the data asked for less): " + (", ".join(f"`{n}`" for n in held) or "none") + "."]


def _threshold_section(artifact: dict[str, Any]) -> list[str]:
    point = (artifact.get("operating_points") or {}).get("alert") or {}
    if point.get("threshold") is None:
        return []
    lo, hi = point.get("threshold_ci") or (None, None)
    curve = [c for i, c in enumerate(point.get("curve", [])) if i % 2 == 1]  # every 0.02, up to 0.3
    if "budget_alerts_per_100_patient_days" not in point:  # an artifact before issue 20
        return ["## Alert threshold", "", f"Target: {point['target']}. Threshold **{point['threshold']:g}** "
                f"(95 % interval {_fmt(lo, '.3f')}–{_fmt(hi, '.3f')}).", ""]
    lines = ["## Alert threshold: from an alert budget", "",
             f"Budget: **{point['budget_alerts_per_100_patient_days']:g} twin alerts per 100 patient-days** on the "
             f"simulated general ward; an alert needs the risk at or above the threshold for "
             f"**{point['sustain_windows']} consecutive 5-minute windows** and clears below "
             f"{point['clear_fraction']:g} × the threshold. Rule: {point['rule']}.", "",
             f"Threshold **{point['threshold']:g}** (patient-bootstrap 95 % interval {_fmt(lo, '.3f')}–"
             f"{_fmt(hi, '.3f')}, {point['bootstrap']['draws']} draws over {point['patients']} development patients, "
             f"{point['patient_days']:g} patient-days; {point['weighting']}). At it: "
             f"{_fmt(point['twin_alerts_per_100_patient_days'], '.2f')} twin alerts per 100 ward patient-days "
             f"({_fmt(point['twin_alerts_per_100_patient_days_development_mix'], '.2f')} on the enriched development "
             f"mix), against {_fmt(point['news2_5_every_5min_alerts_per_100_patient_days'], '.1f')} for NEWS2 >= 5 "
             "scored on every monitor window (no ward does this; the service never alerts on it). First-event "
             f"sensitivity on the development patients ({point['first_events']} first events): twin "
             f"{_fmt(point['twin_sensitivity'], '.2f')}, NEWS2 >= 5 every 5 min "
             f"{_fmt(point['news2_5_sensitivity'], '.2f')} "
             f"({point['sensitivity_rule']}).", "",
             "| threshold | " + " | ".join(f"{c['threshold']:g}" for c in curve) + " |",
             "|---|" + "---|" * len(curve),
             "| twin alerts / 100 ward patient-days | " + " | ".join(
                 f"{c['alerts_per_100_patient_days']:.1f}" for c in curve) + " |", ""]
    if not point.get("budget_met", True):
        lines += [f"**The budget is not met**: even the highest threshold on the grid raises "
                  f"{_fmt(point['twin_alerts_per_100_patient_days'], '.1f')} twin alerts per 100 patient-days.", ""]
    if "threshold_before_site_calibration" in point:
        lines += [f"Site-calibrated: the threshold maps the shipped {point['threshold_before_site_calibration']:g} "
                  "through the site's calibration map, so the same windows alert.", ""]
    return lines


def _cal_cell(c: dict[str, Any] | None) -> str:
    if not c:
        return "— | —"
    s_lo, s_hi = c["calibration_slope_ci"]
    o_lo, o_hi = c["observed_over_expected_ci"]
    return (f"{_fmt(c['calibration_slope'], '.2f')} ({_fmt(s_lo, '.2f')}–{_fmt(s_hi, '.2f')}) | "
            f"{_fmt(c['observed_over_expected'], '.2f')} ({_fmt(o_lo, '.2f')}–{_fmt(o_hi, '.2f')})")


def _calibration_section(artifact: dict[str, Any]) -> list[str]:
    cal = artifact.get("calibration_check")
    if not cal:
        return []
    rows = [("test patients (held-out 20 % of the training cohort)", cal.get("test")),
            ("development patients, cross-fitted", cal.get("cross_fitted"))]
    ext = cal.get("set_a_out_of_fold")
    if ext:
        rows += [("set A out of fold, as shipped (ward calibration)", ext.get("as_shipped")),
                 ("set A out of fold, after `wardtwin calibrate` fitted out of fold",
                  ext.get("after_site_calibration_out_of_fold"))]
    lines = ["## Calibration", "",
             "Calibration slope (1 is ideal; above 1 the risks are too compressed, below 1 too spread) and observed / "
             "expected events (1 is ideal; above 1 the twin under-predicts), patient-bootstrap 95 % intervals "
             "(`lab.calibrate.calibration_report`).", "",
             "| rows | windows (events) | calibration slope (95 % CI) | observed / expected (95 % CI) |",
             "|---|---|---|---|"]
    for name, c in rows:
        if c:
            lines.append(f"| {name} | {c['n']} ({c['events']}) | {_cal_cell(c)} |")
    lines += ["", "A site recalibrates the map on its own out-of-sample scores with `wardtwin calibrate --scores "
              "FILE --out ARTIFACT` (slope and intercept refitted, weights unchanged).", ""]
    site = artifact.get("site_calibration")
    if site:
        f = site["fitted"]
        lines += [f"**Site-calibrated**: slope {site['slope']:.3f}, intercept {site['intercept']:+.3f} on the shipped "
                  f"logit (fitted on {f['on']}: {f['rows']} rows, {f['events']} events); there, calibration slope "
                  f"{_fmt(site['before']['calibration_slope'], '.2f')} → "
                  f"{_fmt(site['after']['calibration_slope'], '.2f')}, "
                  f"observed / expected {_fmt(site['before']['observed_over_expected'], '.2f')} → "
                  f"{_fmt(site['after']['observed_over_expected'], '.2f')}.", ""]
    return lines


#: Single abnormalities read by a clinician: (what, feature, value of the feature).
_EXAMPLES: tuple[tuple[str, str, float], ...] = (
    ("heart rate 118 bpm", "hr_outside_normal", 118.0), ("heart rate 55 bpm", "hr_outside_normal", 55.0),
    ("heart rate 45 bpm", "hr_outside_normal", 45.0), ("heart rate 38 bpm", "hr_outside_normal", 38.0),
    ("respiratory rate 24 /min", "rr_outside_normal", 24.0), ("respiratory rate 28 /min", "rr_outside_normal", 28.0),
    ("respiratory rate 9 /min", "rr_outside_normal", 9.0), ("SpO2 92 %", "spo2_below_normal", 92.0),
    ("systolic BP 95 mmHg", "sbp_outside_normal", 95.0), ("temperature 39.5 °C", "temp_outside_normal", 39.5),
)


def _example_rows(artifact: dict[str, Any]) -> list[str]:
    """What one abnormal vital (or new confusion, or oxygen) adds to the logit against the same patient with it
    normal, through its level feature alone (trends and times outside the band add more when it persists)."""
    from models import features as F

    names = artifact["feature_names"]
    mean = dict(zip(names, artifact["scaler"]["mean"], strict=True))
    scale = dict(zip(names, artifact["scaler"]["scale"], strict=True))
    coef = dict(zip(names, artifact["coefficients"], strict=True))
    clips = artifact["scaler"].get("clip")
    clip = dict(zip(names, np.broadcast_to(np.asarray(math.inf if clips is None else clips, dtype=float),
                                           (len(names),)).tolist(), strict=True))
    levels = {lv.name: lv for lv in F.LEVELS}

    def push(name: str, value: float, base: float) -> float:
        z = np.clip((np.array([value, base]) - mean[name]) / scale[name], -clip[name], clip[name])
        return float(coef[name] * (z[0] - z[1]))

    cases = [(what, name, float(levels[name].of(np.array([x]))[0])) for what, name, x in _EXAMPLES
             if name in coef and name in levels]
    cases += [(what, name, 1.0) for what, name in (("new confusion (not Alert)", "not_alert"),
                                                    ("on supplemental oxygen", "on_oxygen")) if name in coef]
    lines = ["| abnormality | feature value | log-odds added | odds ratio |", "|---|---|---|---|"]
    for what, name, value in cases:
        d = push(name, value, 0.0)
        lines.append(f"| {what} | `{name}` = {value:.2f} | {d:+.2f} | {math.exp(d):.2f} |")
    return lines


def render_model_card(artifact: dict[str, Any], report: dict[str, Any] | None = None,
                      real: dict[str, Any] | None = None) -> str:
    """The model card as Markdown; with an evaluation ``report`` of this twin (simulator) and a ``real`` one
    (``wardtwin evaluate physionet2012``), their results are included."""
    card = artifact["card"]
    m = artifact["metrics"]["test"]
    cv = artifact["metrics"].get("cross_fitted", {})
    feats = {f["name"]: f for f in artifact["features"]}
    lines = [
        f"# Model card — {card['name']} `{artifact['version']}`", "",
        "_Generated from `twin.json` by `wardtwin train` (and `wardtwin evaluate` for the evaluation section); "
        "do not edit by hand._", "",
        "## Intended use", "", card["intended_use"], "", "Not for: " + "; ".join(card["not_for"]) + ".", "",
        "## Training cohort", "",
        *(f"- {k}: {v}" for k, v in sorted(artifact["cohort"].items())),
        f"- split: {artifact['split']['rule']} (seed {artifact['split']['seed']}; patients "
        f"{artifact['split']['patients']})", "",
        "## Model", "",
        f"Logistic regression on {len(artifact['feature_names'])} standardised features, each coefficient "
        "constrained to the feature's clinically expected sign (L-BFGS-B with bounds; L2, "
        f"C={artifact['estimator']['C']}, class_weight=balanced), fitted on the development patients "
        "(train + validation). Platt-calibrated on the cross-fitted logits of the development patients "
        f"({artifact['split'].get('folds', '?')} patient folds; a={artifact['calibration']['a']:.4f} > 0, "
        f"c={artifact['calibration']['c']:.4f}) and folded into the coefficients, so each contribution is "
        "coefficient × standardised value, they add up to the logit, and calibration keeps every sign.", "",
        "### Constraint set", "",
        "- Every feature is 'more is worse' (direction `+1`, with its clinical reason below): its coefficient is "
        "bounded at 0 from below, never negative. Levels are two-sided (distance outside the NEWS2 normal band, "
        "either side), so a low heart rate or a low respiratory rate raises the risk by the same rule as a high one.",
        *_floor_lines(artifact),
        "- The Platt slope must be positive (checked), so calibration keeps every sign; a site's own calibration "
        "(`wardtwin calibrate`) must be positive too.",
        "- Standardised values are winsorised at ±4 SD (the features NEWS2 counts no lower than 4 NEWS2 points' worth, "
        "so 38 bpm still reads above 118 bpm); a missing feature contributes 0 ('not measured').",
        "- Features a variant leaves out are fixed at 0 by design (see the choice below).", "",
        "### Coefficients (per SD)", "",
        "Read a row as: one standard deviation more of the feature multiplies the odds of deterioration within 6 h "
        "by the odds ratio, the other features held fixed. A coefficient of 0 means the data gave no signal in the "
        "expected direction beyond the other features; NEWS2, scored beside the twin, still counts that vital.", "",
        "| feature | what it means | unit | 1 SD = | coefficient per SD | odds ratio per SD | why it can only raise "
        "the risk |", "|---|---|---|---|---|---|---|",
    ]
    scale = dict(zip(artifact["feature_names"], artifact["scaler"]["scale"], strict=True))
    for name, coef in sorted(zip(artifact["feature_names"], artifact["coefficients"], strict=True),
                             key=lambda t: (-abs(t[1]), t[0])):
        f = feats[name]
        lines.append(f"| `{name}` | {f['description']} | {f['unit']} | {scale[name]:.3g} | {coef:+.3f} | "
                     f"{math.exp(coef):.2f} | {f.get('reason', '')} |")
    lines += ["", "### What one abnormality adds", "",
              "Against the same patient with that vital in the normal band, through its level feature alone (a "
              "persisting abnormality adds its time outside the band and trends too):", "",
              *_example_rows(artifact)]
    lines += ["", f"Intercept {artifact['intercept']:+.3f}.", "",
              "## Test metrics (held-out 20 % of the training cohort's patients, eligible windows)", "",
              "| metric | twin | NEWS2 | twin, cross-fitted on development patients |", "|---|---|---|---|",
              f"| AUROC | {m['auroc']:.3f} | {m['news2_auroc']:.3f} | {_fmt(cv.get('auroc'))} |",
              f"| AUPRC | {m['auprc']:.3f} | {m['news2_auprc']:.3f} | {_fmt(cv.get('auprc'))} |",
              f"| Brier | {m['brier']:.4f} | | {_fmt(cv.get('brier'), '.4f')} |",
              f"| calibration slope / intercept | {m['calibration_slope']:.2f} / {m['calibration_intercept']:.2f} | "
              f"| {_fmt(cv.get('calibration_slope'), '.2f')} / {_fmt(cv.get('calibration_intercept'), '.2f')} |",
              f"| windows / positives | {m['n']} / {m['positives']} | | "
              f"{cv.get('n', '—')} / {cv.get('positives', '—')} |",
              "", *_calibration_section(artifact), *_choice_section(artifact)]
    if report is not None and report.get("twin_version") == artifact["version"]:
        lines += _evaluation_section(report)
    else:
        lines += ["See `reports/evaluation/` (`wardtwin evaluate`) for bootstrap intervals, operating points, lead "
                  "times, subgroups and the challenger.", ""]
    if real is not None and real.get("twin_version") == artifact["version"]:
        lines += _real_section(real)
    lines += ["## Known limitations", "", *(f"- {x}" for x in card["limitations"]), ""]
    return "\n".join(lines)


def _ci(d: dict[str, Any], key: str) -> str:
    lo, hi = d[f"{key}_ci"]
    return f"{_fmt(d[key])} ({_fmt(lo)}–{_fmt(hi)})"


def _real_section(real: dict[str, Any]) -> list[str]:
    """Results on real patients (PhysioNet 2012 set A), from ``wardtwin evaluate physionet2012``'s report."""
    ev, death = real["events_6h"]["discrimination"], real["death"]["discrimination"]
    lines = ["## Real patients: PhysioNet/CinC Challenge 2012 set A", "",
             f"{real['scope']}. 95 % intervals: patient-level bootstrap. Full report: `reports/physionet2012/`.", "",
             "| task | twin | NEWS2 | SAPS-I | SOFA |", "|---|---|---|---|---|",
             f"| 6-hour events (AUROC, same hours) | {_ci(ev['twin'], 'auroc')} | {_ci(ev['news2'], 'auroc')} | | |",
             f"| in-hospital death, peak over 48 h | {_ci(death['twin_peak'], 'auroc')} | "
             f"{_ci(death['news2_peak'], 'auroc')} | {_ci(death['saps1'], 'auroc')} | {_ci(death['sofa'], 'auroc')} |",
             f"| in-hospital death, last at 48 h | {_ci(death['twin_last'], 'auroc')} | "
             f"{_ci(death['news2_last'], 'auroc')} | | |", ""]
    for name, op in real["events_6h"].get("sensitivity_30min_lead", {}).items():
        lo, hi = op["sensitivity_ci"]
        lines.append(f"- First-event sensitivity with ≥ 30 min lead, {name}: {_fmt(op['sensitivity'], '.2f')} "
                     f"({_fmt(lo, '.2f')}–{_fmt(hi, '.2f')}; {op['detected']}/{op['first_events']}).")
    cal = real["events_6h"].get("calibration", {}).get("in_the_large")
    if cal:
        lines.append(f"- Calibration on these stays: mean risk {_fmt(cal['expected'])} against an event rate of "
                     f"{_fmt(cal['observed'])}; the threshold was set for a ward, so a sicker population needs its "
                     "own (`WARDTWIN_ALERT_THRESHOLD`).")
    for name, v in real.get("variants", {}).items():
        lines.append(f"- Variant `{name}`{' (not shipped)' if v.get('not_shipped') else ''}: 6-hour events AUROC "
                     f"{_fmt(v['events_auroc'])} ({v['events_auroc_minus_news2']:+.3f} vs NEWS2), in-hospital death "
                     f"{_fmt(v['death_auroc_last'])} (last) / {_fmt(v['death_auroc_peak'])} (peak); see "
                     f"`reports/physionet2012/{v.get('file', '')}`.")
    goal = real["events_6h"]["goal"]
    lo = (goal.get("margin_ci") or [None])[0]
    if lo is not None and lo > 0:
        lines.append(f"- On these real patients the twin ranks 6-hour events better than NEWS2 charted hourly "
                     f"(difference {goal['margin']:+.3f}, 95 % CI from {lo:+.3f}); NEWS2's own escalation rule still "
                     "alerts whatever the twin says (alert kind `news2`).")
    else:
        lines.append("- This twin is **not** better than NEWS2 on these real patients; the service therefore alerts "
                     "on NEWS2's own escalation rule whatever the twin says (alert kind `news2`).")
    lines.append("")
    return lines


def _fmt(x: Any, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def _evaluation_section(report: dict[str, Any]) -> list[str]:
    d, c, o = report["discrimination"], report["calibration"], report["operating_points"]
    cohort = report.get("cohort", {})
    lines = ["## Evaluation", "",
             f"`wardtwin evaluate` on {report['patients']} patients ({report['patient_days']:.1f} patient-days; "
             f"{report['scope']}; simulator {cohort.get('simulator_version', '?')}, "
             f"seed {cohort.get('seed') or ', '.join(map(str, report.get('seeds', []))) or '?'}). "
             "95 % intervals: patient-level bootstrap.", "",
             "| model | AUROC (95 % CI) | AUPRC (95 % CI) | Brier | calibration slope / intercept |",
             "|---|---|---|---|---|"]
    for k in ("twin", "news2", "challenger"):
        if k in d:
            cc = c.get(k, {})
            lines.append(f"| {k} | {_fmt(d[k]['auroc'])} ({_fmt(d[k]['auroc_ci'][0])}–{_fmt(d[k]['auroc_ci'][1])}) | "
                         f"{_fmt(d[k]['auprc'])} ({_fmt(d[k]['auprc_ci'][0])}–{_fmt(d[k]['auprc_ci'][1])}) | "
                         f"{_fmt(cc.get('brier'), '.4f')} | {_fmt(cc.get('calibration_slope'), '.2f')} / "
                         f"{_fmt(cc.get('calibration_intercept'), '.2f')} |")
    lines += ["", "| operating point | sensitivity (events) | PPV | alerts / patient-day | median lead (h) |",
              "|---|---|---|---|---|"]
    for name, op in o.items():
        lines.append(f"| {name} | {_fmt(op['sensitivity'], '.2f')} ({op['detected']}/{op['events']}) | "
                     f"{_fmt(op['ppv'], '.2f')} | {_fmt(op['alerts_per_patient_day'], '.2f')} | "
                     f"{_fmt(op['median_lead_h'], '.1f')} |")
    lines += ["", "Goals: " + "; ".join(f"{k} = {v if not isinstance(v, float) else format(v, '+.3f')}"
                                        for k, v in report["goals"].items()) + ".", ""]
    for note in report.get("notes", []):
        lines.append(f"- {note}")
    if report.get("notes"):
        lines.append("")
    return lines

def write_model_card(artifact: dict[str, Any], path: str | Path, report: dict[str, Any] | None = None,
                     real: dict[str, Any] | None = None) -> Path:
    p = Path(path)
    p.write_text(render_model_card(artifact, report, real), encoding="utf-8")
    return p

def _source_rows(candidates: dict[str, Any], chosen: str, mark: str) -> list[str]:
    """The training-data comparison table: each candidate's margin over NEWS2 on both sources."""
    rows = ["| trained on | simulator: AUROC vs NEWS2, margin (95 % CI) "
            "| set A: AUROC vs NEWS2, margin (95 % CI) | worse margin |", "|---|---|---|---|"]
    for name, v in candidates.items():
        cells = " | ".join(f"{m['auroc']:.3f} vs {m['news2_auroc']:.3f}, {m['margin']:+.3f} "
                           f"({m['margin_ci'][0]:+.3f} to {m['margin_ci'][1]:+.3f})"
                           for m in (v["margins"]["simulator"], v["margins"]["set-a"]))
        rows.append(f"| {name}{f' ({mark})' if name == chosen else ''} | {cells} | {v['worse_margin']:+.3f} |")
    return rows


__all__ = ["model_card", "render_model_card", "write_model_card"]
