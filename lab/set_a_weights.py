"""``wardtwin evaluate set-a-weights``: which signals the shipped twin under-weights on PhysioNet 2012 set A.

Analysis only (issue 20: why the source comparison credits the simulator-trained twin with +0.061 over NEWS2 on set
A, short of +0.08, and what set A would weigh differently): nothing here is shipped, and nothing here feeds a rule
that chooses what is shipped.

Rows and folds are the source comparison's (``lab.source_choice.set_a_rows``): set A's eligible scorable stay-hours,
5 folds by stay stratified by charted event (seed 2012); margins over NEWS2 (charted hourly) on the rows where NEWS2
exists, with the same patient bootstrap. Every fit below is made on four folds and measured on the fifth.

1. **Weights side by side.** The shipped twin's fitted (pre-Platt) coefficients against the same model fitted on set A
   alone with the same constraints (``lab.source_choice.fit_on``: the sign of each feature, the NEWS2 floor,
   class-balanced L2 at ``lab.train.C_REGULARISATION``; all of set A's folds), both expressed per SD of set A, so one
   scale serves both (the shipped coefficient per simulator SD × set-A SD / simulator SD).
2. **What set A would add to the shipped twin, feature by feature.** A two-column fit: the shipped twin's raw logit
   (free scale ``α``) and one feature standardised on set A (free sign ``δ``, neither direction nor floor), class-
   balanced and unpenalised. ``δ / α`` is the weight per set-A SD, in the shipped logit's units, that the twin lacks
   (> 0: under-weighted on set A) or carries too much of (< 0); the out-of-fold margin over NEWS2 of that model says
   what the correction is worth. Features are correlated, so each row answers "this one alone, the rest as shipped".
3. **Together.** The same with the NEWS2-scored features added at once, and set A's own fit (the comparison's
   ``set-a`` candidate) as the ceiling.
4. **The comparison's simulator candidate, fold by fold** (``--simulator-folds``, :func:`fold_models`): the training
   cohort regenerated from the artifact, each fold model scoring all of set A, beside the pooled figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import numpy as np
from scipy.special import expit

from lab import metrics as M
from lab import source_choice as S
from lab import train as T
from lab.calibrate import damped_newton
from lab.output import Progress
from lab.output import out as say
from models import features as F

#: The features whose signal NEWS2 also scores (its seven parameters): the two-sided levels, consciousness, oxygen.
NEWS2_SCORED: Final[tuple[str, ...]] = (*(lv.name for lv in F.LEVELS), "not_alert", "on_oxygen")
BOOTSTRAP_SEED: Final[int] = 2012


def shipped_raw_logit(artifact: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The shipped twin's fitted (pre-Platt) logit: the artifact's scaler and winsorising bounds, its uncalibrated
    coefficients (a ranking equal to the served risk's: Platt's slope is positive)."""
    sc = artifact["scaler"]
    z = T.standardise(x, np.asarray(sc["mean"]), np.asarray(sc["scale"]), np.asarray(sc["clip"]))
    raw = artifact["uncalibrated"]
    return z @ np.asarray(raw["coefficients"], dtype=float) + float(raw["intercept"])


def _added_fit(base: np.ndarray, extra: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[np.ndarray, float]:
    """(weights of [base, extra columns...], intercept): class-balanced logistic regression, every weight free in sign
    and unpenalised (a few columns on ~10^5 rows). Newton steps with step-halving on plain element-wise sums, not
    BLAS products, which crawl when their threads compete for busy cores (``lab.calibrate.damped_newton``)."""
    cols = [np.asarray(base, dtype=float), *np.asarray(extra, dtype=float).reshape(len(base), -1).T, np.ones(len(y))]
    y = np.asarray(y, dtype=float)
    n_pos = float(y.sum())
    sw = np.where(y == 1, len(y) / (2 * n_pos), len(y) / (2 * (len(y) - n_pos)))
    k = len(cols)

    def eta_of(th: np.ndarray) -> np.ndarray:
        eta = np.zeros(len(y))
        for c, t in zip(cols, th, strict=True):
            eta += t * c
        return eta

    def nll(th: np.ndarray) -> float:
        eta = eta_of(th)
        return float(np.sum(sw * (np.logaddexp(0.0, eta) - y * eta)))

    def step_of(th: np.ndarray) -> np.ndarray:
        q = expit(eta_of(th))
        r, h = sw * (y - q), sw * q * (1 - q)
        grad = np.array([float(np.sum(r * c)) for c in cols])
        hess = np.array([[float(np.sum(h * a * b)) for b in cols] for a in cols]) + 1e-9 * np.eye(k)
        return np.linalg.solve(hess, grad)

    theta = damped_newton(np.zeros(k), nll, step_of, iterations)
    return theta[:-1], float(theta[-1])


def analyse(rows: S.SourceRows, artifact: dict[str, Any], *, n_bootstrap: int, progress: Progress
            ) -> dict[str, Any]:
    """The three measurements of the module docstring as plain data."""
    names = list(F.FEATURE_NAMES)
    idx = {n: i for i, n in enumerate(names)}
    scored = [n for n in NEWS2_SCORED if n in idx]
    base = shipped_raw_logit(artifact, rows.x)
    sim_scale = np.asarray(artifact["scaler"]["scale"], dtype=float)
    shipped_w = np.asarray(artifact["uncalibrated"]["coefficients"], dtype=float)
    folds = sorted(int(k) for k in np.unique(rows.fold[rows.fold >= 0]))
    keys = ("set-a fit", "shipped + NEWS2-scored", *(f"shipped + {n}" for n in names))
    oof: dict[str, np.ndarray] = {key: np.full(len(rows.y), np.nan) for key in keys}
    deltas: dict[str, list[float]] = {n: [] for n in names}
    for k in folds:
        train = rows.fit & (rows.fold != k) & (rows.fold >= 0)
        test = rows.fold == k
        mean, scale, coef, b, _ = S.fit_on([rows], [train])
        z = T.standardise(rows.x, mean, scale)
        z_fit, z_test, b_fit, b_test, y_fit = z[train], z[test], base[train], base[test], rows.y[train]
        oof["set-a fit"][test] = z_test @ coef + b
        for n in names:
            w, c = _added_fit(b_fit, z_fit[:, [idx[n]]], y_fit)
            deltas[n].append(float(w[1] / w[0]) if w[0] > 0 else float("nan"))
            oof[f"shipped + {n}"][test] = b_test * w[0] + z_test[:, idx[n]] * w[1] + c
        cols = [idx[n] for n in scored]
        w, c = _added_fit(b_fit, z_fit[:, cols], y_fit)
        oof["shipped + NEWS2-scored"][test] = b_test * w[0] + z_test[:, cols] @ w[1:] + c
        progress(f"fold {k}: set-A fit and {len(names) + 1} additions to the shipped twin fitted")

    mean_a, scale_a, coef_a, _, _ = S.fit_on([rows], [rows.fit & (rows.fold >= 0)])
    m = rows.measure & (rows.fold >= 0)
    y, news, patient = rows.y[m], rows.news2[m], rows.patient[m]
    headline = {"shipped": base[m], "shipped + NEWS2-scored": oof["shipped + NEWS2-scored"][m],
                "set-a fit": oof["set-a fit"][m]}
    progress(f"margins over NEWS2 on {int(m.sum())} stay-hours, bootstrap {n_bootstrap}")
    boot = M.bootstrap(y, {**headline, "news2": news}, patient, n=n_bootstrap, seed=BOOTSTRAP_SEED)
    news_auroc = M.auroc(y, news)

    def margin_of(score: np.ndarray) -> float:
        return float(M.auroc(y, score) or np.nan) - float(news_auroc or np.nan)

    zs = T.standardise(rows.x[m], mean_a, scale_a)
    features = []
    for n in names:
        j = idx[n]
        features.append({
            "feature": n, "news2_scored": n in scored,
            "set_a_sd": float(scale_a[j]), "simulator_sd": float(sim_scale[j]),
            "shipped_per_set_a_sd": float(shipped_w[j] * scale_a[j] / sim_scale[j]),
            "set_a_fit_per_set_a_sd": float(coef_a[j]),
            "added_on_set_a_per_set_a_sd": _finite(float(np.nanmean(deltas[n])) if np.isfinite(deltas[n]).any()
                                                   else float("nan")),
            "added_on_set_a_by_fold": [_finite(d) for d in deltas[n]],
            "margin_with_it_refitted": margin_of(oof[f"shipped + {n}"][m]),
            "univariate_auroc_on_set_a": M.auroc(y, zs[:, j]),
        })
    shipped_margin = margin_of(base[m])
    for f in features:
        f["margin_gain"] = f["margin_with_it_refitted"] - shipped_margin
    features.sort(key=lambda f: -f["margin_gain"])
    return {
        "rows": {"stay_hours": int(m.sum()), "positive": int(y.sum()), "stays": len(set(patient)),
                 "fit_rows": int((rows.fit & (rows.fold >= 0)).sum())},
        "news2_auroc": news_auroc,
        "models": {k: {"auroc": boot[k]["auroc"], "auroc_ci": boot[k]["auroc_ci"],
                       "margin": boot[k]["auroc_minus_news2"], "margin_ci": boot[k]["auroc_minus_news2_ci"]}
                   for k in headline},
        "news2_scored": scored,
        "features": features,
        "bootstrap": {"draws": n_bootstrap, "seed": BOOTSTRAP_SEED, "resampled": "stays"},
        "twin_version": artifact["version"],
        "rules": {
            "rows": "lab.source_choice.set_a_rows: eligible scorable stay-hours; margins where NEWS2 exists",
            "folds": "5 folds by stay, stratified by charted event, seed 2012 (the source comparison's)",
            "shipped": "the shipped artifact's uncalibrated coefficients and scaler (never refitted here)",
            "set_a_fit": "lab.source_choice.fit_on on set A alone: sign, NEWS2 floor, class-balanced L2 (C=1)",
            "added": "per fold: class-balanced unpenalised fit of [shipped raw logit (scale alpha), one feature "
                     "standardised on set A (delta, free sign)]; delta / alpha per set-A SD, mean over folds; "
                     "margin of that model out of fold",
            "per_set_a_sd": "shipped coefficient per simulator SD x set-A SD / simulator SD",
        },
    }


def fold_models(sim: S.SourceRows, seta: S.SourceRows, artifact: dict[str, Any], *, progress: Progress
                ) -> dict[str, Any]:
    """The source comparison's ``simulator`` candidate fold by fold (``--simulator-folds``).

    Fold ``k``'s model is fitted on the other four folds of the simulator's development patients
    (``lab.source_choice.fit_on``, exactly as ``out_of_fold``); the comparison scored only set-A fold ``k`` with it
    and pooled the five. Here each fold model also scores all of set A (none of which any of them saw), beside the
    shipped twin (the same model fitted on all five folds) and a refit of it from the regenerated cohort (a check
    that the cohort is the artifact's)."""
    m = seta.measure & (seta.fold >= 0)
    y, news, fold, x = seta.y[m], seta.news2[m], seta.fold[m], seta.x[m]

    def margin(score: np.ndarray, rows: np.ndarray | None = None) -> float:
        r = np.ones(len(y), dtype=bool) if rows is None else rows
        return float(M.auroc(y[r], score[r]) or np.nan) - float(M.auroc(y[r], news[r]) or np.nan)

    shipped = shipped_raw_logit(artifact, x)
    names = list(F.FEATURE_NAMES)
    pooled = np.full(len(y), np.nan)
    folds = []
    for k in sorted(int(v) for v in np.unique(sim.fold[sim.fold >= 0])):
        mean, scale, coef, b, _ = S.fit_on([sim], [sim.fit & (sim.fold != k) & (sim.fold >= 0)])
        logit = T.standardise(x, mean, scale) @ coef + b
        own = fold == k
        pooled[own] = logit[own]
        folds.append({"fold": k, "margin_on_all_set_a": margin(logit), "margin_on_its_set_a_fold": margin(logit, own),
                      "shipped_margin_on_that_fold": margin(shipped, own),
                      "coefficients_per_simulator_sd": dict(zip(names, coef.tolist(), strict=True))})
        progress(f"simulator fold model {k}: margin on all of set A {folds[-1]['margin_on_all_set_a']:+.3f}")
    mean, scale, coef, b, _ = S.fit_on([sim], [sim.fit & (sim.fold >= 0)])
    shipped_w = np.asarray(artifact["uncalibrated"]["coefficients"], dtype=float)
    return {
        "pooled_margin": margin(pooled),
        "shipped_margin": margin(shipped),
        "refit_on_all_folds_margin": margin(T.standardise(x, mean, scale) @ coef + b),
        "refit_max_abs_coefficient_difference_from_shipped": float(np.max(np.abs(coef - shipped_w))),
        "folds": folds,
        "rows": {"simulator_fit_rows": int(sim.fit.sum()), "set_a_rows": int(m.sum())},
    }


def summary_lines(report: dict[str, Any], top: int = 8) -> list[str]:
    """The headline margins and the features whose refit on set A gains most."""
    lines = [f"{k}: AUROC {v['auroc']:.3f}, margin over NEWS2 {v['margin']:+.3f} "
             f"({v['margin_ci'][0]:+.3f} to {v['margin_ci'][1]:+.3f})" for k, v in report["models"].items()]
    for f in report["features"][:top]:
        added = f["added_on_set_a_per_set_a_sd"]
        lines.append(f"  {f['feature']}: shipped {f['shipped_per_set_a_sd']:+.3f} vs set A "
                     f"{f['set_a_fit_per_set_a_sd']:+.3f} per set-A SD; set A adds "
                     f"{'—' if added is None else format(added, '+.3f')}; margin gain {f['margin_gain']:+.4f}")
    fm = report.get("fold_models")
    if fm:
        lines.append(f"the comparison's simulator candidate: pooled over folds {fm['pooled_margin']:+.3f}; each "
                     "fold model on all of set A " + ", ".join(f"{f['margin_on_all_set_a']:+.3f}" for f in fm["folds"])
                     + f"; shipped {fm['shipped_margin']:+.3f} (refit {fm['refit_on_all_folds_margin']:+.3f})")
    return lines


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


def simulator_rows_of(artifact: dict[str, Any], progress: Progress) -> S.SourceRows:
    """The artifact's training cohort regenerated from its fingerprint (patients, hours, seed, archetype mix) and cut
    into the development folds of its split seed, as ``wardtwin train`` did."""
    from lab.models_cmd import CohortSpec, load_cohort_windows

    c = artifact["cohort"]
    mix = ",".join(f"{k}={v}" for k, v in c["archetype_mix"].items())
    windows, patients, events, _ = load_cohort_windows(
        CohortSpec(None, int(c["n_patients"]), float(c["hours"]), int(c["seed"]), mix), progress)
    dataset = T.prepare(windows, patients, events, progress=progress)
    return S.simulator_rows(dataset, seed=int(artifact["split"]["seed"]))


def set_a_weights_command(*, records: Path, limit: int | None, out: Path, artifact: Path | None,
                          bootstrap: int, simulator_folds: bool) -> int:
    """``wardtwin evaluate set-a-weights``: write ``out`` (JSON) and print the summary."""
    from lab.sources_cmd import set_a_table
    from models.twin import Twin

    progress = Progress("set-a-weights")
    twin = Twin.load(artifact)
    if (twin.artifact.get("cohort") or {}).get("real_data"):
        say(f"the twin {twin.version} was fitted on real records: this analysis compares a simulator-trained twin "
            "with set A and would judge it in sample")
        return 2
    table, events, tally = set_a_table(records, limit, progress)
    progress(f"set A: {tally.stays} stays, {len(table)} stay-hours, {len(events)} charted events")
    seta = S.set_a_rows(table, events)
    report = analyse(seta, twin.artifact, n_bootstrap=bootstrap, progress=progress)
    if simulator_folds:
        del table
        report["fold_models"] = fold_models(simulator_rows_of(twin.artifact, progress), seta, twin.artifact,
                                            progress=progress)
    report["records"] = records.name
    report["limit"] = limit
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    for line in summary_lines(report):
        say(line)
    say(f"written: {out}")
    return 0


__all__ = ["NEWS2_SCORED", "analyse", "set_a_weights_command", "shipped_raw_logit", "summary_lines"]
