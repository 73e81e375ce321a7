"""``reports/sources/``: the comparison that chose the twin's training data (``lab.source_choice``), as JSON, a
short HTML page and one plot of every candidate's margins over NEWS2 with their intervals."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"Training data chosen by SOURCE_RULE: {report['chosen']}."]
    for cand, r in report["candidates"].items():
        parts = []
        for source, m in r["margins"].items():
            lo, hi = m["margin_ci"]
            parts.append(f"{source} AUROC {m['auroc']:.3f} vs NEWS2 {m['news2_auroc']:.3f}, margin {m['margin']:+.3f} "
                         f"({lo:+.3f} to {hi:+.3f})")
        lines.append(f"  {cand:<16} worse margin {r['worse_margin']:+.3f}; " + "; ".join(parts))
    return lines


def write(report: dict[str, Any], out: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    cands = list(report["candidates"])
    sources = list(next(iter(report["candidates"].values()))["margins"])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for j, source in enumerate(sources):
        for i, cand in enumerate(cands):
            m = report["candidates"][cand]["margins"][source]
            lo, hi = m["margin_ci"]
            xpos = i + (j - (len(sources) - 1) / 2) * 0.25
            ax.errorbar(xpos, m["margin"], yerr=[[m["margin"] - lo], [hi - m["margin"]]], fmt="o", capsize=4,
                        color=f"C{j}", label=source if i == 0 else None)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(cands)), cands)
    ax.set_ylabel("AUROC − NEWS2 AUROC (out of fold)")
    ax.set_title("Twin trained on each source: margin over NEWS2, 95 % patient-bootstrap interval")
    ax.legend(title="measured on")
    fig.tight_layout()
    fig.savefig(out / "margins.png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    rows = []
    for cand in cands:
        r = report["candidates"][cand]
        cells = "".join(f"<td>{m['auroc']:.3f} vs {m['news2_auroc']:.3f}<br>{m['margin']:+.3f} "
                        f"({m['margin_ci'][0]:+.3f} to {m['margin_ci'][1]:+.3f})</td>" for m in r["margins"].values())
        mark = " <b>(chosen)</b>" if cand == report["chosen"] else ""
        rows.append(f"<tr><td>{escape(cand)}{mark}</td>{cells}<td>{r['worse_margin']:+.3f}</td></tr>")
    head = "".join(f"<th>{escape(s)}: twin vs NEWS2 AUROC, margin (95 % CI)</th>" for s in sources)
    html = (
        "<!doctype html><meta charset='utf-8'><title>wardtwin: the twin's training data</title>"
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}td,th{border:1px solid #ccc;"
        "padding:.3rem .5rem}table{border-collapse:collapse}</style>"
        "<h1>Which data the twin learns from</h1>"
        f"<p><b>Rule</b> (stated before the comparison was run): {escape(report['rule'])}.</p>"
        f"<table><tr><th>candidate</th>{head}<th>worse margin</th></tr>{''.join(rows)}</table>"
        "<p><img src='margins.png' alt='margins over NEWS2'></p>"
        f"<p>Rows: {escape(json.dumps(report['rows']))}. Bootstrap: {escape(json.dumps(report['bootstrap']))}.</p>"
        f"<p>Written by <code>{escape(report.get('command', ''))}</code>.</p>")
    (out / "index.html").write_text(html + "\n", encoding="utf-8")


__all__ = ["summary_lines", "write"]
