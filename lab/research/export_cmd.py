"""``wardtwin export deidentified``: a k-anonymous, l-diverse (t-close) release of a cohort's windows, with its report.

Writes to ``--out``: ``export.csv`` (one row per released 5-minute window: pseudonym, the generalised
quasi-identifiers, minutes since admission, the window's measures, the twin's 6-hour label and the patient's
outcome), ``report.json`` (what was generalised and suppressed, achieved k / l / t, information loss, the twin's
AUROC on the export against the original (``lab.research.utility``), anonymeter's attack risks
(``lab.research.attacks``)) and ``index.html`` with its plots. The de-identification itself is
``app.research.deidentify`` (the admin API's ``POST /v1/research/exports`` runs the same code).
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from app.research import deidentify as D
from lab.html_page import page
from lab.output import Progress, out
from lab.research import cohort as C


def secret_from(demo_secret: bool) -> bytes:
    """The deployment secret (``WARDTWIN_RESEARCH_SECRET``), or the demo's when asked for by name; else refuse."""
    if demo_secret:
        return D.DEMO_SECRET
    from app.settings import Settings

    value = Settings().research_secret
    return D.check_secret(value.get_secret_value().encode() if value is not None else None)


def build_report(cohort: C.ResearchCohort, export: D.Export, secret: bytes, *, k: int, l_: int, t: float | None,
                 max_suppression: float, attacks: int, progress: Progress) -> dict[str, Any]:
    from lab.research import attacks as A
    from lab.research import utility as U

    report = dict(export.report)
    report["source"] = {"kind": cohort.source, "outcome": cohort.outcome_name, "fingerprint": cohort.fingerprint,
                        "what_is_known": C.__doc__.split("What each source knows (stated, never invented): ")[1]
                        .split("\n\n")[0].replace("\n", " ")}
    progress("twin AUROC: trained on the original vs on the export")
    pseudonyms = {pid: D.pseudonym(secret, pid) for pid in cohort.patients["patient_id"]}
    report["twin_auroc"] = U.compare(cohort.windows, export.rows, pseudonyms)
    if attacks > 0:
        report["attacks"] = A.evaluate(cohort.patients, cohort.windows, secret=secret, k=k, l_=l_, t=t,
                                       max_suppression=max_suppression, n_attacks=attacks, progress=progress)
        report["attacks"]["method"] = A.__doc__.split("\n\n")[1].replace("\n", " ")
    class_sizes = export.released.groupby(list(D.QUASI_IDENTIFIERS)).size()
    report["class_sizes"] = sorted(int(x) for x in class_sizes)
    return report


def _plots(report: dict[str, Any], export: D.Export, cohort: C.ResearchCohort, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    sizes = report["class_sizes"]
    ax[0].hist(sizes, bins=min(30, max(len(sizes), 1)), color="#4a7")
    ax[0].axvline(report["requested"]["k"], color="k", ls="--", label=f"k = {report['requested']['k']}")
    ax[0].set(xlabel="patients per equivalence class", ylabel="classes", title="Released equivalence classes")
    ax[0].legend()
    ages = pd.to_numeric(cohort.patients["age"], errors="coerce").dropna()
    if len(ages):
        ax[1].hist(ages, bins=range(int(ages.min()), int(ages.max()) + 2, 2), color="#888", label="original ages")
        ax[1].legend()
    else:
        ax[1].text(0.5, 0.5, "ages unknown to this source", ha="center", transform=ax[1].transAxes)
    ax[1].set(xlabel="age (years)", ylabel="patients",
              title=f"Ages released as: {report['generalisation_names']['age_group']}")
    fig.tight_layout()
    fig.savefig(out_dir / "classes.png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    names.append("classes.png")
    scen = (report.get("attacks") or {}).get("scenarios") or {}
    if scen:
        fig, ax = plt.subplots(figsize=(10, 3.6))
        labels, vals, lo, hi = [], [], [], []
        for sname, res in scen.items():
            for attack in ("singling_out", "linkability", "inference"):
                r = res.get(attack) or {}
                if r.get("risk") is None:
                    continue
                labels.append(f"{attack.replace('_', ' ')}\n{'+ vitals' if 'vitals' in sname else 'QIs + outcome'}")
                vals.append(r["risk"])
                lo.append(r["risk"] - r["ci95"][0])
                hi.append(r["ci95"][1] - r["risk"])
        ax.bar(range(len(vals)), vals, yerr=[lo, hi], color="#c74", capsize=4)
        ax.set_xticks(range(len(vals)), labels, fontsize=7)
        ax.set(ylabel="risk (anonymeter, 95 % CI)", ylim=(0, 1), title="Re-identification risk of the release")
        fig.tight_layout()
        fig.savefig(out_dir / "attacks.png", dpi=100, metadata={"Software": None})
        plt.close(fig)
        names.append("attacks.png")
    return names


def _html(report: dict[str, Any], plots: list[str]) -> str:
    a, il, pt = report["achieved"], report["information_loss"], report["patients"]
    auc = report["twin_auroc"]
    rows = [
        ("source", f"{report['source']['kind']} (outcome: {report['source']['outcome']})"),
        ("quasi-identifiers", ", ".join(report["quasi_identifiers"])),
        ("sensitive column", report["sensitive_column"]),
        ("requested", json.dumps(report["requested"])),
        ("achieved k / l / t", f"{a['k']} / {a['l']} / {a['t']}"),
        ("t distance", a["t_distance"]),
        ("generalisation", json.dumps(report["generalisation_names"])),
        ("patients released / suppressed", f"{pt['released']} / {pt['suppressed']} of {pt['input']}"),
        ("mean released age-interval width (years)", str(il["mean_age_interval_width_years"])),
        ("fraction of quasi-identifier values generalised", str(il["fraction_of_qi_values_generalised"])),
        ("twin AUROC trained on original / export", f"{auc['auroc_trained_on_original']} / "
                                                    f"{auc['auroc_trained_on_export']}"),
        ("split", auc["split"]),
    ]
    body = [f"<h1>De-identified export: {escape(report['source']['kind'])}</h1>",
            "<table>" + "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
                                for k, v in rows) + "</table>"]
    scen = (report.get("attacks") or {}).get("scenarios") or {}
    if scen:
        body.append("<h2>Attack risks (anonymeter)</h2><p>" + escape(report["attacks"]["method"]) + "</p><table>"
                    "<tr><th>scenario</th><th>attack</th><th>risk</th><th>95 % CI</th></tr>")
        for sname, res in scen.items():
            for attack in ("singling_out", "linkability", "inference"):
                r = res.get(attack) or {}
                ci = r.get("ci95")
                body.append(f"<tr><td>{escape(sname)}</td><td>{attack}</td><td>{r.get('risk')}</td>"
                            f"<td>{escape(str(ci) if ci else r.get('error', ''))}</td></tr>")
        body.append("</table>")
    body += [f"<p><img src='{p}' alt='{p}'></p>" for p in plots]
    body.append(f"<pre>{escape(report.get('command', ''))}</pre></body></html>")
    return page("De-identified export", body, width_px=1000, img_percent=100)


def deidentified(*, cohort: Path | None, store: bool, physionet_records: Path | None,
                 physionet_outcomes: Path | None, limit: int | None, k: int, l_div: int, t: float | None,
                 max_suppression: float, attacks: int, out_dir: Path, csv: Path | None, demo_secret: bool,
                 command_line: str) -> int:
    """``wardtwin export deidentified``."""
    progress = Progress("export")
    try:
        secret = secret_from(demo_secret)
    except D.SecretMissingError as exc:
        out(f"refused: {exc}")
        return 2
    data = C.load(cohort=cohort, store=store, physionet_records=physionet_records,
                  physionet_outcomes=physionet_outcomes, limit=limit, progress=progress)
    progress(f"de-identifying {len(data.patients)} patients, {len(data.windows)} windows (k={k}, l={l_div}, t={t})")
    export = D.deidentify(data.patients, data.windows, secret=secret, k=k, l_=l_div, t=t,
                          max_suppression=max_suppression, outcome_name=data.outcome_name, progress=progress)
    report = build_report(data, export, secret, k=k, l_=l_div, t=t, max_suppression=max_suppression, attacks=attacks,
                          progress=progress)
    report["command"] = command_line
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = csv or out_dir / "export.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    export.rows.to_csv(csv_path, index=False, lineterminator="\n", float_format="%.6g")
    report["export_csv"] = {"rows": len(export.rows), "columns": list(export.rows.columns), "path": str(csv_path)}
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True, allow_nan=False) + "\n",
                                         encoding="utf-8")
    plots = _plots(report, export, data, out_dir)
    (out_dir / "index.html").write_text(_html(report, plots), encoding="utf-8")
    a, pt = report["achieved"], report["patients"]
    out(f"{csv_path}: {pt['released']} of {pt['input']} patients ({pt['suppressed']} suppressed), "
        f"{len(export.rows)} windows; achieved k={a['k']} l={a['l']} t={a['t']}")
    return 0


__all__ = ["build_report", "deidentified", "secret_from"]
