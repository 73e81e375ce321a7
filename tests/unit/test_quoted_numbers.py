"""The figures README.md and the model card quote agree with the report JSON they come from.

Each ``Quote`` is a passage of a document with ``{}`` where a figure stands, and, per ``{}``, the JSON path (or a
function of the report) it must equal to the printed precision (half a unit of its last printed digit). A figure
changed in the document or in the JSON fails; a passage reworded fails too, until its quote here follows it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
README = "README.md"
CARD = "models/artifacts/MODEL_CARD.md"
EVAL = "reports/evaluation/report.json"
PN = "reports/physionet2012/report.json"
CV = "reports/physionet2012/cv_variant.json"
SRC = "reports/sources/report.json"
HELDOUT = "reports/alert-burden-heldout/report.json"
CONFIRM = "reports/alert-burden-confirm/report.json"
BURDEN = "reports/alert-burden/report.json"
BURDEN_PN = "reports/alert-burden-physionet2012/report.json"
BURDEN_PN_RCP = "reports/alert-burden-physionet2012-rcp-trigger/report.json"
ART = "models/artifacts/twin.json"
LOOP = "reports/loop-latency/report.json"

_NUMBER = r"([−+-]?\d[\d,]*(?:\.\d+)?)"
Path_ = str | Callable[[Any], float]


@dataclass(frozen=True)
class Quote:
    doc: str
    passage: str
    report: str
    paths: tuple[Path_, ...]

    def __str__(self) -> str:
        return f"{self.doc}: {self.passage[:60]}"


def at(report: Any, path: str) -> float:
    for key in path.split("/"):
        report = report[int(key)] if isinstance(report, list) else report[key]
    return float(report)


def diff(a: str, b: str) -> Callable[[Any], float]:
    return lambda report: at(report, a) - at(report, b)


def pct(path: str) -> Callable[[Any], float]:
    """A fraction printed as a percentage."""
    return lambda report: 100 * at(report, path)


def ci(path: str, key: str = "auroc") -> tuple[str, str, str]:
    """A value and its interval: ``path/key``, ``path/key_ci/0``, ``path/key_ci/1``."""
    return f"{path}/{key}", f"{path}/{key}_ci/0", f"{path}/{key}_ci/1"


def est(name: str) -> tuple[str, str, str]:
    """An alert-burden estimate with its interval."""
    base = f"pooled/estimates/{name}"
    return f"{base}/value", f"{base}/ci95/0", f"{base}/ci95/1"


def summ(name: str) -> tuple[str, str, str]:
    """An estimate of the alert-burden report's issue-20 summary with its interval."""
    base = f"summary/{name}"
    return f"{base}/value", f"{base}/ci95/0", f"{base}/ci95/1"


def op(name: str, lead: bool = True) -> tuple[str, ...]:
    """An operating point: sensitivity (CI), detected/events, PPV (CI), alerts per patient-day (CI), lead (IQR)."""
    p = f"pooled/operating_points/{name}"
    tail = (f"{p}/median_lead_h", f"{p}/lead_iqr_h/0", f"{p}/lead_iqr_h/1") if lead else ()
    return (*ci(p, "sensitivity"), f"{p}/detected", f"{p}/events", *ci(p, "ppv"),
            *ci(p, "alerts_per_patient_day"), *tail)


def margins(candidate: str, source: str) -> tuple[str, str, str]:
    p = f"candidates/{candidate}/margins/{source}"
    return f"{p}/auroc", f"{p}/news2_auroc", f"{p}/margin"


ALERT = "operating_points/alert"
THRESHOLD_PASSAGE = (
    "The target, stated in `lab.train.ALERT_TARGET`: at most {} twin alerts per 100 patient-days on the simulated "
    "general ward, an alert raised only when the risk has held at or above the threshold for {} consecutive 5-minute "
    "windows and cleared below 0.8 × it, counted on the development patients' cross-fitted risks reweighted by "
    "archetype to the ward mix (test patients play no part). It came out at **{}** (patient-bootstrap 95 % interval "
    "{}–{}), {} twin alerts per 100 ward patient-days; at it the twin warns of {} of the development patients' {} "
    "first events at least 30 min ahead, against {} for NEWS2 ≥ 5 scored on every monitor window.")
CALIBRATION_PASSAGE = (
    "Calibration on the training cohort's held-out test patients: slope {} ({}–{}), observed/expected {} ({}–{}). "
    "On set A: as shipped (ward calibration) slope {} ({}–{}), observed/expected {} ({}–{}); after `wardtwin "
    "calibrate` fitted out of fold (each fold's slope and intercept refitted on the other folds' stays) slope {} "
    "({}–{}), observed/expected {} ({}–{}).")


def min_subgroup_margin_low(report: Any) -> float:
    """The lowest lower end of the 6-hour-event margin's interval over the subgroups of 30 or more stays."""
    return min(g["events_6h"]["margin_ci"][0] for band in report["subgroups"].values() for g in band.values()
               if g.get("stays", 0) >= 30 and "margin_ci" in (g.get("events_6h") or {}))


def feature(report: Any, name: str) -> dict[str, Any]:
    """One feature's row of ``wardtwin evaluate set-a-weights``' report."""
    return next(f for f in report["features"] if f["feature"] == name)


def per_point(report: Any, name: str, key: str) -> float:
    """A coefficient per set-A SD of a level feature (in NEWS2 points) as log-odds per NEWS2 point."""
    return feature(report, name)[key] / feature(report, name)["set_a_sd"]


def fold_mean(report: Any, key: str) -> float:
    folds = report["fold_models"]["folds"]
    return sum(f[key] for f in folds) / len(folds)


def cal(path: str) -> tuple[str, ...]:
    """Calibration slope and observed/expected, each with its interval, under ``calibration_check/path``."""
    p = f"calibration_check/{path}"
    return (f"{p}/calibration_slope", f"{p}/calibration_slope_ci/0", f"{p}/calibration_slope_ci/1",
            f"{p}/observed_over_expected", f"{p}/observed_over_expected_ci/0", f"{p}/observed_over_expected_ci/1")


E6 = "events_6h/discrimination"
DEATH = "death/discrimination"
SENS = "events_6h/sensitivity_30min_lead"
POOLED = "pooled/discrimination"
TWIN_OP = "twin >= 0.14 (service default)"
PN_TWIN = f"{SENS}/twin >= 0.14"  # the artifact's alert threshold (operating_points.alert)
PN_README = "reports/physionet2012/README.md"
HAZARDS = "docs/hazard-log.md"
EVAL_README = "reports/evaluation/README.md"
SA_WEIGHTS = "reports/physionet2012/set_a_weights.json"

QUOTES = (
    # -- README: the shipped twin on PhysioNet 2012 set A
    Quote(README, "| 6-hour events, AUROC on the same {} eligible hours | **{} ({}–{})** | {} ({}–{}) |", PN,
          ("events_6h/eligible_hours_same", *ci(f"{E6}/twin"), *ci(f"{E6}/news2"))),
    Quote(README, "| first-event sensitivity, ≥ 30 min lead ({} events) | {} ({}–{}) at the ward threshold {}, "
                  "median lead {} h | {} ({}–{}) at ≥ 5, {} h |", PN,
          (f"{PN_TWIN}/first_events", *ci(PN_TWIN, "sensitivity"), f"{PN_TWIN}/threshold",
           f"{PN_TWIN}/median_lead_h", *ci(f"{SENS}/NEWS2 >= 5", "sensitivity"), f"{SENS}/NEWS2 >= 5/median_lead_h")),
    Quote(README, "| in-hospital death ({} stays, {} deaths), peak over 48 h | {} ({}–{}) | {} ({}–{}) | {} ({}–{}) "
                  "| {} ({}–{}) |", PN,
          ("death/stays", "death/deaths", *ci(f"{DEATH}/twin_peak"), *ci(f"{DEATH}/news2_peak"),
           *ci(f"{DEATH}/saps1"), *ci(f"{DEATH}/sofa"))),
    Quote(README, "| in-hospital death, last score at 48 h | {} ({}–{}) | {} ({}–{}) |", PN,
          (*ci(f"{DEATH}/twin_last"), *ci(f"{DEATH}/news2_last"))),
    Quote(README, "The twin ranks events {} ({} to {}) AUROC above NEWS2", PN,
          ci(f"{E6}/twin", "auroc_minus_news2")),
    Quote(README, "(lower ends of the intervals {} or more;", PN, (lambda r: min_subgroup_margin_low(r),)),
    Quote(README, "warns of far fewer first events than NEWS2 ≥ 5** ({} vs {}) with less lead ({} vs {} h)", PN,
          (f"{PN_TWIN}/sensitivity", f"{SENS}/NEWS2 >= 5/sensitivity", f"{PN_TWIN}/median_lead_h",
           f"{SENS}/NEWS2 >= 5/median_lead_h")),
    Quote(README, "the twin's mean risk is {} against an event rate of {}.", PN,
          ("events_6h/calibration/in_the_large/expected", "events_6h/calibration/in_the_large/observed")),
    Quote(README, "reaches {}, below NEWS2's last charted score ({}), above SAPS-I ({},", PN,
          (f"{DEATH}/twin_last/auroc", f"{DEATH}/news2_last/auroc", f"{DEATH}/saps1/auroc")),
    Quote(README, "5-fold CV) reaches {} on set A but ranks the simulated ward's events below NEWS2 ({} vs {} in", CV,
          ("events_6h/discrimination/twin_cv/auroc",
           lambda r: at(report(SRC), "candidates/set-a/margins/simulator/auroc"),
           lambda r: at(report(SRC), "candidates/set-a/margins/simulator/news2_auroc"))),
    Quote(README, "met**, slope {} ({}–{}), from {} ({}–{}) as shipped", ART,
          (*cal("set_a_out_of_fold/after_site_calibration_out_of_fold")[:3], *cal("set_a_out_of_fold/as_shipped")[:3])),
    # -- reports/physionet2012/README.md: its own tables and bullets
    Quote(PN_README, "| 6-hour events, AUROC on the same {} eligible hours | **{} ({}–{})** | {} ({}–{}) |", PN,
          ("events_6h/eligible_hours_same", *ci(f"{E6}/twin"), *ci(f"{E6}/news2"))),
    Quote(PN_README, "| twin − NEWS2 | **{} ({} to {})** |", PN, ci(f"{E6}/twin", "auroc_minus_news2")),
    Quote(PN_README, "| first-event sensitivity, ≥ 30 min lead ({} events) | {} ({}–{}) at the ward threshold {}, {} h "
                     "median lead | {} ({}–{}) at ≥ 5, {} h |", PN,
          (f"{PN_TWIN}/first_events", *ci(PN_TWIN, "sensitivity"), f"{PN_TWIN}/threshold",
           f"{PN_TWIN}/median_lead_h", *ci(f"{SENS}/NEWS2 >= 5", "sensitivity"), f"{SENS}/NEWS2 >= 5/median_lead_h")),
    Quote(PN_README, "| in-hospital death ({} stays, {} deaths), peak over 48 h | {} ({}–{}) | {} ({}–{}) | {} ({}–{}) "
                     "| {} ({}–{}) |", PN,
          ("death/stays", "death/deaths", *ci(f"{DEATH}/twin_peak"), *ci(f"{DEATH}/news2_peak"),
           *ci(f"{DEATH}/saps1"), *ci(f"{DEATH}/sofa"))),
    Quote(PN_README, "| in-hospital death, last at 48 h | {} ({}–{}) | {} ({}–{}) |", PN,
          (*ci(f"{DEATH}/twin_last"), *ci(f"{DEATH}/news2_last"))),
    Quote(PN_README, "sustained as two consecutive abnormal charted values: {} events in {} stays, {} of them low "
                     "systolic pressure and {} a heart rate above 130.", PN,
          ("events_6h/events", "events_6h/stays_with_event", "events_6h/events_by_kind/sbp_low",
           "events_6h/events_by_kind/hr_high")),
    Quote(PN_README, "the twin's mean risk on these ICU hours is {} against an event rate of {} (calibration intercept "
                     "at slope 1: {});", PN,
          ("events_6h/calibration/in_the_large/expected", "events_6h/calibration/in_the_large/observed",
           "events_6h/calibration/in_the_large/intercept_slope_1")),
    Quote(PN_README, "its slope is {} ({}–{}) and observed/expected {} ({}–{}).", ART,
          cal("set_a_out_of_fold/as_shipped")),
    Quote(PN_README, "on a site's own data would) gives slope {} ({}–{}) and observed/expected {} ({}–{}).", ART,
          cal("set_a_out_of_fold/after_site_calibration_out_of_fold")),
    Quote(PN_README, "**At its ward threshold the twin warns of far fewer first events than NEWS2 ≥ 5** ({} against "
                     "{}, with {} against {} h of lead).", PN,
          (f"{PN_TWIN}/sensitivity", f"{SENS}/NEWS2 >= 5/sensitivity", f"{PN_TWIN}/median_lead_h",
           f"{SENS}/NEWS2 >= 5/median_lead_h")),
    Quote(PN_README, "interval is at least {} in every group of 30 or more stays.", PN,
          (lambda r: min_subgroup_margin_low(r),)),
    Quote(PN_README, "Out of fold: events AUROC **{} ({}–{})**, {} ({} to {}) over NEWS2; first-event sensitivity {} "
                     "({}–{}) at thresholds", CV,
          (*ci("events_6h/discrimination/twin_cv"), *ci("events_6h/discrimination/twin_cv", "auroc_minus_news2"),
           *ci("events_6h/sensitivity_30min_lead/twin_cv >= its fold's threshold", "sensitivity"))),
    # -- reports/physionet2012/README.md: why +0.061 and +0.082 (wardtwin evaluate set-a-weights)
    Quote(PN_README, "| the five fold models pooled, as the comparison scored them | {} |", SA_WEIGHTS,
          ("fold_models/pooled_margin",)),
    Quote(PN_README, "| each fold model on all of set A | {}, {}, {}, {}, {} |", SA_WEIGHTS,
          tuple(f"fold_models/folds/{k}/margin_on_all_set_a" for k in range(5))),
    Quote(PN_README, "| each fold model on its own fold's stays, mean of five | {} (the shipped twin on the same "
                     "folds: {}) |", SA_WEIGHTS,
          (lambda r: fold_mean(r, "margin_on_its_set_a_fold"), lambda r: fold_mean(r, "shipped_margin_on_that_fold"))),
    Quote(PN_README, "| the shipped twin, fitted on all five folds | **{}** ({} to {}, 200 resamples) |", SA_WEIGHTS,
          (*ci("models/shipped", "margin")[:1], "models/shipped/margin_ci/0", "models/shipped/margin_ci/1")),
    Quote(PN_README, "reproduces both that figure ({}) and the shipped coefficients", SA_WEIGHTS,
          ("fold_models/pooled_margin",)),
    Quote(PN_README, "moves its set-A margin by up to {} (the simulated development cohort holds {} first events), and "
                     "pooling five differently scaled models into one ranking costs about {} more.", SA_WEIGHTS,
          (lambda r: max(f["margin_on_all_set_a"] for f in r["fold_models"]["folds"])
           - min(f["margin_on_all_set_a"] for f in r["fold_models"]["folds"]),
           lambda r: at(report(ART), f"{ALERT}/first_events"),
           lambda r: fold_mean(r, "margin_on_its_set_a_fold") - at(r, "fold_models/pooled_margin"))),
    *(Quote(PN_README, f"(`{name}`{extra}) | {{}}{a} | {{}}{b} | {{}} | {{}} |", SA_WEIGHTS,
            (lambda r, n=name: per_point(r, n, "shipped_per_set_a_sd"),
             lambda r, n=name: per_point(r, n, "set_a_fit_per_set_a_sd"),
             lambda r, n=name: feature(r, n)["added_on_set_a_per_set_a_sd"],
             lambda r, n=name: feature(r, n)["margin_gain"]))
      for name, extra, a, b in (("hr_outside_normal", "", " (the floor)", ""), ("temp_outside_normal", "", "", ""),
                                ("sbp_outside_normal", "", "", ""), ("rr_outside_normal", "", "", " (the floor)"),
                                ("spo2_below_normal", "", " (the floor)", " (the floor)"),
                                ("not_alert", ", 3 points", " (the floor)", " (the floor)"))),
    Quote(PN_README, "(`hr_outside_normal_min_4h` {}, `sbp_outside_normal_min_4h` {}).",
          SA_WEIGHTS, (lambda r: feature(r, "hr_outside_normal_min_4h")["margin_gain"],
                       lambda r: feature(r, "sbp_outside_normal_min_4h")["margin_gain"])),
    Quote(PN_README, "twin gives {} ({} to {}), most of the way to set A's own fit ({}, {} to {}).", SA_WEIGHTS,
          (*ci("models/shipped + NEWS2-scored", "margin"), *ci("models/set-a fit", "margin"))),
    Quote("reports/sources/README.md", "This table's {} on set A is the simulator candidate's five fold models "
                                       "pooled; the shipped twin, fitted on all five folds, ranks set A's 6-hour "
                                       "events {} above NEWS2", SRC,
          ("candidates/simulator/margins/set-a/margin", lambda r: at(report(PN), f"{E6}/twin/auroc_minus_news2"))),
    Quote(README, "the simulator fit leaves at its floor ({} log-odds per NEWS2 point against {} in set A's own fit; "
                  "refitted alone on top of the shipped twin, out of fold, it adds {} to the margin). All the "
                  "NEWS2-scored signals refitted together reach {}, set A's own fit {}.", SA_WEIGHTS,
          (lambda r: per_point(r, "hr_outside_normal", "shipped_per_set_a_sd"),
           lambda r: per_point(r, "hr_outside_normal", "set_a_fit_per_set_a_sd"),
           lambda r: feature(r, "hr_outside_normal")["margin_gain"],
           "models/shipped + NEWS2-scored/margin", "models/set-a fit/margin")),
    # -- reports/evaluation/README.md
    Quote(EVAL_README, "{} patients, {} patient-days, {} first events ({} observable with ≥ 30 min lead). The twin's "
                       "AUROC is {} ({}–{}), {} ({}–{}) over NEWS2 charted", EVAL,
          ("pooled/patients", "pooled/patient_days", "pooled/first_events", f"pooled/operating_points/{TWIN_OP}/events",
           *ci(f"{POOLED}/twin"), *ci(f"{POOLED}/twin", "auroc_minus_news2_charted"))),
    Quote(EVAL_README, "and {} ({}–{}) over NEWS2 recomputed on every monitor window; the challenger reaches {}.", EVAL,
          (*ci(f"{POOLED}/twin", "auroc_minus_news2"), f"{POOLED}/challenger/auroc")),
    Quote(EVAL_README, "the twin warns of {} of first events ({} of {}) at {} model-side alerts per patient-day; "
                       "NEWS2 ≥ 5 on every monitor window warns of {} at {} per patient-day, charted NEWS2 ≥ 5 of {}.",
          EVAL,
          tuple(f"pooled/operating_points/{k}" for k in (
              f"{TWIN_OP}/sensitivity", f"{TWIN_OP}/detected", f"{TWIN_OP}/events", f"{TWIN_OP}/alerts_per_patient_day",
              "NEWS2 >= 5 every 5 min/sensitivity", "NEWS2 >= 5 every 5 min/alerts_per_patient_day",
              "NEWS2 >= 5 charted/sensitivity"))),
    Quote(EVAL_README, "the ward mix: slope {}, intercept at slope 1 {}", EVAL,
          ("pooled/calibration/twin/calibration_slope", "pooled/calibration/twin/in_the_large/intercept_slope_1")),
    # -- the hazard log (H1, H10) on set A
    Quote(HAZARDS, "it ranks 6-hour events better than NEWS2 (AUROC {} vs {}) yet at its ward threshold {} warns of "
                   "{} % of first events ≥ 30 min ahead (NEWS2 ≥ 5: {} %), mean risk {} against an event rate of {}",
          PN,
          (f"{E6}/twin/auroc", f"{E6}/news2/auroc", f"{PN_TWIN}/threshold", pct(f"{PN_TWIN}/sensitivity"),
           pct(f"{SENS}/NEWS2 >= 5/sensitivity"), "events_6h/calibration/in_the_large/expected",
           "events_6h/calibration/in_the_large/observed")),
    Quote(HAZARDS, "out of fold, {} on the simulated ward and {} on set A;", SRC,
          ("candidates/simulator/margins/simulator/margin", "candidates/simulator/margins/set-a/margin")),
    Quote(HAZARDS, "the shipped twin {} on all of set A", PN, (f"{E6}/twin/auroc_minus_news2",)),
    # -- README: which data the twin learns from
    Quote(README, "| **simulator (shipped)** | {} vs {} ({}, 95 % CI {} to {}) | {} vs {} ({}, 95 % CI {} to {}) "
                  "| **{}** |", SRC,
          (*margins("simulator", "simulator"), "candidates/simulator/margins/simulator/margin_ci/0",
           "candidates/simulator/margins/simulator/margin_ci/1", *margins("simulator", "set-a"),
           "candidates/simulator/margins/set-a/margin_ci/0", "candidates/simulator/margins/set-a/margin_ci/1",
           "candidates/simulator/worse_margin")),
    Quote(README, "| set A | {} vs {} ({}) | {} vs {} ({}) | {} |", SRC,
          (*margins("set-a", "simulator"), *margins("set-a", "set-a"), "candidates/set-a/worse_margin")),
    Quote(README, "| both | {} vs {} ({}) | {} vs {} ({}, {} to {}) | {} |", SRC,
          (*margins("simulator+set-a", "simulator"), *margins("simulator+set-a", "set-a"),
           "candidates/simulator+set-a/margins/set-a/margin_ci/0",
           "candidates/simulator+set-a/margins/set-a/margin_ci/1", "candidates/simulator+set-a/worse_margin")),
    Quote(README, "the pooled fit's worse margin ({}) is within the rule's 0.005 tie of the simulator alone ({})", SRC,
          ("candidates/simulator+set-a/worse_margin", "candidates/simulator/worse_margin")),
    Quote(README, "The comparison's set-A margin for it, {}, is its five simulator fold models pooled", SRC,
          ("candidates/simulator/margins/set-a/margin",)),
    Quote(README, "ranks set A's 6-hour events {} above NEWS2 charted hourly", PN, (f"{E6}/twin/auroc_minus_news2",)),
    # -- README: the twin against NEWS2 on the simulator
    Quote(README, "| twin (simulator only; calibration slope {}, intercept at slope 1 {}) | {} ({}–{}) "
                  "| {} ({}–{}) | — |", EVAL,
          ("pooled/calibration/twin/calibration_slope", "pooled/calibration/twin/in_the_large/intercept_slope_1",
           *ci(f"{POOLED}/twin"), *ci(f"{POOLED}/twin", "auprc"))),
    Quote(README, "600 patients × 48 h each, {} patients, {} patient-days, {} first events by issue 20's label and {} "
                  "prediction windows;", EVAL,
          ("pooled/patients", "pooled/patient_days", "pooled/first_events", "pooled/eligible_windows")),
    Quote(README, "({} events with onset in the first 90 min are unobservable and left out)", EVAL,
          (lambda r: at(r, "pooled/first_events") - at(r, f"pooled/operating_points/{TWIN_OP}/events"),)),
    Quote(README, "twin ≥ 0.14 first-event sensitivity {} / {} / {} vs NEWS2 ≥ 5 every 5 min {} / {} / {}.", EVAL,
          (*(f"per_seed/{i}/operating_points/{TWIN_OP}/sensitivity" for i in (1, 2, 3)),
           *(f"per_seed/{i}/operating_points/NEWS2 >= 5 every 5 min/sensitivity" for i in (1, 2, 3)))),
    Quote(README, "**At its threshold it warns of few first events** ({}, {} of {}) while alerting rarely ({} per "
                  "patient-day,", EVAL, (f"pooled/operating_points/{TWIN_OP}/sensitivity",
                                         f"pooled/operating_points/{TWIN_OP}/detected",
                                         f"pooled/operating_points/{TWIN_OP}/events",
                                         f"pooled/operating_points/{TWIN_OP}/alerts_per_patient_day")),
    Quote(README, "(slope {}, calibration-in-the-large {}; mean risk {} against an event rate of {} per window)", EVAL,
          ("pooled/calibration/twin/calibration_slope", "pooled/calibration/twin/in_the_large/intercept_slope_1",
           "pooled/calibration/twin/in_the_large/expected", "pooled/calibration/twin/in_the_large/observed")),
    Quote(README, "Subgroups: AUROC {} (women) and {} (men); {} at ages 18–49 ({} first events), {} at 50–69, {} at "
                  "70+;", EVAL,
          ("pooled/subgroups/sex=F/twin_auroc", "pooled/subgroups/sex=M/twin_auroc",
           "pooled/subgroups/age 18-49/twin_auroc", "pooled/subgroups/age 18-49/first_events",
           "pooled/subgroups/age 50-69/twin_auroc", "pooled/subgroups/age 70+/twin_auroc")),
    Quote(README, "| NEWS2 charted (RCP frequency) | {} ({}–{}) | {} ({}–{}) | {} ({}–{}) |", EVAL,
          (*ci(f"{POOLED}/news2_charted"), *ci(f"{POOLED}/news2_charted", "auprc"),
           *ci(f"{POOLED}/twin", "auroc_minus_news2_charted"))),
    Quote(README, "| NEWS2 every 5 min | {} ({}–{}) | {} ({}–{}) | {} ({}–{}) |", EVAL,
          (*ci(f"{POOLED}/news2"), *ci(f"{POOLED}/news2", "auprc"), *ci(f"{POOLED}/twin", "auroc_minus_news2"))),
    Quote(README, "| challenger (gradient boosting, simulator only, shadow) | {} ({}–{}) | {} ({}–{}) | {} |", EVAL,
          (*ci(f"{POOLED}/challenger"), *ci(f"{POOLED}/challenger", "auprc"),
           diff(f"{POOLED}/twin/auroc", f"{POOLED}/challenger/auroc"))),
    Quote(README, "| twin ≥ 0.14 (service default, artifact) | {} ({}–{}), {}/{} | {} ({}–{}) | {} ({}–{}) "
                  "| {} h ({}–{}) |", EVAL, op(TWIN_OP)),
    Quote(README, "| NEWS2 ≥ 5 charted | {} ({}–{}), {}/{} | {} ({}–{}) | {} ({}–{}) | {} h ({}–{}) |", EVAL,
          op("NEWS2 >= 5 charted")),
    Quote(README, "| NEWS2 ≥ 5 every 5 min | {} ({}–{}), {}/{} | {} ({}–{}) | {} ({}–{}) | {} h ({}–{}) |", EVAL,
          op("NEWS2 >= 5 every 5 min")),
    Quote(README, "| NEWS2 ≥ 7 every 5 min | {} ({}–{}), {}/{} | {} ({}–{}) | {} ({}–{}) | {} h ({}–{}) |", EVAL,
          op("NEWS2 >= 7 every 5 min")),
    Quote(README, "Per seed (1 / 2 / 3), twin AUROC {} / {} / {}, NEWS2 charted {} / {} / {}, "
                  "every 5 min {} / {} / {};", EVAL, tuple(f"per_seed/{i}/discrimination/{m}/auroc"
                      for m in ("twin", "news2_charted", "news2") for i in (1, 2, 3))),
    # -- README: alert burden through the service, simulated and on set A
    Quote(README, "Alerts per 100 patient-days: NEWS2 on charted sets {} ({}–{}), observations due {} ({}–{}), twin {} "
                  "({}–{}), criteria {} ({}–{}); all kinds {} ({}–{}), of which **{} ({}–{}) beyond charted NEWS2** "
                  "(target ≤ 10).", BURDEN,
          (*summ("alerts_per_100_patient_days/news2"), *summ("alerts_per_100_patient_days/obs_due"),
           *summ("alerts_per_100_patient_days/twin"), *summ("alerts_per_100_patient_days/criteria"),
           *summ("alerts_per_100_patient_days/combined"), *summ("beyond_charted_news2"))),
    Quote(README, "Of {} first events, the shipped policy warned of {} ({}–{}) at least 30 minutes ahead, against {} "
                  "({}–{}) of random event-free moments; charted NEWS2 alone of {} ({}–{}), against {} ({}–{}).",
          BURDEN, ("summary/first_events", *summ("first_event_warned/combined"), *summ("chance_warned/combined"),
                   *summ("first_event_warned/charted_news2"), *summ("chance_warned/charted_news2"))),
    Quote(README, "The shipped policy's warned − chance exceeds charted NEWS2's by {} ({} to {}) (target ≥ 0.05); it "
                  "missed {} first events that charted NEWS2 warned of (target 0).", BURDEN,
          (*summ("combined_minus_charted_news2_added_warning"), "summary/missed_vs_charted_news2")),
    Quote(README, "the burden's upper bound ({}) is above 10 and, with {} first events", BURDEN,
          ("summary/beyond_charted_news2/ci95/1", "summary/first_events")),
    # the same study on seeds the fold was not designed on (4, 5, 6)
    Quote(README, "`--seeds 4,5,6`: {}\npatient-days, {} first events): beyond charted NEWS2 **{} ({}–{})** per 100 "
                  "patient-days ({} with folding off),\nmissed against charted NEWS2 {}", HELDOUT,
          ("summary/patient_days", "summary/first_events", *summ("beyond_charted_news2"),
           "summary/folded/beyond_charted_news2_without_fold/value", "summary/missed_vs_charted_news2")),
    Quote(README, "the shipped policy unchanged; {} patients, {} patient-days,\n{} first events): beyond charted NEWS2 "
                  "**{} ({}–{})** per 100 patient-days ({} with folding off), the whole\ninterval under the target of "
                  "10; the shipped policy's warned − chance exceeds charted NEWS2's by **{} ({}–{})**", CONFIRM,
          ("summary/patients", "summary/patient_days", "summary/first_events",
           *(f"summary/beyond_charted_news2/{k}" for k in ("value", "ci95/0", "ci95/1")),
           "summary/folded/beyond_charted_news2_without_fold/value",
           *(f"summary/combined_minus_charted_news2_added_warning/{k}" for k in ("value", "ci95/0", "ci95/1")))),
    Quote(README, "missed against charted NEWS2 **{}**. All three targets are met. The twin\nwarned of {} ({}–{}) of "
                  "first events ≥ 30 min ahead against {} ({}–{}) of random event-free moments, {} of\nthem events "
                  "charted NEWS2 did not warn of", CONFIRM,
          ("summary/missed_vs_charted_news2",
           *(f"summary/first_event_warned/twin/{k}" for k in ("value", "ci95/0", "ci95/1")),
           *(f"summary/chance_warned/twin/{k}" for k in ("value", "ci95/0", "ci95/1")),
           "pooled/twin_added_lead_h/events_warned_by_combined_not_news2")),
    Quote(README, "minutes (the shipped policy {}, charted NEWS2 {})", CONFIRM,
          ("summary/first_event_warned/combined/value", "summary/first_event_warned/charted_news2/value")),
    Quote(README, "One\nof {} charted sets was refused", CONFIRM,
          (lambda r: sum(s["charting"]["observation_sets"] + s["charting"]["observation_sets_refused"]
                         for s in r["per_seed"].values()),)),
    Quote(README, "the twin warned of {} of\nthe {} first events", HELDOUT,
          (lambda r: at(r, "summary/first_event_warned/twin/value") * at(r, "summary/first_events"),
           "summary/first_events")),
    Quote(README, "exceeds charted NEWS2's by **{} ({} to\n{})** against the target of 0.05", HELDOUT,
          summ("combined_minus_charted_news2_added_warning")),
    Quote(README, "({} of {}, then", BURDEN,
          (lambda r: at(r, "summary/first_event_warned/twin/value") * at(r, "summary/first_events"),
           "summary/first_events")),
    Quote(README, "then {} of {})", HELDOUT,
          (lambda r: at(r, "summary/first_event_warned/twin/value") * at(r, "summary/first_events"),
           "summary/first_events")),
    # the fold study: candidates in lab.alert_fold order (fold off, less_urgent, any; twin suppressed)
    Quote(README, "With the shipped fold, {} criteria, {} obs_due and {} twin rules were recorded on an open alert "
                  "of a more urgent kind instead of raised; with folding off the same rules raise {} alerts beyond "
                  "charted NEWS2, {} ({}–{}) per 100 patient-days", BURDEN,
          ("summary/folded/by_kind/criteria", "summary/folded/by_kind/obs_due", "summary/folded/by_kind/twin",
           "summary/folded/alerts_beyond_without_fold", *summ("folded/beyond_charted_news2_without_fold"))),
    Quote(README, "Folding into any open alert (`any`) would save {} more", BURDEN,
          (diff("fold_study/candidates/1/alerts_beyond", "fold_study/candidates/2/alerts_beyond"),)),
    Quote(README, "alert of grade ≥ 2 is open would save {}.", BURDEN,
          (diff("fold_study/candidates/0/alerts_beyond", "fold_study/candidates/3/alerts_beyond"),)),
    Quote(README, "monitor NEWS2 ≥ 5 or a single 3 held for 60 minutes would add {} alerts per 100 patient-days for {} "
                  "of warning above chance", BURDEN, ("pareto/rows/4/per100d/value",
                                                      "pareto/rows/4/warned_minus_chance/value")),
    Quote(README, "alerts per 100 patient-days: observations due {} ({}–{}), twin {} ({}–{}), criteria {} ({}–{}), "
                  "combined {} ({}–{}); first events warned ≥ 30 min ahead: {} % ({}–{}) combined", BURDEN_PN,
          (*est("per100d_obs_due"), *est("per100d_twin"), *est("per100d_criteria"), *est("per100d_combined"),
           *map(pct, est("sens_combined")))),
    Quote(README, "its numbers, observations due warning of {} % of first events and alerting {} of the {} event-free "
                  "stays", BURDEN_PN_RCP, (pct("pooled/estimates/sens_obs_due/value"),
                                           "pooled/stable_patients_alerted/obs_due", "pooled/stable_patients")),
    Quote(README, "against\n{} % and {} of {} with the shipped trigger", BURDEN_PN,
          (pct("pooled/estimates/sens_obs_due/value"), "pooled/stable_patients_alerted/obs_due",
           "pooled/stable_patients")),
    # -- README and the model card: the retrained twin's threshold from its alert budget, and its calibration
    Quote(README, THRESHOLD_PASSAGE, ART, tuple(f"{ALERT}/{k}" for k in (
        "budget_alerts_per_100_patient_days", "sustain_windows", "threshold", "threshold_ci/0", "threshold_ci/1",
        "twin_alerts_per_100_patient_days", "twin_sensitivity", "first_events", "news2_5_sensitivity"))),
    Quote(README, CALIBRATION_PASSAGE, ART, (*cal("test"), *cal("set_a_out_of_fold/as_shipped"),
                                             *cal("set_a_out_of_fold/after_site_calibration_out_of_fold"))),
    Quote(CARD, "| test patients (held-out 20 % of the training cohort) | {} ({}) | {} ({}–{}) | {} ({}–{}) |", ART,
          ("calibration_check/test/n", "calibration_check/test/events", *cal("test"))),
    Quote(CARD, "| set A out of fold, after `wardtwin calibrate` fitted out of fold | {} ({}) | {} ({}–{}) | "
                "{} ({}–{}) |", ART, ("calibration_check/set_a_out_of_fold/after_site_calibration_out_of_fold/n",
                           "calibration_check/set_a_out_of_fold/after_site_calibration_out_of_fold/events",
                           *cal("set_a_out_of_fold/after_site_calibration_out_of_fold"))),
    Quote(CARD, "| simulator (chosen) | {} vs {}, {} ({} to {}) | {} vs {}, {} ({} to {}) | {} |", SRC,
          (*margins("simulator", "simulator"), "candidates/simulator/margins/simulator/margin_ci/0",
           "candidates/simulator/margins/simulator/margin_ci/1", *margins("simulator", "set-a"),
           "candidates/simulator/margins/set-a/margin_ci/0", "candidates/simulator/margins/set-a/margin_ci/1",
           "candidates/simulator/worse_margin")),
    Quote(CARD, "Threshold **{}** (patient-bootstrap 95 % interval {}–{},", ART,
          (f"{ALERT}/threshold", f"{ALERT}/threshold_ci/0", f"{ALERT}/threshold_ci/1")),
    # -- README: /healthz while a cycle runs (bench/bench_loop_latency.py)
    Quote(README, "`/healthz` answers in {} ms at the median while a {}-patient cycle runs, as with no cycle running "
          "({} ms), and in {} ms at worst of {} requests", LOOP,
          ("steady/p50_ms", "args/patients", "baseline_pooled/p50_ms", "steady/max_ms", "steady/requests")),
)


# Issue 25: the research exports' tables in README (a set-A cell's passage carries the simulated column before it).
DEID_SIM = "reports/research/deidentified-sim/report.json"
DEID_PN = "reports/research/deidentified-physionet2012/report.json"
DP = "reports/research/dp/report.json"
_DEID_ROWS = (
    ("| achieved k / l / t | {} / {} / {} |", ("achieved/k", "achieved/l", "achieved/t")),
    ("| patients suppressed | {} of ", ("patients/suppressed",)),
    ("| ages released as / mean interval width | {}-year bands / {} years |",
     (lambda r: {1: 5, 2: 10, 3: 20}[r["generalisation"]["age_group"]],
      "information_loss/mean_age_interval_width_years")),
    ("| twin AUROC, trained on the original / the export (same test patients) | {} / {} |",
     ("twin_auroc/auroc_trained_on_original", "twin_auroc/auroc_trained_on_export")),
    *((f"| {label} | {{}} ({{}}–{{}}) |", tuple(f"attacks/scenarios/{scenario}/{attack}/{key}"
                                                for key in ("risk", "ci95/0", "ci95/1")))
      for label, scenario, attack in (
          ("singling out, quasi-identifiers + outcome (anonymeter, 95 % CI)", "quasi-identifiers and outcome",
           "singling_out"),
          ("singling out, + stay means of four vitals", "plus stay means of four vitals", "singling_out"),
          ("inference of the outcome, + stay means of four vitals", "plus stay means of four vitals", "inference"))),
)


#: The set-A column of each row, after the simulated column as printed (the row's simulated quote ties those).
_SIM_CELLS = ("9 / 2 / 0.20 |", "10 of 200 |", "20-year bands / 17.9 years |", "0.636 / 0.634 |", "0.00 (0.00–0.25) |",
              "0.96 (0.91–1.00) |", "0.72 (0.39–1.00) |")
_PN_CELLS = (" {} / {} / {} |", " {} of 3,946 |", " {}-year bands / {} years |", " {} / {} |", " {} ({}–{}) |",
             " {} ({}–{}) |", " {} ({}–{}) |")

RESEARCH_QUOTES = (
    *(Quote(README, passage, DEID_SIM, paths) for passage, paths in _DEID_ROWS),
    *(Quote(README, passage.split(" | ")[0] + " | " + sim + pn, DEID_PN, paths)
      for (passage, paths), sim, pn in zip(_DEID_ROWS, _SIM_CELLS, _PN_CELLS, strict=True)),
    *(Quote(README, f"| {label} | {{}} | {{}} | {{}} | {{}} |", DP,
            tuple(f"errors/{4 * row + i}/mean_abs_error" for i in range(4)))
      for row, label in enumerate(("admissions per ICU type (patients)", "in-hospital death rate per ICU type",
                                   "mean heart rate by hour of day (bpm)"))),
    Quote(README, "k = {}, l = {}, t = {}, with {} stays suppressed;",
          "reports/research/deidentified-physionet2012-t015/report.json",
          ("achieved/k", "achieved/l", "achieved/t", "patients/suppressed")),
    Quote(HAZARDS, "with the vitals known, singling out {} and inference of the outcome {} on set A",
          DEID_PN, ("attacks/scenarios/plus stay means of four vitals/singling_out/risk",
                    "attacks/scenarios/plus stay means of four vitals/inference/risk")),
)
QUOTES = (*QUOTES, *RESEARCH_QUOTES)

# Issue 25: synthetic cohorts (README "Synthetic cohorts", wardtwin export synthetic on set A).
SYN = "reports/research/synthetic-physionet2012/report.json"
_FID, _DCR, _MIA = "fidelity", "privacy/dcr", "privacy/membership_inference"
_AUG = "augmentation/{}/test/all/scores/real + synthetic x{}/auroc_minus_real"
_REB = "rebalancing/test/women/scores/{}/auroc_minus_skewed real"


def _with_ci(path: str) -> tuple[str, str, str]:
    return path, f"{path}_ci/0", f"{path}_ci/1"


SYNTHETIC_QUOTES = (
    Quote(README, "stays ({} with a scorable hour;", SYN,
          (lambda r: sum(r["split"][s]["patients"] for s in ("train", "holdout", "test")),)),
    Quote(README, "| mean per-column Kolmogorov–Smirnov statistic | {} | {} | near the baseline |", SYN,
          (f"{_FID}/ks/synthetic/mean_ks", f"{_FID}/ks/holdout_baseline/mean_ks")),
    Quote(README, "| mean absolute correlation difference | {} | {} | near the baseline |", SYN,
          (f"{_FID}/correlation/synthetic/mean_abs_difference",
           f"{_FID}/correlation/holdout_baseline/mean_abs_difference")),
    Quote(README, "| classifier two-sample test, AUROC (held-out half) | {} | {} | 0.5 |", SYN,
          (f"{_FID}/two_sample_test/synthetic/auroc", f"{_FID}/two_sample_test/holdout_baseline/auroc")),
    Quote(README, "| twin AUROC on {} real test patients, TSTR vs TRTR | {} ({}–{}) | {} ({}–{}) | equal |", SYN,
          ("split/test/patients", *ci("utility/all/scores/TSTR"), *ci("utility/all/scores/TRTR"))),
    Quote(README, "| median distance to the closest train record | {} | {} | not below the baseline |", SYN,
          (f"{_DCR}/synthetic_to_train/median", f"{_DCR}/holdout_to_train/median")),
    Quote(README, "| share of synthetic records nearer a train than a holdout record | {} | | 0.5 |", SYN,
          (f"{_DCR}/share_synthetic_closer_to_train_than_holdout",)),
    Quote(README, "| membership inference AUROC ({} members, {} non-members) | {} | | 0.5 |", SYN,
          (f"{_MIA}/members", f"{_MIA}/non_members", f"{_MIA}/auroc_worst")),
    Quote(README, "tells synthetic from real records apart (AUROC {})", SYN,
          (f"{_FID}/two_sample_test/synthetic/auroc",)),
    Quote(README, "the twin loses {} AUROC on real test patients ({} to {})", SYN,
          (lambda r: -at(r, "utility/all/scores/TSTR/auroc_minus_TRTR"),
           *_with_ci("utility/all/scores/TSTR/auroc_minus_TRTR")[1:])),
    Quote(README, "barely more often nearer a train record than a holdout one ({}), and a distance-based membership "
                  "attack is at chance ({}; calibrated by real non-members {})", SYN,
          (f"{_DCR}/share_synthetic_closer_to_train_than_holdout", f"{_MIA}/auroc_distance_to_synthetic",
           f"{_MIA}/auroc_calibrated")),
    Quote(README, "{} real patients: AUROC {}; with as many synthetic records {} ({} to {}), with four times as many "
                  "{} ({} to {}). {} real patients: {} ({} to {}) and {} ({} to {}).", SYN,
          ("augmentation/0/real_patients", "augmentation/0/test/all/scores/real/auroc", *_with_ci(_AUG.format(0, 1)),
           *_with_ci(_AUG.format(0, 4)), "augmentation/1/real_patients", *_with_ci(_AUG.format(1, 1)),
           *_with_ci(_AUG.format(1, 4)))),
    Quote(README, "Train patients cut to {} men and {} women (2:1): women's AUROC {}; with {} synthetic women's "
                  "records {} ({} to {}); with the real women's records oversampled {} ({} to {}); with all {} train "
                  "women back {} ({} to {}).", SYN,
          ("rebalancing/men", "rebalancing/women_kept", "rebalancing/test/women/scores/skewed real/auroc",
           "rebalancing/synthetic_female_records", *_with_ci(_REB.format("+ synthetic women")),
           *_with_ci(_REB.format("+ real women oversampled")), "rebalancing/women_in_train",
           *_with_ci(_REB.format("all train patients (reference)")))),
)
QUOTES = (*QUOTES, *SYNTHETIC_QUOTES)

# Issue 24: the fleet. README "Running several instances" (bench/capacity.py) and BENCHMARKS (bench/bench_fleet.py).
CAPACITY = "reports/capacity/report.json"
FLEET_BENCH = "reports/fleet/report.json"


def scaled(path: str, factor: float) -> Callable[[Any], float]:
    return lambda report: at(report, path) / factor


CAPACITY_QUOTES = (
    Quote(README, "every bed continuously monitored: an upper bound for a general ward; {} readings per bed\nper "
                  "5-minute window), four charted sets per bed per day, the shipped alert policy's rate on the "
                  "simulated ward\n({} alerts per 100 patient-days", CAPACITY,
          ("inputs/monitor_readings_per_bed_per_window", "inputs/alerts_per_100_patient_days")),
    Quote(README, "| readings | {} | {} billion ({} GB as line protocol on the wire; {} GB as SQLite rows) |", CAPACITY,
          ("per_second/readings", scaled("per_day/readings", 1e9), "per_day/line_protocol_gb",
           "per_day/readings_gb_sqlite_rows")),
    Quote(README, "| scores | {} | {} million ({} GB: {} bytes per score, its contributions and sentences) |", CAPACITY,
          ("per_second/scores", scaled("per_day/scores", 1e6), "per_day/scores_gb", "inputs/sqlite_bytes_per_score")),
    Quote(README, "| alerts | {} | {} |", CAPACITY, ("per_second/alerts", "per_day/alerts")),
    Quote(README, "| alert events (raised, delivered, acknowledged, resolved) | {} | {} |", CAPACITY,
          ("per_second/alert_events", "per_day/alert_events")),
    Quote(README, "(say 1,000 beds: {} readings per second, 1,000 scores per\n5-minute cycle, {} alert events an "
                  "hour)", CAPACITY, ("per_1000_bed_cell/readings_per_s", "per_1000_bed_cell/alert_events_per_hour")),
)
BENCH = "BENCHMARKS.md"


def fleet_row(i: int) -> tuple[Path_, ...]:
    """A row of the fleet benchmark: steady cycle (s), its ratio to the single instance, the slowest instance's
    stages (s), the cold cycle (s)."""
    row = f"results/{i}"
    stage = [scaled(f"{row}/stages_max/{k}", 1000) for k in ("aggregate", "read", "score", "save", "alerts")]
    return (scaled(f"{row}/steady_ms", 1000),
            lambda r: r["results"][0]["steady_ms"] / r["results"][i]["steady_ms"], *stage,
            scaled(f"{row}/cold_ms", 1000))


FLEET_QUOTES = tuple(
    Quote(BENCH, f"| {label} | {n} | {held} | {{}} s | {{}}× | {{}} s | {{}} s | {{}} s | {{}} s | {{}} s | {{}} s |",
          FLEET_BENCH, fleet_row(i))
    for i, (label, n, held) in enumerate((("single", 1, "all"), ("fleet x1", 1, "64"), ("fleet x2", 2, "32, 32"),
                                         ("fleet x3", 3, "22, 20, 22"))))


def aggregate_share(bound: Callable[..., float]) -> Callable[[Any], float]:
    """The lowest or highest share of the aggregation stage in a configuration's steady cycle, in per cent."""
    return lambda r: 100 * bound(x["stages_max"]["aggregate"] / x["steady_ms"] for x in r["results"])


FLEET_QUOTES = (*FLEET_QUOTES,
                Quote(BENCH, "`single` and `fleet x1` do\nthe same work and differ by {}×", FLEET_BENCH,
                      (lambda r: r["results"][0]["steady_ms"] / r["results"][1]["steady_ms"],)),
                Quote(BENCH, "it is {}–{} % of every configuration's\ncycle", FLEET_BENCH,
                      (aggregate_share(min), aggregate_share(max))),
                Quote(BENCH, "the slowest instance's score stage falls from {} s (all patients) to {} s (half) "
                             "and {} s (a third)", FLEET_BENCH,
                      tuple(scaled(f"results/{i}/stages_max/score", 1000) for i in (0, 2, 3))))
READS_AUDIT = "reports/reads-audit/report.json"


def reads(route: str, server: str, key: str) -> str:
    return f"medians/{route}/{server}/{key}"


READS_AUDIT_QUOTES = [
    # Issue 21: the audit committed before the answer (the default) against after it, bench/bench_reads.py
    *(Quote(BENCH, f"| {label} | {{}} | {{}} | **{{}}** | {{}}, {{}} | {{}} → {{}} | {{}} → {{}} |", READS_AUDIT,
            (reads(route, "service", "rps"), reads(route, "before_answer", "rps"),
             f"before_answer_over_after_answer/{route}/rps", reads(route, "service", "cpu_us"),
             reads(route, "before_answer", "cpu_us"), reads(route, "service @ half", "p50"),
             reads(route, "before_answer @ half", "p50"), reads(route, "service @ half", "p99"),
             reads(route, "before_answer @ half", "p99")))
      for label, route in (("`/risk`", "risk"), ("board", "board"))),
    Quote(README, "the median `/risk` read at half load {} → {} ms", READS_AUDIT,
          (reads("risk", "service @ half", "p50"), reads("risk", "before_answer @ half", "p50"))),
]

FANOUT_BENCH = "reports/fleet-fanout/report.json"


def fanout_row(engine: str) -> tuple[Path_, ...]:
    service = f"runs/{engine}/service"
    return tuple(f"{service}/{part}/{k}" for part in ("single", "cycle")
                 for k in ("p50_ms", "p99_ms", "last_median_ms"))


FLEET_QUOTES = (*FLEET_QUOTES, *(Quote(BENCH, f"| {label} | {{}} / {{}} / {{}} ms | {{}} / {{}} / {{}} ms |",
                                       FANOUT_BENCH, fanout_row(engine))
                                 for label, engine in (("SQLite", "sqlite"), ("PostgreSQL", "postgresql"))))
OPEN_RACE_QUOTES = (
    # Issue 21 follow-up: instances opening one new SQLite file at once, bench/bench_sqlite_open_race.py
    Quote(BENCH, "**before {} of {} rounds failed, now {} of {}**", "reports/sqlite-open-race/report.json",
          ("failed_rounds/before", "rounds", "failed_rounds/now", "rounds")),
)
QUOTES = (*QUOTES, *CAPACITY_QUOTES, *FLEET_QUOTES, *READS_AUDIT_QUOTES, *OPEN_RACE_QUOTES)


@cache
def document(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


@cache
def report(name: str) -> Any:
    return json.loads((ROOT / name).read_text(encoding="utf-8"))


def pattern(passage: str) -> re.Pattern[str]:
    """``passage`` as a regex: ``{}`` a figure, any run of spaces a run of whitespace (the text may wrap)."""
    def piece(text: str) -> str:
        words = text.split()
        if not words:
            return r"\s+" if text else ""
        lead, trail = (r"\s+" if c.isspace() else "" for c in (text[0], text[-1]))
        return lead + r"\s+".join(map(re.escape, words)) + trail

    return re.compile(_NUMBER.join(piece(text) for text in passage.split("{}")))


def tolerance(printed: str) -> float:
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return 0.5 * 10.0 ** -decimals + 1e-9


def figures(quote: Quote, text: str) -> list[str]:
    found = [m.groups() for m in pattern(quote.passage).finditer(text)]
    assert found, f"passage not found in {quote.doc} (reworded? update the quote): {quote.passage!r}"
    assert len(set(found)) == 1, f"the passage appears with different figures: {found}"
    return list(found[0])


def mismatches(quote: Quote, text: str, data: Any) -> list[str]:
    printed = figures(quote, text)
    assert len(printed) == len(quote.paths), "one path per {} in the passage"
    wrong = []
    for shown, path in zip(printed, quote.paths, strict=True):
        value = path(data) if callable(path) else at(data, path)
        if abs(float(shown.replace(",", "").replace("−", "-")) - value) > tolerance(shown):
            wrong.append(f"{quote.doc} prints {shown}; {quote.report} {path} is {value}")
    return wrong


@pytest.mark.parametrize("quote", QUOTES, ids=str)
def test_a_quoted_figure_is_the_reports(quote: Quote) -> None:
    assert mismatches(quote, document(quote.doc), report(quote.report)) == []


def test_a_figure_changed_in_either_place_fails() -> None:
    quote = QUOTES[0]  # the twin's 6-hour-event AUROC on set A, README 0.723
    text, data = document(quote.doc), report(quote.report)
    assert "**0.723 (" in text
    assert mismatches(quote, text.replace("**0.723 (", "**0.724 ("), data)
    changed = json.loads(json.dumps(data))
    changed["events_6h"]["discrimination"]["twin"]["auroc"] += 0.001
    assert mismatches(quote, text, changed)
