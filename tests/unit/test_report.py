"""models.report: the evaluation report end to end (twin, NEWS2, challenger; JSON, HTML, PNG, text)."""

from __future__ import annotations

import json

from models import report as R
from models import train as T
from models.twin import Twin
from tests.support.synthetic_windows import synthetic_windows


def test_evaluation_report_end_to_end(tmp_path) -> None:
    w, p = synthetic_windows(40, 20, seed=31, frac_deteriorating=0.6)
    ds = T.prepare(w, p)
    art = T.train(w, None, p, seed=2, cohort_fingerprint={"seed": 31, "n_patients": 40}, dataset=ds)
    ch = T.train_challenger(ds, seed=2, twin=art)
    T.write_json(ch, tmp_path / "challenger.json")
    twin = Twin.from_dict(art)
    w2, p2 = synthetic_windows(16, 20, seed=32, frac_deteriorating=0.6, prefix="q")
    rep = R.evaluate(twin, T.prepare(w2, p2), cohort_fingerprint={"seed": 32, "n_patients": 30},
                     challenger_path=tmp_path / "challenger.json", n_bootstrap=10, seed=0)
    assert rep["patients"] == 16 and rep["scope"].startswith("an independent cohort")
    assert rep["contributions_check"]["max_abs_error"] < 1e-9
    d = rep["discrimination"]
    assert d["twin"]["auroc_ci"][0] <= d["twin"]["auroc"] <= d["twin"]["auroc_ci"][1]
    assert {"twin >= 0.7", "NEWS2 >= 5", "NEWS2 >= 7", "challenger >= 0.7"} <= set(rep["operating_points"])
    assert {"sex=F", "sex=M", "age 70+"} <= set(rep["subgroups"])
    same = R.evaluate(twin, ds, cohort_fingerprint={"seed": 31, "n_patients": 40}, n_bootstrap=0)
    assert same["scope"].startswith("test patients") and same["patients"] < 40
    R.write_report(rep, tmp_path / "report")
    for name in ("report.json", "index.html", "roc.png", "calibration.png", "lead_time.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert json.loads((tmp_path / "report" / "report.json").read_text())["twin_version"] == art["version"]
    assert "AUROC" in R.format_table(rep)
