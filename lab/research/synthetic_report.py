"""``wardtwin research synthetic``: the synthetic-cohort study (``synthetic_study``) written as ``report.json``,
``README.md`` (the tables), ``index.html`` with plots, and the synthetic cohort itself (``synthetic.csv.gz``).

Deterministic: the same records, seed and bootstrap count write the same ``report.json`` and the same synthetic
cohort (its digest is in the report); timings go to the progress lines only.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from lab.html_page import page
from lab.output import Progress
from lab.output import out as say

SYNTHETIC_CSV = "synthetic.csv.gz"


def _f(x: Any, fmt: str = ".3f") -> str:
    return "–" if x is None else format(float(x), fmt)


def _ci(d: dict[str, Any], key: str = "auroc") -> str:
    lo, hi = d.get(f"{key}_ci") or (None, None)
    return f"{_f(d.get(key))} ({_f(lo)}–{_f(hi)})"


def _diff(d: dict[str, Any], ref: str) -> str:
    key = f"auroc_minus_{ref}"
    if key not in d:
        return ""
    lo, hi = d.get(f"{key}_ci") or (None, None)
    return f"{_f(d[key], '+.3f')} ({_f(lo, '+.3f')} to {_f(hi, '+.3f')})"


def headline(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, synthetic, real holdout baseline, goal) rows of the synthetic-cohort table."""
    fid, priv, util = report["fidelity"], report["privacy"], report["utility"]["all"]["scores"]
    ks, corr, c2 = fid["ks"], fid["correlation"], fid["two_sample_test"]
    dcr, mia = priv["dcr"], priv["membership_inference"]
    return [
        ("mean per-column KS statistic", _f(ks["synthetic"]["mean_ks"]), _f(ks["holdout_baseline"]["mean_ks"]),
         "near the baseline"),
        ("largest per-column KS statistic", f"{_f(ks['synthetic']['max_ks'])} ({ks['synthetic']['max_ks_column']})",
         f"{_f(ks['holdout_baseline']['max_ks'])} ({ks['holdout_baseline']['max_ks_column']})", "near the baseline"),
        ("mean abs. correlation difference", _f(corr["synthetic"]["mean_abs_difference"]),
         _f(corr["holdout_baseline"]["mean_abs_difference"]), "near the baseline"),
        ("classifier two-sample test, AUROC", _f(c2["synthetic"]["auroc"]), _f(c2["holdout_baseline"]["auroc"]),
         "0.5"),
        ("classifier two-sample test, accuracy", _f(c2["synthetic"]["accuracy"]),
         _f(c2["holdout_baseline"]["accuracy"]), "0.5"),
        ("twin AUROC on real test patients: TSTR vs TRTR", _ci(util["TSTR"]), f"TRTR {_ci(util['TRTR'])}",
         f"TSTR − TRTR {_diff(util['TSTR'], 'TRTR')}, 0 is as good"),
        ("median distance to closest train record", _f(dcr["synthetic_to_train"]["median"]),
         _f(dcr["holdout_to_train"]["median"]), "not below the baseline"),
        ("5th percentile distance to closest train record", _f(dcr["synthetic_to_train"]["p05"]),
         _f(dcr["holdout_to_train"]["p05"]), "not below the baseline"),
        ("records identical to a train record", _f(dcr["synthetic_to_train"]["exact_copies"], ".4f"),
         _f(dcr["holdout_to_train"]["exact_copies"], ".4f"), "0"),
        ("share nearer a train than a holdout record", _f(dcr["share_synthetic_closer_to_train_than_holdout"]),
         "", "0.5"),
        ("membership inference AUROC (patients; worse of two attacks)", _f(mia["auroc_worst"]), "", "0.5"),
    ]


def _score_rows(block: dict[str, Any], ref: str, groups: tuple[str, ...] = ("all",)) -> list[str]:
    rows = []
    for name in block[groups[0]]["scores"]:
        cells = []
        for g in groups:
            s = block[g]["scores"][name]
            d = _diff(s, ref)
            cells.append(_ci(s) + (f"; {d}" if d else ""))
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def markdown(report: dict[str, Any]) -> list[str]:
    sp = report["split"]
    lines = ["| measure | synthetic (vs real train) | real holdout (vs real train) | goal |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in headline(report)]
    lines += ["", f"Split by patient ({sp['rule']}): train {sp['train']['patients']} patients "
              f"({sp['train']['records']} records), holdout {sp['holdout']['patients']}, test "
              f"{sp['test']['patients']} ({sp['test']['records']} records). AUROC: patient-bootstrap 95 % intervals, "
              f"{report['bootstrap']} resamples; differences paired.", "",
              "### Augmenting a small real training set", "",
              "| twin trained on | AUROC on real test patients; minus real alone |", "|---|---|"]
    for a in report["augmentation"]:
        if "skipped" in a:
            lines.append(f"| {a['real_patients']} real patients | skipped: {a['skipped']} |")
            continue
        for row in _score_rows(a["test"], "real"):
            lines.append(row.replace("| real", f"| {a['real_patients']} real patients", 1))
    reb = report["rebalancing"]
    lines += ["", "### Rebalancing women in a cohort skewed 2:1 toward men", ""]
    if "skipped" in reb:
        lines.append(f"Skipped: {reb['skipped']}")
    else:
        lines += [f"Train patients skewed: {reb['men']} men, {reb['women_kept']} of {reb['women_in_train']} women kept "
                  f"({reb['male_records']} vs {reb['female_records']} records); "
                  f"{reb['synthetic_female_records']} synthetic women's records added.", "",
                  "| twin trained on | all test patients | women | men |", "|---|---|---|---|",
                  *_score_rows(reb["test"], "skewed real", ("all", "women", "men"))]
    return lines


def readme(report: dict[str, Any], command: str) -> str:
    syn = report["synthesizer"]
    text = [
        f"# Synthetic cohorts from {report.get('source', 'records')}", "",
        f"Written by `{command}` (seed {report['seed']}; {report['synthetic']['records']} synthetic records, digest "
        f"`{report['synthetic']['digest']}`). Deterministic: the same command rewrites the same `report.json`.",
        "Committed: this README, `report.json` (every number), `auroc.png` and `ks.png`. Regenerated by the command, "
        f"not committed: `index.html`, `correlation.png` and `{SYNTHETIC_CSV}` (the synthetic cohort itself).", "",
        "Records: one per scorable, eligible patient-hour (the twin's 34 features, the 6-hour deterioration label, "
        "age, sex; set A's in-hospital death). Synthesizer: "
        f"{syn['library']} ({syn['structure']}; {syn['parameters']}).",
        "",
        *markdown(report), "",
        "Read it with care: the synthesizer draws hours, not patients' trajectories; every AUROC is on real test "
        "patients no model saw. Code: `lab/research/synthetic.py`, `synthetic_eval.py`, `synthetic_study.py`.", "",
        *(["Data: PhysioNet challenge-2012 1.0.0, ODC-By 1.0. Silva I, Moody G, Scott DJ, Celi LA, Mark RG. "
           "Predicting In-Hospital Mortality of ICU Patients: The PhysioNet/Computing in Cardiology Challenge 2012. "
           "Computing in Cardiology 2012;39:245-248.", ""] if "PhysioNet" in report.get("source", "") else [])]
    return "\n".join(text)


def _plots(report: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    ks_syn = report["fidelity"]["ks"]["synthetic"]["columns"]
    ks_base = report["fidelity"]["ks"]["holdout_baseline"]["columns"]
    cols = [c for c in ks_syn if ks_syn[c]["ks"] is not None]
    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(len(cols))
    ax.bar(x - 0.2, [ks_syn[c]["ks"] for c in cols], 0.4, label="synthetic vs real train")
    ax.bar(x + 0.2, [ks_base[c]["ks"] or 0 for c in cols], 0.4, label="real holdout vs real train")
    ax.set_xticks(x, cols, rotation=90, fontsize=7)
    ax.set(ylabel="KS statistic", title="Per-column Kolmogorov–Smirnov")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ks.png", dpi=100)
    plt.close(fig)
    names.append("ks.png")

    cm = report["correlation_matrices"]
    real, synth = np.asarray(cm["real"]), np.asarray(cm["synthetic"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    for ax, mat, title in zip(axes, (real, synth, synth - real), ("real train", "synthetic", "synthetic − real"),
                              strict=True):
        im = ax.imshow(mat, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(out / "correlation.png", dpi=100)
    plt.close(fig)
    names.append("correlation.png")

    rows: list[tuple[str, dict[str, Any]]] = []
    for k, v in report["utility"]["all"]["scores"].items():
        rows.append((f"{k} (all train)", v))
    for a in report["augmentation"]:
        for k, v in a.get("test", {}).get("all", {}).get("scores", {}).items():
            rows.append((f"{a['real_patients']} pts: {k}", v))
    reb = report["rebalancing"].get("test", {})
    for g in ("all", "women"):
        for k, v in reb.get(g, {}).get("scores", {}).items():
            rows.append((f"rebalance [{g}]: {k}", v))
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1))
    for i, (_, v) in enumerate(rows):
        lo, hi = v.get("auroc_ci") or (None, None)
        if lo is not None:
            ax.hlines(i, lo, hi, color="grey")
        ax.plot(v["auroc"], i, "o", color="tab:blue")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="twin AUROC on real test patients (95 % interval)", title="Utility of synthetic records")
    fig.tight_layout()
    fig.savefig(out / "auroc.png", dpi=100)
    plt.close(fig)
    names.append("auroc.png")
    return names


def write_html(report: dict[str, Any], out: Path, images: list[str]) -> None:
    body = [f"<h1>Synthetic cohorts: {escape(report.get('source', 'records'))}</h1>",
            "<pre>" + escape("\n".join(markdown(report))) + "</pre>",
            *(f"<img src='{escape(n)}' alt='{escape(n)}'>" for n in images),
            "<h2>Synthesizer</h2><pre>" + escape(json.dumps(report["synthesizer"], indent=1, sort_keys=True))
            + "</pre>", "<p>Every number: <a href='report.json'>report.json</a>.</p>", "</body></html>"]
    (out / "index.html").write_text(page("wardtwin synthetic cohorts", body, width_px=1100, img_percent=98),
                                    encoding="utf-8")


def synthetic_command(*, physionet_records: Path | None, physionet_outcomes: Path | None, cohort: Path | None,
                      store: bool, limit: int | None, out: Path, seed: int, bootstrap: int,
                      sizes: list[int], command_line: str) -> int:
    """Load the records, run the study, write the report (module docstring)."""
    from threadpoolctl import threadpool_limits

    from lab.research import synthetic as S
    from lab.research import synthetic_study as ST

    progress = Progress("synthetic")
    if physionet_records is not None:
        records = S.records_from_physionet(physionet_records, physionet_outcomes, limit=limit, progress=progress)
        source = "PhysioNet 2012 set A" + (f" (first {limit} stays)" if limit else "")
    else:
        from lab.research import cohort as C

        loaded = C.load(cohort=cohort, store=store, progress=progress)
        records = S.records_from_cohort(loaded)
        source = loaded.source
    with threadpool_limits(1):  # a shared 2-core machine: one BLAS/OpenMP thread (results do not depend on it)
        report, synth = ST.run(records, seed=seed, n_bootstrap=bootstrap, progress=progress,
                               sizes=tuple(sizes))
    report["source"] = source
    report["command"] = command_line
    report["library_versions"] = S.library_versions()
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, sort_keys=True, indent=1, allow_nan=False) + "\n",
                                     encoding="utf-8")
    synth.to_csv(out / SYNTHETIC_CSV, index=False, float_format="%.9g", compression={"method": "gzip", "mtime": 0})
    (out / "README.md").write_text(readme(report, command_line), encoding="utf-8")
    write_html(report, out, _plots(report, out))
    for a, b, c, _ in headline(report):
        say(f"{a}: {b}" + (f" (baseline {c})" if c else ""))
    say(f"wrote {out}/report.json, README.md, index.html, plots and {SYNTHETIC_CSV}")
    return 0


__all__ = ["SYNTHETIC_CSV", "headline", "markdown", "readme", "synthetic_command", "write_html"]
