"""Subgroups of the set-A report: who falls in which group, and per-group AUROCs computed on that group only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lab import physionet_subgroups as S


def _demographics() -> pd.DataFrame:
    return pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "age": [30.0, 64.9, 80.0, -1.0],
                         "gender": [0, 1, 1, None]})


def test_groups_follow_the_stated_bands_and_codes() -> None:
    g = S.groups(_demographics())
    assert g["sex"].to_dict() == {"a": "female", "b": "male", "c": "male", "d": "unknown"}
    assert g["age band"].to_dict() == {"a": "<50", "b": "50-64", "c": ">=80", "d": "unknown"}


def test_section_measures_each_group_on_its_own_patients(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(S, "MIN_STAYS", 1)
    rng = np.random.default_rng(0)
    pids = np.repeat(["a", "b", "c", "d"], 50)
    y = rng.integers(0, 2, len(pids))
    # the twin ranks perfectly in women, at random in men; NEWS2 is random everywhere
    risk = np.where(pids == "a", y + rng.uniform(0, 0.5, len(y)), rng.uniform(0, 1, len(y)))
    news = rng.integers(0, 10, len(y)).astype(float)
    same = pd.DataFrame({"patient_id": pids, "label": y})
    per_stay = pd.DataFrame({"death": [1, 0, 1, 0], "twin_last": [0.9, 0.1, 0.8, 0.2], "news2_last": [5, 1, 2, 3],
                             "saps1": [20, 10, 15, 12]}, index=pd.Index(["a", "b", "c", "d"], name="patient_id"))
    out = S.section(same, risk, news, per_stay, _demographics(), twin_death="twin_last", n_bootstrap=20, seed=1)
    female = out["sex"]["female"]
    assert female["stays"] == 1 and female["hours"] == 50
    assert female["events_6h"]["twin"] == 1.0
    assert out["sex"]["male"]["events_6h"]["twin"] < 0.8
    assert out["sex"]["male"]["death"]["twin"] == 1.0  # c died (0.8) and b survived (0.1)
    assert "death" not in female  # one stay: no AUROC
    assert any("female" in line for line in S.lines(out, twin_death="twin_last"))


def test_groups_of_few_stays_get_counts_but_no_auroc() -> None:
    same = pd.DataFrame({"patient_id": np.repeat(["a", "b"], 10), "label": [0, 1] * 10})
    per_stay = pd.DataFrame({"death": [1, 0], "twin_last": [0.9, 0.1], "news2_last": [5, 1], "saps1": [20, 10]},
                            index=pd.Index(["a", "b"], name="patient_id"))
    out = S.section(same, np.linspace(0, 1, 20), np.zeros(20), per_stay, _demographics(), twin_death="twin_last",
                    n_bootstrap=5, seed=1)
    assert out["sex"]["female"] == {"stays": 1, "hours": 10, "positive_hours": 5}
