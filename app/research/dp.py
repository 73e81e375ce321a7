"""Differentially private ward statistics at patient-level privacy, with noise from OpenDP's Laplace mechanism.

Neighbouring data sets differ by one *patient* (all their windows), so each statistic bounds what one patient can
change (stated per statistic; every bound is the L1 sensitivity handed to OpenDP, which computes the ε it spends and
is checked against the ε asked for):

``admissions``
    Patients per ward. A patient is in one ward and counted once: sensitivity 1. Discrete Laplace, scale 1/ε.
``deterioration_rate``
    Per ward, the patients and the patients with the outcome (deteriorated / died), both noised (one vector):
    one patient moves one ward's two counts by at most 1 each, sensitivity 2; discrete Laplace, scale 2/ε. The rate
    is the noisy outcome count over the noisy patient count, clamped to 0..1 (post-processing spends nothing).
``vitals_by_hour``
    Mean of one vital by hour of day (UTC, 0..23). Each window's value is clipped to ``VITAL_BOUNDS``; a patient
    contributes at most one value per hour of day (their mean over that hour's windows, across days) and to at most
    ``max_hours`` hours (the first ones, in hour order); so per hour the patient count moves by ≤ 1 and the sum of
    centred values (value − midpoint) by ≤ half the range. Half the ε goes to the 24 counts (sensitivity
    ``max_hours``), half to the 24 sums (sensitivity ``max_hours`` × half-range); the mean is midpoint + noisy sum /
    noisy count (hours with a noisy count below 1 are reported as None).

Pure ε-differential privacy: every release spends δ = 0 (the ledger records it). The noise is drawn by OpenDP from
the operating system's randomness and cannot be seeded (a seeded mechanism could be replayed); OpenDP's Laplace
samplers are exact and its ``map`` accounts for floating point. OpenDP marks these constructors "contrib"
(implemented, not yet formally vetted by its committee), which is enabled here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

STATISTICS: Final[tuple[str, ...]] = ("admissions", "deterioration_rate", "vitals_by_hour")
#: Clipping bounds per vital (window value outside → the bound), chosen wide enough that a ward's values are rarely
#: clipped and narrow enough to keep the noise small.
VITAL_BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "hr_mean": (40.0, 180.0), "rr_mean": (5.0, 40.0), "spo2_mean": (80.0, 100.0), "sbp": (70.0, 200.0),
    "temp": (35.0, 40.0),
}
HOURS: Final[int] = 24
_TOLERANCE: Final[float] = 1e-9


class InvalidQueryError(ValueError):
    """A query the mechanism cannot answer (unknown statistic or vital, ε out of range); names the field."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field


@dataclass(frozen=True)
class Query:
    statistic: str
    epsilon: float
    vital: str = "hr_mean"
    max_hours: int = HOURS

    def check(self) -> Query:
        if self.statistic not in STATISTICS:
            raise InvalidQueryError("statistic", f"unknown statistic {self.statistic!r}; known: {list(STATISTICS)}")
        if not (MIN_EPSILON <= self.epsilon <= 10) or not np.isfinite(self.epsilon):
            raise InvalidQueryError("epsilon", f"epsilon must be at least {MIN_EPSILON} and at most 10")
        if self.statistic == "vitals_by_hour" and self.vital not in VITAL_BOUNDS:
            raise InvalidQueryError("vital", f"unknown vital {self.vital!r}; known: {list(VITAL_BOUNDS)}")
        if not 1 <= self.max_hours <= HOURS:
            raise InvalidQueryError("max_hours", "max_hours must be within 1..24")
        return self


#: The smallest ε a query may spend: below it the noise (sensitivity / ε) is a thousand times the sensitivity or more,
#: the answer carries no information, and a vanishing ε (5e-324) would make the scale infinite.
MIN_EPSILON = 0.001


def _opendp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def _laplace(values: np.ndarray, sensitivity: float, epsilon: float, *, integer: bool) -> np.ndarray:
    dp = _opendp()
    if integer:
        domain, metric = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)
        d_in: float | int = int(sensitivity)
        data: list[Any] = [int(v) for v in values]
    else:
        domain, metric = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
        d_in = float(sensitivity)
        data = [float(v) for v in values]
    meas = dp.m.make_laplace(domain, metric, scale=float(sensitivity) / epsilon)
    spent = float(meas.map(d_in))
    if spent > epsilon * (1 + 1e-6) + _TOLERANCE:
        raise RuntimeError(f"OpenDP accounts {spent} for a release planned at epsilon {epsilon}")
    return np.asarray(meas(data), dtype=float)


# -- the true, per-patient-bounded aggregates (what the noise is added to) ----------------------------------------
def contributions(patients: pd.DataFrame, windows: pd.DataFrame, query: Query) -> dict[str, Any]:
    """The exact aggregate the mechanism noises, after the per-patient bounds (module docstring)."""
    if query.statistic in ("admissions", "deterioration_rate"):
        wards = sorted(patients["ward"].fillna("unknown").astype(str).unique())
        ward = patients["ward"].fillna("unknown").astype(str)
        n = ward.value_counts().reindex(wards, fill_value=0).to_numpy()
        d = patients["outcome"].astype(int).groupby(ward).sum().reindex(wards, fill_value=0).to_numpy()
        return {"keys": wards, "patients": n, "outcome": d}
    lo, hi = VITAL_BOUNDS[query.vital]
    w = windows.loc[:, ["patient_id", "start", query.vital]].dropna()
    hour = pd.to_datetime(w["start"], utc=True).dt.hour
    per = (w.assign(hour=hour.to_numpy(), v=w[query.vital].clip(lo, hi))
           .groupby(["patient_id", "hour"], sort=True)["v"].mean().reset_index())
    per = per[per.groupby("patient_id").cumcount() < query.max_hours]  # at most max_hours hours per patient
    mid = (lo + hi) / 2
    sums = (per["v"] - mid).groupby(per["hour"]).sum().reindex(range(HOURS), fill_value=0.0).to_numpy()
    counts = per.groupby("hour").size().reindex(range(HOURS), fill_value=0).to_numpy()
    return {"keys": list(range(HOURS)), "sums": sums, "counts": counts, "mid": mid, "half_range": (hi - lo) / 2}


def true_values(c: dict[str, Any], query: Query) -> list[float | None]:
    if query.statistic == "admissions":
        return [float(x) for x in c["patients"]]
    if query.statistic == "deterioration_rate":
        return [float(d / n) if n else None for d, n in zip(c["outcome"], c["patients"], strict=True)]
    return [float(c["mid"] + s / n) if n else None for s, n in zip(c["sums"], c["counts"], strict=True)]


def noisy_values(c: dict[str, Any], query: Query) -> list[float | None]:
    """One release of the statistic at ``query.epsilon`` (draws fresh noise every call)."""
    eps = query.epsilon
    if query.statistic == "admissions":
        return [max(0.0, float(x)) for x in _laplace(c["patients"], 1, eps, integer=True)]
    if query.statistic == "deterioration_rate":
        k = len(c["keys"])
        noisy = _laplace(np.concatenate([c["patients"], c["outcome"]]), 2, eps, integer=True)
        n, d = noisy[:k], noisy[k:]
        return [float(min(max(di / ni, 0.0), 1.0)) if ni >= 1 else None for di, ni in zip(d, n, strict=True)]
    m = query.max_hours
    counts = _laplace(c["counts"], m, eps / 2, integer=True)
    sums = _laplace(c["sums"], m * c["half_range"], eps / 2, integer=False)
    lo, hi = c["mid"] - c["half_range"], c["mid"] + c["half_range"]
    return [float(min(max(c["mid"] + s / n, lo), hi)) if n >= 1 else None for s, n in zip(sums, counts, strict=True)]


def describe(query: Query) -> dict[str, Any]:
    """The mechanism of a query, for the answer and the report."""
    base = {"library": "OpenDP (MIT), make_laplace", "privacy_unit": "one patient (all their windows)",
            "epsilon": query.epsilon, "delta": 0.0}
    if query.statistic == "admissions":
        return {**base, "sensitivity_l1": 1, "noise": "discrete Laplace, scale 1/epsilon"}
    if query.statistic == "deterioration_rate":
        return {**base, "sensitivity_l1": 2, "noise": "discrete Laplace on (patients, outcome) per ward, scale "
                                                     "2/epsilon"}
    lo, hi = VITAL_BOUNDS[query.vital]
    return {**base, "vital": query.vital, "clip": [lo, hi], "max_hours_per_patient": query.max_hours,
            "sensitivity_l1": {"counts": query.max_hours, "centred_sums": query.max_hours * (hi - lo) / 2},
            "noise": "epsilon/2 discrete Laplace on the 24 counts, epsilon/2 Laplace on the 24 centred sums"}


def release(patients: pd.DataFrame, windows: pd.DataFrame, query: Query) -> dict[str, Any]:
    """The noisy statistic (never the true one) and its mechanism."""
    query.check()
    c = contributions(patients, windows, query)
    return {"statistic": query.statistic, "keys": c["keys"], "values": noisy_values(c, query),
            "mechanism": describe(query)}


__all__ = ["HOURS", "STATISTICS", "VITAL_BOUNDS", "InvalidQueryError", "Query", "contributions", "describe",
           "noisy_values", "release", "true_values"]
