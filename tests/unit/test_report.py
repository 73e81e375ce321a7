"""lab.report: the evaluation report end to end (twin, NEWS2 charted and every 5 min, challenger, seeds pooled;
JSON, HTML, PNG, text)."""

from __future__ import annotations

import json

from lab import report as R
from lab import train as T
from models import labels as L
from models.twin import Twin
from tests.support.synthetic_windows import synthetic_windows


def _truth(w):  # type: ignore[no-untyped-def]
    """Ground truth for synthetic windows: the first derived event of each patient (the simulator's shape)."""
    ev = L.events(w)
    return ev.groupby("patient_id", as_index=False).first()[["patient_id", "kind", "onset"]]


def test_evaluation_report_end_to_end(tmp_path) -> None:
    w, p = synthetic_windows(40, 20, seed=31, frac_deteriorating=0.6)
    ds = T.prepare(w, p)
    art = T.train(w, None, p, seed=2, cohort_fingerprint={"seed": 31, "n_patients": 40}, dataset=ds)
    ch = T.train_challenger(ds, seed=2, twin=art)
    T.write_json(ch, tmp_path / "challenger.json")
    twin = Twin.from_dict(art)
    datasets, fingerprints = {}, {}
    for s in (32, 33):
        w2, p2 = synthetic_windows(16, 20, seed=s, frac_deteriorating=0.6, prefix="q")
        datasets[s] = T.prepare(w2, p2, _truth(w2))
        fingerprints[s] = {"seed": s, "n_patients": 16}
    old = {"discrimination": {"twin": {"auroc": 0.7, "auroc_ci": [0.6, 0.8], "auroc_minus_news2": 0.1,
                                       "auroc_minus_news2_ci": [0.0, 0.2]},
                              "news2": {"auroc": 0.6, "auroc_ci": [0.5, 0.7]}},
           "operating_points": {"NEWS2 >= 5": {"sensitivity": 0.8, "detected": 8, "events": 10, "ppv": 0.1,
                                               "alerts_per_patient_day": 2.0, "median_lead_h": 2.0}},
           "cohort": {"seed": 2024}}
    rep = R.evaluate_seeds(twin, datasets, fingerprints, challenger_path=tmp_path / "challenger.json",
                           n_bootstrap=10, previous=R.previous_summary(old))
    pooled = rep["pooled"]
    assert set(rep["per_seed"]) == {"32", "33"} and pooled["patients"] == 32
    assert pooled["first_events"] == sum(r["first_events"] for r in rep["per_seed"].values())
    assert pooled["scope"].startswith("an independent cohort")
    assert pooled["contributions_check"]["max_abs_error"] < 1e-9
    d = pooled["discrimination"]
    for k in ("twin", "news2", "news2_charted"):
        assert d[k]["auroc_ci"][0] <= d[k]["auroc"] <= d[k]["auroc_ci"][1]
    assert "auroc_minus_news2_charted_ci" in d["twin"] and "auprc_minus_news2_ci" in d["twin"]
    thr = twin.alert_threshold
    assert {f"twin >= {thr:g} (service default)", "NEWS2 >= 5 charted", "NEWS2 >= 5 every 5 min",
            "NEWS2 >= 7 charted", "NEWS2 >= 7 every 5 min"} <= set(pooled["operating_points"])
    for op in pooled["operating_points"].values():
        assert {"sensitivity_ci", "ppv_ci", "alerts_per_patient_day_ci"} <= set(op) and "per_patient" not in op
    assert {"sex=F", "sex=M", "age 70+"} <= set(pooled["subgroups"])
    assert any("atrial fibrillation" in m for m in pooled["subgroups_missing"])
    itl = pooled["calibration"]["twin"]["in_the_large"]
    assert {"observed_minus_expected", "intercept_slope_1"} <= set(itl)
    assert len(pooled["decision_curve"]["model"]) == len(pooled["decision_curve"]["thresholds"]) == 50
    same = R.evaluate(twin, ds, cohort_fingerprint={"seed": 31, "n_patients": 40}, n_bootstrap=0)
    assert same["scope"].startswith("test patients") and same["patients"] < 40
    R.write_report(rep, tmp_path / "report")
    for name in ("report.json", "index.html", "roc.png", "calibration.png", "lead_time.png", "decision_curve.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    back = json.loads((tmp_path / "report" / "report.json").read_text())
    assert back["twin_version"] == art["version"] and back["previous"]["cohort"]["seed"] == 2024
    text = R.format_table(rep)
    assert "AUROC" in text and "previous" in text and "alert-burden" in text
    assert "AUROC" in R.format_table(same)
