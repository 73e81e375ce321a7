"""``wardtwin export aggregates`` (one DP release, spent from the ledger) and ``wardtwin export dp-report`` (the
noise's error against the true aggregate at several ε).

The error table: for each statistic and ε, ``--draws`` independent releases by the same mechanism
(``app.research.dp.noisy_values``, OpenDP's Laplace), each compared with the true bounded aggregate
(``app.research.dp.true_values``: after clipping and per-patient caps, so it measures the noise, not the clipping);
mean absolute error over draws and cells, and mean relative error (|noisy − true| / |true|, cells with a true value
of 0 left out), with the clipping bias (bounded aggregate vs the unclipped one) reported beside it. It is a
measurement by the data holder, not a release: it spends nothing from the ledger. OpenDP's noise is not seedable
(by design), so a rerun moves the errors in their second significant digit; the analytic expectation (a Laplace
variable of scale b has mean absolute value b) is given beside each.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.research import dp as P
from app.research.ledger import BudgetExhaustedError, PrivacyLedger
from lab.html_page import page
from lab.output import Progress, out
from lab.research import cohort as C


def _ledger(data_dir: Path | None) -> tuple[PrivacyLedger, float, float]:
    from app.settings import Settings

    s = Settings() if data_dir is None else Settings(data_dir=data_dir)
    return PrivacyLedger(s.data_dir / "privacy.db"), s.research_epsilon_budget, s.research_delta_budget


def aggregates(*, cohort: Path | None, store: bool, physionet_records: Path | None, physionet_outcomes: Path | None,
               limit: int | None, statistic: str, epsilon: float, vital: str, max_hours: int,
               data_dir: Path | None) -> int:
    """``wardtwin export aggregates``: one release; exit 3 (and nothing released) when the budget would be spent."""
    query = P.Query(statistic, epsilon, vital, max_hours)
    try:
        query.check()
    except P.InvalidQueryError as exc:
        out(f"refused: --{exc.field.replace('_', '-')}: {exc}")
        return 2
    data = C.load(cohort=cohort, store=store, physionet_records=physionet_records,
                  physionet_outcomes=physionet_outcomes, limit=limit, progress=Progress("aggregates"))
    ledger, eps_budget, delta_budget = _ledger(data_dir)
    try:
        after = ledger.spend(data.dataset_id, epsilon, 0.0, query=json.dumps(query.__dict__), actor="cli",
                             at=datetime.now(UTC), budget=(eps_budget, delta_budget))
    except BudgetExhaustedError as exc:
        out(f"refused: {exc}")
        return 3
    result = P.release(data.patients, data.windows, query)
    result["dataset"] = data.dataset_id
    result["budget"] = after.as_dict()
    out(json.dumps(result, indent=1))
    return 0


def error_table(patients: pd.DataFrame, windows: pd.DataFrame, epsilons: list[float], draws: int,
                progress: Progress) -> list[dict[str, Any]]:
    rows = []
    for stat in P.STATISTICS:
        for eps in epsilons:
            q = P.Query(stat, eps).check()
            c = P.contributions(patients, windows, q)
            truth = np.asarray([np.nan if v is None else v for v in P.true_values(c, q)], dtype=float)
            errs, rels, missing = [], [], 0
            for _ in range(draws):
                noisy = np.asarray([np.nan if v is None else v for v in P.noisy_values(c, q)], dtype=float)
                ok = np.isfinite(truth) & np.isfinite(noisy)
                missing += int((np.isfinite(truth) & ~np.isfinite(noisy)).sum())
                e = np.abs(noisy[ok] - truth[ok])
                errs.extend(e.tolist())
                nz = ok & (np.abs(truth) > 0)
                rels.extend((np.abs(noisy[nz] - truth[nz]) / np.abs(truth[nz])).tolist())
            mech = P.describe(q)
            rows.append({"statistic": stat, "epsilon": eps, "draws": draws, "cells": int(np.isfinite(truth).sum()),
                         "mean_abs_error": float(np.mean(errs)) if errs else None,
                         "mean_rel_error": float(np.mean(rels)) if rels else None,
                         "cells_suppressed_by_noise": missing, "noise": mech["noise"],
                         "unit": {"admissions": "patients", "deterioration_rate": "fraction"}.get(
                             stat, "hr_mean (bpm)")})
            progress(f"{stat} epsilon={eps}: mean abs error {rows[-1]['mean_abs_error']}")
    return rows


def _clipping_bias(windows: pd.DataFrame) -> dict[str, float | None]:
    """hr_mean by hour: bounded (clipped, capped) aggregate minus the plain per-patient-hour mean, averaged."""
    q = P.Query("vitals_by_hour", 1.0).check()
    bounded = np.asarray([np.nan if v is None else v for v in P.true_values(P.contributions(
        pd.DataFrame(), windows, q), q)], dtype=float)
    w = windows[["patient_id", "start", "hr_mean"]].dropna()
    hour = pd.to_datetime(w["start"], utc=True).dt.hour
    plain = (w.assign(hour=hour.to_numpy()).groupby(["patient_id", "hour"])["hr_mean"].mean()
             .groupby(level="hour").mean().reindex(range(P.HOURS)).to_numpy())
    d = bounded - plain
    return {"mean_abs_bias_bpm": float(np.nanmean(np.abs(d))) if np.isfinite(d).any() else None}


def dp_report(*, cohort: Path | None, store: bool, physionet_records: Path | None, physionet_outcomes: Path | None,
              limit: int | None, epsilons: str, draws: int, out_dir: Path, command_line: str) -> int:
    """``wardtwin export dp-report``."""
    progress = Progress("dp-report")
    eps = [float(x) for x in epsilons.split(",") if x.strip()]
    data = C.load(cohort=cohort, store=store, physionet_records=physionet_records,
                  physionet_outcomes=physionet_outcomes, limit=limit, progress=progress)
    table = error_table(data.patients, data.windows, eps, draws, progress)
    report = {"source": {"kind": data.source, "fingerprint": data.fingerprint, "patients": len(data.patients),
                         "wards": sorted(data.patients["ward"].astype(str).unique()),
                         "outcome": data.outcome_name},
              "mechanisms": {s: P.describe(P.Query(s, 1.0)) for s in P.STATISTICS},
              "method": __doc__.split("\n\n")[1].replace("\n", " "),
              "mechanism_doc": P.__doc__, "errors": table, "clipping_bias_hr": _clipping_bias(data.windows),
              "command": command_line}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True, allow_nan=False) + "\n",
                                         encoding="utf-8")
    _plot(table, out_dir)
    head = "<tr><th>statistic</th><th>ε</th><th>mean abs error</th><th>mean rel error</th><th>noise</th></tr>"
    body = [f"<h1>Differentially private ward statistics: {escape(data.source)}</h1>",
            f"<p>{escape(report['method'])}</p><table>{head}"]
    body += [f"<tr><td>{r['statistic']}</td><td>{r['epsilon']}</td><td>{r['mean_abs_error']:.4g} {r['unit']}</td>"
             f"<td>{r['mean_rel_error']:.3g}</td><td>{escape(r['noise'])}</td></tr>" for r in table]
    body += ["</table><p><img src='error.png' alt='error against epsilon'></p>",
             f"<pre>{escape(P.__doc__ or '')}</pre><pre>{escape(command_line)}</pre></body></html>"]
    (out_dir / "index.html").write_text(page("DP aggregates", body, width_px=1000, img_percent=100), encoding="utf-8")
    for r in table:
        out(f"{r['statistic']:<20} eps={r['epsilon']:<5} mean abs error {r['mean_abs_error']:.4g} "
            f"mean rel error {r['mean_rel_error']:.3g}")
    return 0


def _plot(table: list[dict[str, Any]], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for stat in P.STATISTICS:
        rows = [r for r in table if r["statistic"] == stat]
        ax.plot([r["epsilon"] for r in rows], [r["mean_rel_error"] for r in rows], marker="o", label=stat)
    ax.set(xscale="log", yscale="log", xlabel="ε (per query)", ylabel="mean relative error",
           title="Noise against the true aggregate")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "error.png", dpi=100, metadata={"Software": None})
    plt.close(fig)


__all__ = ["aggregates", "dp_report", "error_table"]
