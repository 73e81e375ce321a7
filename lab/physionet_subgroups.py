"""Set-A results by subgroup (sex, age band), so a clinical-safety reviewer sees whom the twin serves worse.
Pure: numbers from ``lab.metrics``; patient-bootstrap 95 % intervals within each subgroup."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd

from lab.metrics import bootstrap

#: Age bands (years, lower bound inclusive).
AGE_BANDS: Final[tuple[tuple[float, float, str], ...]] = (
    (0, 50, "<50"), (50, 65, "50-64"), (65, 80, "65-79"), (80, 200, ">=80"))
SEX: Final[dict[int, str]] = {0: "female", 1: "male"}
#: Fewer stays than this in a group: counts only, no AUROC (an interval from a handful of stays means nothing).
MIN_STAYS: Final[int] = 30


def groups(demographics: pd.DataFrame) -> dict[str, pd.Series]:
    """``{"sex": label per patient_id, "age band": label per patient_id}`` from columns ``age``, ``gender``."""
    d = demographics.set_index("patient_id")
    sex = d["gender"].map(lambda g: SEX.get(int(g), "unknown") if pd.notna(g) else "unknown")

    def band(age: float) -> str:
        if pd.isna(age) or age < 0:
            return "unknown"
        return next((name for lo, hi, name in AGE_BANDS if lo <= age < hi), "unknown")

    return {"sex": sex, "age band": d["age"].map(band)}


def section(same: pd.DataFrame, risk: np.ndarray, news: np.ndarray, per_stay: pd.DataFrame,
            demographics: pd.DataFrame, *, twin_death: str, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Per grouping and level: task (a) twin vs NEWS2 on the same eligible hours, and task (b) the twin's
    ``twin_death`` column, NEWS2 last and SAPS-I on the complete stays (``per_stay`` indexed by patient_id)."""
    out: dict[str, Any] = {}
    pid = same["patient_id"].to_numpy(object)
    y = same["label"].to_numpy(int)
    for grouping, label in groups(demographics).items():
        levels: dict[str, Any] = {}
        hour_level = pd.Series(pid).map(label).fillna("unknown").to_numpy(object)
        stay_level = per_stay.index.to_series().map(label).fillna("unknown").to_numpy(object)
        for level in sorted(set(hour_level) | set(stay_level)):
            m = hour_level == level
            entry: dict[str, Any] = {"stays": int(pd.unique(pid[m]).size), "hours": int(m.sum()),
                                     "positive_hours": int(y[m].sum())}
            if entry["stays"] >= MIN_STAYS and 0 < y[m].sum() < m.sum():
                b = bootstrap(y[m], {"twin": risk[m], "news2": news[m]}, pid[m], n=n_bootstrap, seed=seed)
                entry["events_6h"] = {"twin": b["twin"]["auroc"], "twin_ci": b["twin"]["auroc_ci"],
                                      "news2": b["news2"]["auroc"], "news2_ci": b["news2"]["auroc_ci"],
                                      "margin": b["twin"]["auroc_minus_news2"],
                                      "margin_ci": b["twin"]["auroc_minus_news2_ci"]}
            s = per_stay[stay_level == level]
            if len(s) >= MIN_STAYS and 0 < s["death"].sum() < len(s):
                yd = s["death"].to_numpy(int)
                scores = {"twin": s[twin_death].to_numpy(float), "news2": s["news2_last"].to_numpy(float),
                          "saps1": s["saps1"].to_numpy(float)}
                b = bootstrap(yd, scores, s.index.to_numpy(object), n=n_bootstrap, seed=seed)
                entry["death"] = {"stays": len(s), "deaths": int(yd.sum()),
                                  **{k: b[k]["auroc"] for k in scores}, **{f"{k}_ci": b[k]["auroc_ci"] for k in scores}}
            levels[level] = entry
        out[grouping] = levels
    return out


def lines(sub: dict[str, Any], *, twin_death: str) -> list[str]:
    out = ["Subgroups (AUROC, 95 % CI): 6-hour events twin vs NEWS2 on the same hours; death " + twin_death
           + " vs NEWS2 last vs SAPS-I:"]
    for grouping, levels in sub.items():
        for level, e in levels.items():
            ev, de = e.get("events_6h"), e.get("death")
            a = (f"events {ev['twin']:.3f} vs {ev['news2']:.3f} (margin {ev['margin']:+.3f}, "
                 f"{ev['margin_ci'][0]:+.3f} to {ev['margin_ci'][1]:+.3f})") if ev else "events: too few"
            b = (f"death {de['twin']:.3f} vs {de['news2']:.3f} vs SAPS-I {de['saps1']:.3f} ({de['deaths']}/"
                 f"{de['stays']})") if de else "death: too few"
            out.append(f"    {grouping} {level:<8} {e['stays']:>5} stays: {a}; {b}")
    return out


__all__ = ["AGE_BANDS", "MIN_STAYS", "SEX", "groups", "lines", "section"]
