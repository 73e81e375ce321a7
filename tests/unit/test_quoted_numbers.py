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


def op(name: str, lead: bool = True) -> tuple[str, ...]:
    """An operating point: sensitivity (CI), detected/events, PPV (CI), alerts per patient-day (CI), lead (IQR)."""
    p = f"pooled/operating_points/{name}"
    tail = (f"{p}/median_lead_h", f"{p}/lead_iqr_h/0", f"{p}/lead_iqr_h/1") if lead else ()
    return (*ci(p, "sensitivity"), f"{p}/detected", f"{p}/events", *ci(p, "ppv"),
            *ci(p, "alerts_per_patient_day"), *tail)


def margins(candidate: str, source: str) -> tuple[str, str, str]:
    p = f"candidates/{candidate}/margins/{source}"
    return f"{p}/auroc", f"{p}/news2_auroc", f"{p}/margin"


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
    Quote(README, "| simulator | {} vs {} ({}) | {} vs {} ({}, 95 % CI {} to {}) | {} |", SRC,
          (*margins("simulator", "simulator"), *margins("simulator", "set-a"),
           "candidates/simulator/margins/set-a/margin_ci/0", "candidates/simulator/margins/set-a/margin_ci/1",
           "candidates/simulator/worse_margin")),
    Quote(README, "| set A | {} vs {} ({}) | {} vs {} ({}) | {} |", SRC,
          (*margins("set-a", "simulator"), *margins("set-a", "set-a"), "candidates/set-a/worse_margin")),
    Quote(README, "| **both (shipped)** | {} vs {} ({}, 95 % CI {} to {}) | {} vs {} ({}, {} to {}) | **{}** |", SRC,
          (*margins("simulator+set-a", "simulator"), "candidates/simulator+set-a/margins/simulator/margin_ci/0",
           "candidates/simulator+set-a/margins/simulator/margin_ci/1", *margins("simulator+set-a", "set-a"),
           "candidates/simulator+set-a/margins/set-a/margin_ci/0",
           "candidates/simulator+set-a/margins/set-a/margin_ci/1", "candidates/simulator+set-a/worse_margin")),
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
    Quote(README, "NEWS2 alerts {} ({}–{}) per 100 patient-days, twin {} ({}–{}), criteria {} ({}–{}); "
                  "NEWS2 + twin together {} ({}–{}) alerts, {} ({}–{}) episodes. Of {} first events, NEWS2 alone",
          BURDEN,
          (*est("per100d_news2"), *est("per100d_twin"), *est("per100d_criteria"), *est("per100d_combined"),
           *est("per100d_episodes"), "pooled/first_events")),
    Quote(README, "NEWS2 alone warns of {} % ({}–{}) at least 30 minutes ahead and the combined policy of **{} % "
                  "({}–{})**, {} events more, adding {} h ({}–{}) of lead per event on average.", BURDEN,
          (*map(pct, est("sens_news2")), *map(pct, est("sens_combined")),
           "pooled/twin_added_lead_h/events_warned_by_combined_not_news2", *est("lead_gain_mean_h"))),
    Quote(README, "every one of the {} stable simulated patients gets a NEWS2 alert", BURDEN,
          ("pooled/stable_patients_alerted/news2",)),
    Quote(README, "NEWS2 alerts {} ({}–{}) per 100 patient-days, twin {} ({}–{}), criteria {} ({}–{}), combined {} "
                  "({}–{}); first events warned ≥ 30 min ahead", BURDEN_PN,
          (*est("per100d_news2"), *est("per100d_twin"), *est("per100d_criteria"), *est("per100d_combined"))),
    Quote(README, "{} % ({}–{}) by NEWS2 alone and **{} % ({}–{}) combined**", BURDEN_PN,
          (*map(pct, est("sens_news2")), *map(pct, est("sens_combined")))),
    Quote(README, "the twin adding {} h ({}–{}) of lead per first event on average", BURDEN_PN,
          est("lead_gain_mean_h")),
    Quote(README, "{} of {} stays without an event get a NEWS2 alert", BURDEN_PN,
          ("pooled/stable_patients_alerted/news2", "pooled/stable_patients")),
    # -- the model card
    Quote(CARD, "| twin | {} ({}–{}) | {} ({}–{}) | {} |", EVAL,
          (*ci(f"{POOLED}/twin"), *ci(f"{POOLED}/twin", "auprc"), "pooled/calibration/twin/brier")),
    Quote(CARD, "| news2 | {} ({}–{}) | {} ({}–{}) |", EVAL, (*ci(f"{POOLED}/news2"), *ci(f"{POOLED}/news2", "auprc"))),
    Quote(CARD, "| challenger | {} ({}–{}) | {} ({}–{}) | {} |", EVAL,
          (*ci(f"{POOLED}/challenger"), *ci(f"{POOLED}/challenger", "auprc"), "pooled/calibration/challenger/brier")),
    Quote(CARD, "- twin >= 0.1 (service default): first-event sensitivity {} ({}–{}) ({}/{}), PPV {} ({}–{}), "
                "{} ({}–{}) alerts/patient-day, median lead {} h (IQR {}–{}).", EVAL, op(TWIN_OP)),
    Quote(CARD, "- NEWS2 >= 5 every 5 min: first-event sensitivity {} ({}–{}) ({}/{}), PPV {} ({}–{}), {} ({}–{}) "
                "alerts/patient-day, median lead {} h (IQR {}–{}).", EVAL, op("NEWS2 >= 5 every 5 min")),
    Quote(CARD, "| 6-hour events (AUROC, same hours) | {} ({}–{}) | {} ({}–{}) |", PN,
          (*ci(f"{E6}/twin"), *ci(f"{E6}/news2"))),
    Quote(CARD, "| in-hospital death, peak over 48 h | {} ({}–{}) | {} ({}–{}) | {} ({}–{}) | {} ({}–{}) |", PN,
          (*ci(f"{DEATH}/twin_peak"), *ci(f"{DEATH}/news2_peak"), *ci(f"{DEATH}/saps1"), *ci(f"{DEATH}/sofa"))),
    Quote(CARD, "| in-hospital death, last at 48 h | {} ({}–{}) | {} ({}–{}) |", PN,
          (*ci(f"{DEATH}/twin_last"), *ci(f"{DEATH}/news2_last"))),
    Quote(CARD, "NEWS2 >= 5: {} ({}–{}; {}/{}).", PN,
          (*ci(f"{SENS}/NEWS2 >= 5", "sensitivity"), f"{SENS}/NEWS2 >= 5/detected", f"{SENS}/NEWS2 >= 5/first_events")),
    Quote(CARD, "twin >= 0.1: {} ({}–{}; {}/{}).", PN,
          (*ci(f"{SENS}/twin >= 0.1", "sensitivity"), f"{SENS}/twin >= 0.1/detected",
           f"{SENS}/twin >= 0.1/first_events")),
    Quote(CARD, "6-hour events AUROC {} ({} vs NEWS2), in-hospital death {} (last) / {} (peak)", CV,
          ("events_6h/discrimination/twin_cv/auroc",
           diff("events_6h/discrimination/twin_cv/auroc", "events_6h/discrimination/news2/auroc"),
           f"{DEATH}/twin_last/auroc", f"{DEATH}/twin_peak/auroc")),
    Quote(CARD, "| simulator+set-a (shipped) | {} vs {}, {} ({} to {}) | {} vs {}, {} ({} to {}) | {} |", SRC,
          (*margins("simulator+set-a", "simulator"), "candidates/simulator+set-a/margins/simulator/margin_ci/0",
           "candidates/simulator+set-a/margins/simulator/margin_ci/1", *margins("simulator+set-a", "set-a"),
           "candidates/simulator+set-a/margins/set-a/margin_ci/0",
           "candidates/simulator+set-a/margins/set-a/margin_ci/1", "candidates/simulator+set-a/worse_margin")),
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
