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
BURDEN = "reports/alert-burden/report.json"
BURDEN_PN = "reports/alert-burden-physionet2012/report.json"
ART = "models/artifacts/twin.json"

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


def cal(path: str) -> tuple[str, ...]:
    """Calibration slope and observed/expected, each with its interval, under ``calibration_check/path``."""
    p = f"calibration_check/{path}"
    return (f"{p}/calibration_slope", f"{p}/calibration_slope_ci/0", f"{p}/calibration_slope_ci/1",
            f"{p}/observed_over_expected", f"{p}/observed_over_expected_ci/0", f"{p}/observed_over_expected_ci/1")


E6 = "events_6h/discrimination"
DEATH = "death/discrimination"
SENS = "events_6h/sensitivity_30min_lead"
POOLED = "pooled/discrimination"
TWIN_OP = "twin >= 0.1 (service default)"

QUOTES = (
    # -- README: the shipped twin on PhysioNet 2012 set A
    Quote(README, "| 6-hour events, AUROC on the same {} eligible hours | **{} ({}–{})** | {} ({}–{}) |", PN,
          ("events_6h/eligible_hours_same", *ci(f"{E6}/twin"), *ci(f"{E6}/news2"))),
    Quote(README, "| first-event sensitivity, ≥ 30 min lead ({} events) | {} ({}–{}) at the ward threshold {}, "
                  "median lead {} h | {} ({}–{}) at ≥ 5, {} h |", PN,
          (f"{SENS}/twin >= 0.1/first_events", *ci(f"{SENS}/twin >= 0.1", "sensitivity"),
           f"{SENS}/twin >= 0.1/threshold", f"{SENS}/twin >= 0.1/median_lead_h",
           *ci(f"{SENS}/NEWS2 >= 5", "sensitivity"), f"{SENS}/NEWS2 >= 5/median_lead_h")),
    Quote(README, "| in-hospital death ({} stays, {} deaths), peak over 48 h | {} ({}–{}) | {} ({}–{}) | {} ({}–{}) "
                  "| {} ({}–{}) |", PN,
          ("death/stays", "death/deaths", *ci(f"{DEATH}/twin_peak"), *ci(f"{DEATH}/news2_peak"),
           *ci(f"{DEATH}/saps1"), *ci(f"{DEATH}/sofa"))),
    Quote(README, "| in-hospital death, last score at 48 h | {} ({}–{}) | {} ({}–{}) |", PN,
          (*ci(f"{DEATH}/twin_last"), *ci(f"{DEATH}/news2_last"))),
    Quote(README, "The twin ranks events {} ({} to {}) AUROC above NEWS2", PN,
          ci(f"{E6}/twin", "auroc_minus_news2")),
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
    # -- README: the twin against NEWS2 on the simulator
    Quote(README, "| twin (simulator + set A; calibration slope 1.10, intercept at slope 1 −0.22) | {} ({}–{}) "
                  "| {} ({}–{}) | — |", EVAL, (*ci(f"{POOLED}/twin"), *ci(f"{POOLED}/twin", "auprc"))),
    Quote(README, "| NEWS2 charted (RCP frequency) | {} ({}–{}) | {} ({}–{}) | {} ({}–{}) |", EVAL,
          (*ci(f"{POOLED}/news2_charted"), *ci(f"{POOLED}/news2_charted", "auprc"),
           *ci(f"{POOLED}/twin", "auroc_minus_news2_charted"))),
    Quote(README, "| NEWS2 every 5 min | {} ({}–{}) | {} ({}–{}) | {} ({}–{}) |", EVAL,
          (*ci(f"{POOLED}/news2"), *ci(f"{POOLED}/news2", "auprc"), *ci(f"{POOLED}/twin", "auroc_minus_news2"))),
    Quote(README, "| challenger (gradient boosting, simulator only, shadow) | {} ({}–{}) | {} ({}–{}) | {} |", EVAL,
          (*ci(f"{POOLED}/challenger"), *ci(f"{POOLED}/challenger", "auprc"),
           diff(f"{POOLED}/twin/auroc", f"{POOLED}/challenger/auroc"))),
    Quote(README, "| twin ≥ 0.1 (service default, artifact) | {} ({}–{}), {}/{} | {} ({}–{}) | {} ({}–{}) "
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
    Quote(README, "alerts per 100 patient-days: observations due {} ({}–{}), twin {} ({}–{}), criteria {} ({}–{}), "
                  "combined {} ({}–{}); first events warned ≥ 30 min ahead: {} % ({}–{}) combined", BURDEN_PN,
          (*est("per100d_obs_due"), *est("per100d_twin"), *est("per100d_criteria"), *est("per100d_combined"),
           *map(pct, est("sens_combined")))),
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
)


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
    quote = QUOTES[0]  # the twin's 6-hour-event AUROC on set A, README 0.734
    text, data = document(quote.doc), report(quote.report)
    assert "**0.734 (" in text
    assert mismatches(quote, text.replace("**0.734 (", "**0.735 ("), data)
    changed = json.loads(json.dumps(data))
    changed["events_6h"]["discrimination"]["twin"]["auroc"] += 0.001
    assert mismatches(quote, text, changed)
