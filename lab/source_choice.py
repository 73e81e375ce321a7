"""Which data the shipped twin learns from: the simulator, PhysioNet 2012 set A, or both, chosen by a rule stated
before the comparison was run (``SOURCE_RULE``). Pure: no app imports.

Three candidates, the same model and features, differing only in their training rows:

- ``simulator``: eligible development windows of the training cohort (``lab.train``'s split, seed 7);
- ``set-a``: eligible scorable stay-hours of set A (``lab.physionet_cv.hour_table``);
- ``simulator+set-a``: both, each source given the same total weight (``source_weights``).

Each is the twin's model with all ``FEATURES`` free: sign-constrained, class-balanced, L2 logistic regression at
``lab.train.C_REGULARISATION``, standardised by a scaler fitted on its own training rows.

Joint cross-validation: the simulator's development patients keep their ``lab.train.fold_of`` fold (0..4),
set A's stays get ``lab.physionet_cv.patient_folds`` (5 folds, stratified by charted event, seed 2012); fold
``k`` of both sources is held out together, and each candidate is fitted on the other folds of *its* sources. So
every candidate gets an out-of-fold logit on every row of both sources, including the source it never saw.

Two margins over NEWS2 on those out-of-fold logits, each the paired difference of AUROCs on the same rows, with a
patient-bootstrap 95 % interval:

- set A: 6-hour charted events; eligible scorable hours where NEWS2 (charted hourly) exists;
- simulator: 6-hour derived events; eligible development windows; NEWS2 recomputed every 5 minutes from the monitor
  windows (the stronger of the two NEWS2 comparators on the simulator, so the harder margin to beat).

Nothing here looks at the simulator's test patients, its evaluation seeds, or in-hospital death.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from lab import metrics as M
from lab import physionet_cv as C
from lab import train as T
from models import features as F

CANDIDATES: Final[dict[str, tuple[str, ...]]] = {
    "simulator": ("simulator",),
    "set-a": ("set-a",),
    "simulator+set-a": ("simulator", "set-a"),
}
FOLDS: Final[int] = T.CV_FOLDS
SOURCE_TIE: Final[float] = 0.005
#: Stated (and committed) on 2026-11-27 before the comparison below was first run.
SOURCE_RULE: Final[str] = (
    "ship the candidate whose worse margin over NEWS2 (the smaller of its set-A and simulator out-of-fold AUROC "
    "margins, module docstring) is highest; candidates within "
    f"{SOURCE_TIE} of the best are tied, and among tied candidates the one with fewer training sources wins, then "
    "the order simulator, set-a, simulator+set-a. If the simulator alone wins, train.py's SELECTION_RULE picks its "
    "feature variant as before. If set A is among the chosen sources, the shipped model is fitted on all rows of its "
    "sources, and it is calibrated (Platt) and its alert threshold set (ALERT_TARGET) on the simulator development "
    "patients' out-of-fold logits: the ward population the service serves. Stated before the comparison was run; "
    "known beforehand: set-A out-of-fold events AUROC 0.743 for a set-A-only fit (NEWS2 0.637) and 0.618 for the "
    "shipped simulator twin (reports/physionet2012), nothing about the pooled fit or about a set-A fit on the "
    "simulator")


@dataclass(frozen=True)
class SourceRows:
    """One training source: features, labels, the rows a model may be fitted on, the rows a margin is measured on,
    the NEWS2 comparator, patient ids and the joint fold (0..FOLDS-1, -1: never used)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    fit: np.ndarray
    measure: np.ndarray
    news2: np.ndarray
    patient: np.ndarray
    fold: np.ndarray


def simulator_rows(ds: T.Dataset, *, seed: int) -> SourceRows:
    """The training cohort's development windows (``lab.train`` split and folds for ``seed``)."""
    frame = ds.frame
    pids = frame["patient_id"].to_numpy(object)
    fold = T.fold_of(pids, seed)
    elig = frame["eligible"].to_numpy(bool) & (fold >= 0)
    news = frame["news2"].to_numpy(float)
    return SourceRows("simulator", frame.loc[:, list(F.FEATURE_NAMES)].to_numpy(float),
                      frame["label"].to_numpy(int), elig, elig & np.isfinite(news), news, pids, fold)


def set_a_rows(table: pd.DataFrame, events: pd.DataFrame, *, seed: int = C.CV_SEED) -> SourceRows:
    """Set A's stay-hours (``physionet_cv.hour_table``) with ``physionet_cv.patient_folds``."""
    table = table.reset_index(drop=True)
    pids = table["patient_id"].to_numpy(object)
    fold = C.row_folds(pids, events, FOLDS, seed)
    fit = table["scorable"].to_numpy(bool) & table["eligible"].to_numpy(bool)
    news = table["news2_total"].to_numpy(float)
    return SourceRows("set-a", table.loc[:, list(F.FEATURE_NAMES)].to_numpy(float), table["label"].to_numpy(int),
                      fit, fit & np.isfinite(news), news, pids, fold)


def source_weights(sources: list[SourceRows], masks: list[np.ndarray]) -> list[np.ndarray]:
    """Per-row weights giving each source the same total weight over its masked rows (1 for a single source)."""
    if len(sources) == 1:
        return [np.ones(int(masks[0].sum()))]
    total = sum(int(m.sum()) for m in masks)
    return [np.full(int(m.sum()), total / (len(sources) * max(int(m.sum()), 1))) for m in masks]


def fit_on(sources: list[SourceRows], masks: list[np.ndarray]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, dict[str, float]]:
    """(scaler mean, scaler scale, coefficients, intercept, per-source offsets), raw (uncalibrated), fitted on the
    masked rows.

    With more than one source, each source after the first gets its own intercept (an unconstrained, unpenalised
    indicator column, ``offsets``): an ICU's event rate is not a ward's, and without it a feature that differs
    between the sources only by how they were recorded (SpO2 is charted a few times a day in set A, streamed on
    the ward) stands in for the source and learns the difference in base rates. The intercept is the first
    source's.
    """
    x = np.vstack([s.x[m] for s, m in zip(sources, masks, strict=True)])
    y = np.concatenate([s.y[m] for s, m in zip(sources, masks, strict=True)])
    w = np.concatenate(source_weights(sources, masks))
    if y.min(initial=1) == y.max(initial=0):
        raise ValueError("a fit needs rows with and without an event")
    directions = np.asarray([F.DIRECTIONS[n] for n in F.FEATURE_NAMES], dtype=int)
    mean, scale = T.fit_scaler(x)
    z = T.standardise(x, mean, scale)
    others = sources[1:]
    if others:
        sizes = [int(m.sum()) for m in masks]
        indicator = np.zeros((len(y), len(others)))
        start = sizes[0]
        for j, size in enumerate(sizes[1:]):
            indicator[start:start + size, j] = 1.0
            start += size
        z = np.hstack([z, indicator])
        directions = np.concatenate([directions, np.zeros(len(others), dtype=int)])
    k = len(F.FEATURE_NAMES)
    penalised = np.arange(z.shape[1]) < k  # the per-source intercepts are intercepts: not penalised
    lower = np.concatenate([T.floors(scale), np.zeros(z.shape[1] - k)])
    coef, intercept = T.fit_constrained(z, y, directions, c_reg=T.C_REGULARISATION, sample_weight=w,
                                        penalised=penalised, lower=lower)
    offsets = {s.name: float(coef[k + j]) for j, s in enumerate(others)}
    return mean, scale, coef[:k], intercept, offsets


def out_of_fold(candidate: str, by_name: dict[str, SourceRows], *,
                progress: Callable[[str], None] = T._quiet) -> dict[str, np.ndarray]:
    """Out-of-fold raw logits of ``candidate`` on every source's rows (NaN outside folds 0..FOLDS-1), as the
    service would compute them: with the first source's intercept, no per-source offset (AUROCs within a source
    do not depend on it)."""
    own = [by_name[n] for n in CANDIDATES[candidate]]
    out = {n: np.full(len(s.y), np.nan) for n, s in by_name.items()}
    for k in range(FOLDS):
        mean, scale, coef, b, _ = fit_on(own, [s.fit & (s.fold != k) & (s.fold >= 0) for s in own])
        for n, s in by_name.items():
            rows = s.fold == k
            out[n][rows] = T.standardise(s.x[rows], mean, scale) @ coef + b  # as served: the first source's intercept
        progress(f"{candidate}: fold {k} fitted")
    return out


def margins(logits: dict[str, np.ndarray], by_name: dict[str, SourceRows], *, n_bootstrap: int, seed: int
            ) -> dict[str, dict[str, Any]]:
    """Per source: the candidate's AUROC, NEWS2's, and the paired difference with its bootstrap interval."""
    out: dict[str, dict[str, Any]] = {}
    for n, s in by_name.items():
        m = s.measure & np.isfinite(logits[n])
        boot = M.bootstrap(s.y[m], {"twin": logits[n][m], "news2": s.news2[m]}, s.patient[m], n=n_bootstrap,
                           seed=seed)
        out[n] = {"rows": int(m.sum()), "positive": int(s.y[m].sum()), "patients": int(pd.unique(s.patient[m]).size),
                  "auroc": boot["twin"]["auroc"], "auroc_ci": boot["twin"]["auroc_ci"],
                  "news2_auroc": boot["news2"]["auroc"], "news2_auroc_ci": boot["news2"]["auroc_ci"],
                  "margin": boot["twin"]["auroc_minus_news2"], "margin_ci": boot["twin"]["auroc_minus_news2_ci"]}
    return out


def choose(results: dict[str, dict[str, Any]]) -> str:
    """``SOURCE_RULE`` on ``{candidate: {"worse_margin": float, ...}}``."""
    best = max(r["worse_margin"] for r in results.values())
    tied = [c for c in CANDIDATES if results[c]["worse_margin"] >= best - SOURCE_TIE]
    return min(tied, key=lambda c: (len(CANDIDATES[c]), list(CANDIDATES).index(c)))


def compare(by_name: dict[str, SourceRows], *, n_bootstrap: int = 200, seed: int = C.CV_SEED,
            progress: Callable[[str], None] = T._quiet) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Every candidate's margins, the rule's choice, and each candidate's out-of-fold logits."""
    results: dict[str, dict[str, Any]] = {}
    logits: dict[str, dict[str, np.ndarray]] = {}
    for cand in CANDIDATES:
        logits[cand] = out_of_fold(cand, by_name, progress=progress)
        per_source = margins(logits[cand], by_name, n_bootstrap=n_bootstrap, seed=seed)
        results[cand] = {"sources": list(CANDIDATES[cand]), "margins": per_source,
                         "worse_margin": float(min(v["margin"] for v in per_source.values()))}
        progress(f"{cand}: " + ", ".join(f"{n} AUROC {v['auroc']:.3f} vs NEWS2 {v['news2_auroc']:.3f} "
                                           f"({v['margin']:+.3f})" for n, v in per_source.items()))
    chosen = choose(results)
    report = {"candidates": results, "chosen": chosen, "rule": SOURCE_RULE, "tie": SOURCE_TIE, "folds": FOLDS,
              "bootstrap": {"draws": n_bootstrap, "seed": seed, "resampled": "patients (stays), per source"},
              "rows": {n: {"fit": int(s.fit.sum()), "measure": int(s.measure.sum()),
                           "patients": int(pd.unique(s.patient[s.fold >= 0]).size)} for n, s in by_name.items()}}
    return report, logits


def choice_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The comparison in short, for the artifact and its model card: every candidate's margins, the choice, the rule."""
    return {"chosen": report["chosen"], "rule": report["rule"],
            "candidates": {c: {"sources": r["sources"], "worse_margin": r["worse_margin"],
                               "margins": {n: {k: v[k] for k in ("auroc", "news2_auroc", "margin", "margin_ci")}
                                           for n, v in r["margins"].items()}}
                           for c, r in report["candidates"].items()}}


def external_rows(by_name: dict[str, SourceRows], logits: dict[str, dict[str, np.ndarray]], chosen: str
                  ) -> dict[str, np.ndarray] | None:
    """Set A's measured rows for the shipped twin's calibration check (``lab.train.external_calibration``): the
    chosen candidate's out-of-fold raw logits when it was fitted on set A, else the features (the shipped twin never
    saw set A, so it scores them itself); with labels, patients and joint folds."""
    if "set-a" not in by_name:
        return None
    sa = by_name["set-a"]
    m = sa.measure & (sa.fold >= 0)
    out = {"y": sa.y[m], "patient": sa.patient[m], "fold": sa.fold[m]}
    if "set-a" in CANDIDATES[chosen]:
        ok = np.isfinite(logits[chosen]["set-a"][m])
        return {**{k: v[ok] for k, v in out.items()}, "logit": logits[chosen]["set-a"][m][ok]}
    return {**out, "x": sa.x[m]}


def pooled_fit(report: dict[str, Any], logits: dict[str, dict[str, np.ndarray]], by_name: dict[str, SourceRows],
               *, progress: Callable[[str], None] = T._quiet) -> T.PooledFit:
    """The chosen candidate (one that includes set A) fitted on every fold's rows of its sources, with its
    out-of-fold simulator logits for :func:`lab.train.train` to calibrate and threshold on."""
    chosen = report["chosen"]
    own = [by_name[n] for n in CANDIDATES[chosen]]
    masks = [s.fit & (s.fold >= 0) for s in own]
    progress(f"fit {chosen} on all its rows: " + ", ".join(f"{s.name} {int(m.sum())}" for s, m in
                                                            zip(own, masks, strict=True)))
    mean, scale, w, b, offsets = fit_on(own, masks)
    rows = ", ".join(f"{s.name}: {int(m.sum())} rows of {int(pd.unique(s.patient[m]).size)} patients"
                     for s, m in zip(own, masks, strict=True))
    summary = choice_summary(report)["candidates"]
    external = external_rows(by_name, logits, chosen)
    return T.PooledFit(name=chosen, oof=logits[chosen]["simulator"], mean=mean, scale=scale, w=w, b=b,
                       external=external,
                       fitted_on=f"{rows} (each source the same total weight, each its own intercept; the "
                                 f"shipped intercept is the simulator ward's)",
                       selection={"candidates": summary, "chosen": chosen, "rule": SOURCE_RULE,
                                  "source_offsets": offsets})


__all__ = ["CANDIDATES", "FOLDS", "SOURCE_RULE", "SOURCE_TIE", "SourceRows", "choice_summary", "choose", "compare",
           "external_rows", "fit_on", "margins", "out_of_fold", "pooled_fit", "set_a_rows", "simulator_rows",
           "source_weights"]
