"""De-identified export: pseudonyms, date shifts, generalised quasi-identifiers, k-anonymity, l-diversity, t-closeness.

Input: ``patients`` (one row each: ``patient_id``, ``age``, ``sex``, ``ward``, ``admitted_at``, ``outcome`` 0/1) and
``windows`` (``patient_id``, ``start``, the window measures, ``label``, ``eligible``). Output: one row per 5-minute
window of every released patient, and a report of what was done.

Direct identifiers
    ``patient_id`` is replaced by a keyed pseudonym, ``HMAC-SHA256(secret, "pseudonym" ‖ 0x00 ‖ patient_id)`` (hex,
    first 20 characters, prefix ``r-``): stable under one secret, unlinkable without it. No other direct identifier
    (name, number, address) is ever stored by the service.
Dates
    Each patient's dates move by a keyed offset of whole days, ``HMAC-SHA256(secret, "date-shift" ‖ 0x00 ‖
    patient_id)`` read as an integer mod ``2·MAX_SHIFT_DAYS + 1`` minus ``MAX_SHIFT_DAYS`` (±365 days). Window times
    are released as ``minutes_since_admission`` (intervals within a patient preserved exactly); the only date in
    the release is the shifted admission date, generalised as below.
Quasi-identifiers and their hierarchies (level 0 = as recorded)
    ``age_group``: years (ages over 89 always "90+", HIPAA Safe Harbor) → 5-year → 10-year → 20-year bands → "*".
    ``sex``: F / M → "*". ``ward``: the ward → "*". ``admission_period`` (of the shifted date): day → ISO week →
    month → quarter → year → "*". Unknown values stay "unknown" (a value of their own).
Privacy models (counted over patients, one row per patient, never over windows)
    k-anonymity: every combination of released quasi-identifiers is shared by at least k patients. Distinct
    l-diversity on the patient's outcome: every such class holds at least l distinct outcomes. t-closeness: in
    every class the outcome's distribution is within t of the released whole's, by the Earth Mover's Distance on the
    ordered outcome (0 < 1, ground distance |i − j| / (m − 1)); for a 0/1 outcome it is |p_class − p_all| (the equal
    and the ordered distances coincide for two values).
Search
    Every node of the generalisation lattice (5 × 2 × 2 × 6 levels) is tried; at each, the classes that break k, l
    or t are suppressed whole (their patients are not released). A node is acceptable when it suppresses at most
    ``max_suppression`` of the patients; the acceptable node with the least generalisation (mean of level / top
    level over the four quasi-identifiers, Sweeney's precision loss), then the fewest suppressed, is chosen. The top
    node (everything "*") is one class and is always acceptable when the cohort itself meets k and l.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

QUASI_IDENTIFIERS: Final[tuple[str, ...]] = ("age_group", "sex", "ward", "admission_period")
SENSITIVE: Final[str] = "outcome"
MAX_SHIFT_DAYS: Final[int] = 365
OLDEST_EXACT_AGE: Final[int] = 89
AGE_BANDS: Final[tuple[int | None, ...]] = (1, 5, 10, 20, None)  # None: "*"
AGE_LEVEL_NAMES: Final[tuple[str, ...]] = ("years", "5-year bands", "10-year bands", "20-year bands", "*")
ADMISSION_LEVELS: Final[tuple[str, ...]] = ("day", "week", "month", "quarter", "year", "*")
LEVELS: Final[dict[str, int]] = {"age_group": len(AGE_BANDS), "sex": 2, "ward": 2,
                                 "admission_period": len(ADMISSION_LEVELS)}
HIERARCHIES: Final[dict[str, str]] = {
    "age_group": "years (over 89: '90+') → 5-year → 10-year → 20-year bands → '*'",
    "sex": "F / M → '*'",
    "ward": "ward → '*'",
    "admission_period": "shifted admission day → ISO week → month → quarter → year → '*'",
}
T_DISTANCE: Final[str] = ("Earth Mover's Distance on the ordered outcome (0 < 1), ground distance |i-j|/(m-1); "
                          "for a 0/1 outcome |p_class - p_all| (equal to the equal-distance EMD)")
SUPPRESSION_MARK: Final[str] = "suppressed"
#: The demo's secret: refused unless asked for by name (``--demo-secret``), and marked in every report.
DEMO_SECRET: Final[bytes] = b"wardtwin-demo-research-secret-not-for-real-data"
MIN_SECRET_BYTES: Final[int] = 32


class SecretMissingError(ValueError):
    """No deployment secret for pseudonyms and date shifts (and no explicit demo opt-in)."""


def check_secret(secret: bytes | None) -> bytes:
    if secret is None:
        raise SecretMissingError("no research secret: set WARDTWIN_RESEARCH_SECRET (at least 32 random bytes), "
                                 "or pass --demo-secret for a demonstration on data that is not real")
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretMissingError(f"the research secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


def _mac(secret: bytes, purpose: str, patient_id: str) -> bytes:
    return hmac.new(secret, purpose.encode() + b"\x00" + str(patient_id).encode(), hashlib.sha256).digest()


def pseudonym(secret: bytes, patient_id: str) -> str:
    return "r-" + _mac(secret, "pseudonym", patient_id).hex()[:20]


def shift_days(secret: bytes, patient_id: str) -> int:
    n = int.from_bytes(_mac(secret, "date-shift", patient_id)[:8], "big")
    return n % (2 * MAX_SHIFT_DAYS + 1) - MAX_SHIFT_DAYS


# -- hierarchies -------------------------------------------------------------------------------------------------
def age_group(age: pd.Series, level: int) -> pd.Series:
    band = AGE_BANDS[level]
    a = pd.to_numeric(age, errors="coerce")
    if band is None:
        out = pd.Series("*", index=age.index, dtype=object)
    else:
        lo = (np.floor(a / band) * band).astype("Int64")
        out = lo.astype(str) if band == 1 else lo.astype(str) + "-" + (lo + band - 1).clip(upper=OLDEST_EXACT_AGE
                                                                                         ).astype(str)
        out = out.astype(object)
        out[a > OLDEST_EXACT_AGE] = "90+"
    out[a.isna()] = "unknown"
    return out


def age_interval(groups: pd.Series, ages: pd.Series) -> pd.DataFrame:
    """Released interval [lo, hi] of each age group ("90+": [90, the oldest age]; "*": the observed range)."""
    a = pd.to_numeric(ages, errors="coerce")
    lo_all, hi_all = float(a.min()), float(a.max())
    lo, hi = [], []
    for g in groups:
        if g == "*":
            lo.append(lo_all)
            hi.append(hi_all)
        elif g == "90+":
            lo.append(90.0)
            hi.append(max(hi_all, 90.0))
        elif g == "unknown":
            lo.append(np.nan)
            hi.append(np.nan)
        elif "-" in g:
            a0, a1 = g.split("-")
            lo.append(float(a0))
            hi.append(float(a1))
        else:
            lo.append(float(g))
            hi.append(float(g))
    return pd.DataFrame({"lo": lo, "hi": hi}, index=groups.index)


def admission_period(shifted: pd.Series, level: int) -> pd.Series:
    name = ADMISSION_LEVELS[level]
    t = pd.to_datetime(shifted, utc=True)
    if name == "day":
        out = t.dt.strftime("%Y-%m-%d")
    elif name == "week":
        iso = t.dt.isocalendar()
        out = iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)
    elif name == "month":
        out = t.dt.strftime("%Y-%m")
    elif name == "quarter":
        out = t.dt.year.astype(str) + "-Q" + t.dt.quarter.astype(str)
    elif name == "year":
        out = t.dt.year.astype(str)
    else:
        out = pd.Series("*", index=shifted.index)
    return out.astype(object)


def generalise(patients: pd.DataFrame, node: tuple[int, int, int, int]) -> pd.DataFrame:
    """The four released quasi-identifiers of ``patients`` (which must carry ``shifted_admission``) at ``node``."""
    a, s, w, d = node
    sex = patients["sex"].where(patients["sex"].notna(), "unknown").astype(object)
    ward = patients["ward"].where(patients["ward"].notna(), "unknown").astype(object)
    return pd.DataFrame({
        "age_group": age_group(patients["age"], a),
        "sex": sex if s == 0 else pd.Series("*", index=patients.index, dtype=object),
        "ward": ward if w == 0 else pd.Series("*", index=patients.index, dtype=object),
        "admission_period": admission_period(patients["shifted_admission"], d),
    }, index=patients.index)


# -- the privacy models ------------------------------------------------------------------------------------------
def classes(qi: pd.DataFrame, outcome: pd.Series) -> pd.DataFrame:
    """Per equivalence class: size, distinct outcomes, share of outcome 1."""
    frame = qi.assign(_y=outcome.to_numpy())
    g = frame.groupby(list(qi.columns), sort=False, dropna=False)["_y"]
    return pd.DataFrame({"size": g.size(), "distinct": g.nunique(), "p": g.mean()})


def _class_key(qi: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(qi)


def measure(qi: pd.DataFrame, outcome: pd.Series) -> dict[str, Any]:
    """Achieved k, l, t of a released patient table (empty: all None)."""
    if qi.empty:
        return {"k": None, "l": None, "t": None, "classes": 0}
    c = classes(qi, outcome)
    p_all = float(outcome.mean())
    return {"k": int(c["size"].min()), "l": int(c["distinct"].min()), "t": float((c["p"] - p_all).abs().max()),
            "classes": len(c)}


def _violating(qi: pd.DataFrame, outcome: pd.Series, k: int, l_: int, t: float | None) -> np.ndarray:
    """Rows of ``qi`` whose class breaks k or l, or t against the distribution of the rows kept; iterated until
    the kept rows' own distribution is met (suppressing changes it)."""
    drop = np.zeros(len(qi), dtype=bool)
    for _ in range(20):
        keep = ~drop
        if not keep.any():
            return drop
        sub, y = qi[keep], outcome[keep]
        c = classes(sub, y)
        bad = (c["size"] < k) | (c["distinct"] < l_)
        if t is not None:
            bad |= (c["p"] - float(y.mean())).abs() > t + 1e-12
        if not bad.any():
            return drop
        bad_keys = set(c.index[bad.to_numpy()])
        row_keys = list(_class_key(sub))
        hit = np.fromiter((key in bad_keys for key in row_keys), dtype=bool, count=len(row_keys))
        drop[np.flatnonzero(keep)[hit]] = True
    return drop


@dataclass(frozen=True)
class Choice:
    node: tuple[int, int, int, int]
    suppressed: np.ndarray  # per patient row
    loss: float


def _loss(node: tuple[int, ...]) -> float:
    return float(np.mean([lvl / (LEVELS[q] - 1) for lvl, q in zip(node, QUASI_IDENTIFIERS, strict=True)]))


def search(patients: pd.DataFrame, *, k: int, l_: int, t: float | None, max_suppression: float,
           progress: Callable[[str], None] | None = None) -> tuple[Choice, list[dict[str, Any]]]:
    """The chosen lattice node (module docstring, "Search") and every node tried."""
    nodes = sorted(itertools.product(*(range(LEVELS[q]) for q in QUASI_IDENTIFIERS)), key=lambda n: (_loss(n), n))
    tried: list[dict[str, Any]] = []
    best: Choice | None = None
    fallback: Choice | None = None
    n = max(len(patients), 1)
    for i, node in enumerate(nodes):
        if best is not None and _loss(node) > best.loss + 1e-12:
            break
        qi = generalise(patients, node)
        drop = _violating(qi, patients[SENSITIVE], k, l_, t)
        share = float(drop.sum()) / n
        tried.append({"node": dict(zip(QUASI_IDENTIFIERS, node, strict=True)), "loss": round(_loss(node), 4),
                      "suppressed": int(drop.sum())})
        choice = Choice(node, drop, _loss(node))
        if fallback is None or drop.sum() < fallback.suppressed.sum():
            fallback = choice
        if share <= max_suppression and (best is None or drop.sum() < best.suppressed.sum()):
            best = choice
        if progress and (i + 1) % 20 == 0:
            progress(f"generalisation lattice: {i + 1}/{len(nodes)} nodes tried")
    chosen = best or fallback
    assert chosen is not None
    return chosen, tried


@dataclass
class Export:
    rows: pd.DataFrame            # one row per released window
    released: pd.DataFrame        # one row per released patient: pseudonym, quasi-identifiers, outcome
    report: dict[str, Any]


WINDOW_OUT: Final[tuple[str, ...]] = ("hr_mean", "hr_std", "hr_count", "spo2_mean", "rr_mean", "sbp", "dbp", "temp",
                                      "acvpu", "o2")


def deidentify(patients: pd.DataFrame, windows: pd.DataFrame, *, secret: bytes, k: int, l_: int,
               t: float | None = None, max_suppression: float = 0.05, outcome_name: str = "outcome",
               progress: Callable[[str], None] | None = None) -> Export:
    """The release (module docstring). ``secret``: the deployment's (``check_secret``)."""
    if k < 1 or l_ < 1:
        raise ValueError("k and l must be at least 1")
    if t is not None and not 0 <= t <= 1:
        raise ValueError("t must be within 0..1")
    if not 0 <= max_suppression <= 1:
        raise ValueError("max_suppression must be within 0..1")
    secret = check_secret(secret)
    p = patients.reset_index(drop=True).copy()
    p["pseudonym"] = [pseudonym(secret, pid) for pid in p["patient_id"]]
    shifts = pd.to_timedelta([shift_days(secret, pid) for pid in p["patient_id"]], unit="D")
    p["shifted_admission"] = pd.to_datetime(p["admitted_at"], utc=True) + shifts
    choice, tried = search(p, k=k, l_=l_, t=t, max_suppression=max_suppression, progress=progress)
    qi = generalise(p, choice.node)
    keep = ~choice.suppressed
    released = pd.concat([p.loc[keep, ["pseudonym"]], qi[keep], p.loc[keep, [SENSITIVE]]], axis=1)
    released = released.reset_index(drop=True)
    achieved = measure(released.loc[:, list(QUASI_IDENTIFIERS)], released[SENSITIVE])

    kept_ids = p.loc[keep, "patient_id"]
    by_id = p.set_index("patient_id")
    w = windows[windows["patient_id"].isin(set(kept_ids))]
    start = pd.to_datetime(w["start"], utc=True)
    admitted = pd.to_datetime(w["patient_id"].map(by_id["admitted_at"].to_dict()), utc=True)
    rows = pd.DataFrame({"pseudonym": w["patient_id"].map(by_id["pseudonym"].to_dict()).to_numpy(dtype=object)})
    rel = released.set_index("pseudonym")
    for q in QUASI_IDENTIFIERS:
        rows[q] = rows["pseudonym"].map(rel[q].to_dict()).to_numpy(dtype=object)
    rows["minutes_since_admission"] = ((start + pd.Timedelta(minutes=5) - admitted)
                                       / pd.Timedelta(minutes=1)).round().astype(int).to_numpy()
    for c in WINDOW_OUT:
        rows[c] = w[c].to_numpy()
    rows["label_6h"] = w["label"].to_numpy().astype(int)
    rows["eligible"] = w["eligible"].to_numpy().astype(bool)
    rows[outcome_name] = rows["pseudonym"].map(rel[SENSITIVE].to_dict()).to_numpy().astype(int)
    rows = rows.sort_values(["pseudonym", "minutes_since_admission"], kind="mergesort").reset_index(drop=True)

    # information loss
    ages = p["age"]
    known = keep & ages.notna().to_numpy()
    interval = age_interval(qi["age_group"], ages)
    width = (interval["hi"] - interval["lo"] + 1)[known]
    original = pd.DataFrame({"age_group": age_group(ages, 0),
                             "sex": p["sex"].where(p["sex"].notna(), "unknown").astype(object),
                             "ward": p["ward"].where(p["ward"].notna(), "unknown").astype(object),
                             "admission_period": admission_period(p["shifted_admission"], 0)})
    changed = {q: float((qi.loc[keep, q] != original.loc[keep, q]).mean()) if keep.any() else None
               for q in QUASI_IDENTIFIERS}
    mid = (interval["lo"] + interval["hi"]) / 2
    report = {
        "quasi_identifiers": list(QUASI_IDENTIFIERS), "sensitive_column": outcome_name,
        "hierarchies": dict(HIERARCHIES),
        "requested": {"k": k, "l": l_, "t": t, "max_suppression": max_suppression},
        "achieved": {**achieved, "l_kind": "distinct l-diversity on the outcome", "t_distance": T_DISTANCE,
                     "counted_over": "patients (one row per pseudonym), not windows"},
        "generalisation": dict(zip(QUASI_IDENTIFIERS, choice.node, strict=True)),
        "generalisation_names": {"age_group": AGE_LEVEL_NAMES[choice.node[0]], "sex": ("F/M", "*")[choice.node[1]],
                                 "ward": ("ward", "*")[choice.node[2]],
                                 "admission_period": ADMISSION_LEVELS[choice.node[3]]},
        "search": {"rule": "least mean normalised generalisation height whose suppression is within "
                           "max_suppression, then fewest suppressed (app.research.deidentify)",
                   "nodes_tried": len(tried), "met_within_max_suppression": bool(
                       choice.suppressed.sum() <= max_suppression * max(len(p), 1))},
        "patients": {"input": len(p), "released": int(keep.sum()), "suppressed": int(choice.suppressed.sum()),
                     "suppressed_fraction": float(choice.suppressed.mean()) if len(p) else 0.0},
        "windows": {"input": len(windows), "released": len(rows),
                    "suppressed": int(len(windows) - len(rows))},
        "information_loss": {
            "mean_age_interval_width_years": float(width.mean()) if len(width) else None,
            "mean_abs_age_error_years": float((mid[known] - pd.to_numeric(ages[known])).abs().mean())
            if known.any() else None,
            "fraction_generalised": changed,
            "fraction_of_qi_values_generalised": float(np.mean([v for v in changed.values() if v is not None]))
            if keep.any() else None,
            "precision_loss": round(choice.loss, 4),
            "ages_over_89_grouped": int((pd.to_numeric(ages) > OLDEST_EXACT_AGE).sum()),
        },
        "pseudonyms": "HMAC-SHA256(secret, 'pseudonym' 0x00 patient_id), hex[:20], prefix 'r-'",
        "date_shift": f"whole days, keyed per patient (HMAC-SHA256), uniform in ±{MAX_SHIFT_DAYS}; window times "
                      "released as minutes since admission",
        "demo_secret": secret == DEMO_SECRET,
    }
    return Export(rows=rows, released=released, report=report)


__all__ = ["ADMISSION_LEVELS", "AGE_BANDS", "DEMO_SECRET", "HIERARCHIES", "MAX_SHIFT_DAYS", "QUASI_IDENTIFIERS",
           "SENSITIVE", "T_DISTANCE", "Export", "SecretMissingError", "admission_period", "age_group", "check_secret",
           "classes", "deidentify", "generalise", "measure", "pseudonym", "search", "shift_days"]
