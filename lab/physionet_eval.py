"""The shipped twin and NEWS2 on PhysioNet 2012 set A (real ICU stays, charted vitals). Pure: no app imports.

Input: the readings the API's validation accepted (``READING_COLUMNS``; the caller validates with
``app.ingest.validate_batch``), every stay admitted at ``lab.physionet2012.ADMISSION_AT``.

Scoring (:func:`score_stays`), per stay at every hour ``h`` = 1..48 (window end ``ADMISSION_AT + h``), through the
serving code: ``models.windows.aggregate`` → ``carry_forward`` (the grid from ``HISTORY``, 12 h, before
admission to 48 h, as the service's cycle builds it for a newly admitted patient) → ``models.features.build`` →
``models.twin.Twin.score`` (the shipped artifact, nothing fitted here).

- ``risk`` is empty where the service would not score: the service's one freshness rule (``models.scoring``:
  ``seen`` and ``is_fresh`` with ``STALE_AFTER``, the default ``Settings.stale_after_min``, 60 min) skips a patient
  whose newest window with a heart rate, SpO2 or respiratory rate is older than that at the window end; a stay
  without any accepted reading is empty at every hour.
- ``news2_total``: NEWS2 charted hourly at best, ``models.news2.from_windows`` (the vectorised ``from_window``) on
  the hour's window: the carried-forward window ending at ``h`` (SBP and temperature carried ≤ 1 h, ACVPU and
  oxygen ≤ 12 h, as ``models.windows``) with heart rate, SpO2 and respiratory rate taken from the newest window
  that has them within the hour before ``h`` (a nurse charts the latest set of observations). A parameter not
  observed scores 0 (the set is *partial*, as ``models.news2`` does); empty when none of the seven is observed.

Events (:func:`charted_events`): ``models.labels`` thresholds (``CRITERIA``: HR > 130 or < 40, SBP < 90, SpO2 < 88,
temperature > 40) and merge rule (runs less than ``MERGE_GAP``, 1 h, apart are one event), with the *sustained*
rule adapted to charted cadence: a run is sustained when **two consecutive charted values** of the vital are
abnormal (no normal value between them, at most ``MAX_CHART_GAP``, 4 h, apart) instead of 15 minutes of
5-minute windows, which hourly charting cannot show. Onset = start of the 5-minute window of the first abnormal
value; end = end of the window of the last one. Labels and eligibility then come from ``models.labels.label``
(6 h horizon, 1 h refractory after an event, ≥ 1 h of history, censored negatives excluded) on the stay's grid.
SpO2 here is SaO2 (blood gas), charted a few times a day, so few desaturation events can be seen.

Sensitivity (:func:`first_event_sensitivity`): each stay's first event is detected when some eligible scored hour
``t`` with ``onset − 6 h ≤ t ≤ onset − LEAD`` (30 min) is at or above the threshold (the rule of
``lab.metrics.operating_point`` with at least 30 min lead); events without such an hour are not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from lab import physionet_subgroups as S
from lab.html_page import page, rule_items
from lab.metrics import auroc, bootstrap, calibration_in_the_large, decision_curve, reliability
from lab.physionet2012 import ADMISSION_AT, PATIENT_PREFIX, STAY_HOURS, Outcome
from models import features as F
from models import labels as L
from models import news2 as N
from models import scoring
from models import windows as W
from models.twin import Twin

HOURS: Final[tuple[int, ...]] = tuple(range(1, STAY_HOURS + 1))
STALE_AFTER: Final[pd.Timedelta] = pd.Timedelta(scoring.STALE_AFTER)
LEAD: Final[pd.Timedelta] = pd.Timedelta(minutes=30)
MAX_CHART_GAP: Final[pd.Timedelta] = pd.Timedelta(hours=4)
NEWS2_THRESHOLD: Final[int] = 5
SCORE_COLUMNS: Final[tuple[str, ...]] = ("record_id", "hour", "risk", "news2_total")
W_PER_HOUR: Final[int] = F.PER_HOUR
_MEAN_COLUMNS: Final[tuple[str, ...]] = ("hr_mean", "spo2_mean", "rr_mean")
_NEWS2_INPUTS: Final[tuple[str, ...]] = ("rr_mean", "spo2_mean", "sbp", "hr_mean", "temp", "o2", "acvpu")
_VITAL_OF: Final[dict[str, str]] = {"hr_mean": "hr", "sbp": "sbp", "spo2_mean": "spo2", "temp": "temp"}
#: Issue 20's target for 6-hour events: the margin over NEWS2 at least 0.08 with its interval's lower end above 0.
GOALS: Final[dict[str, float]] = {"events_auroc_margin_over_news2": 0.08, "death_auroc": 0.75,
                                  "saps1_published_auroc": 0.650, "sofa_published_auroc": 0.623}


def record_id(patient_id: str) -> int:
    return int(patient_id.removeprefix(PATIENT_PREFIX))


def hour_ends() -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp(ADMISSION_AT) + pd.Timedelta(hours=h) for h in HOURS]).as_unit("ns")


def charted_events(readings: pd.DataFrame) -> pd.DataFrame:
    """Deterioration events from charted values (the module docstring's rule): ``models.labels.EVENT_COLUMNS``."""
    clean = W.clean_readings(readings)
    runs: list[pd.DataFrame] = []
    for kind, (column, op, threshold, _) in L.CRITERIA.items():
        x = clean[clean["vital"] == _VITAL_OF[column]].sort_values(["patient_id", "ts"], kind="mergesort")
        if x.empty:
            continue
        v = x["value"].to_numpy(float)
        bad = v > threshold if op == ">" else v < threshold
        pid = x["patient_id"].to_numpy(object)
        ts = x["ts"].to_numpy("datetime64[ns]")
        same = np.r_[False, pid[1:] == pid[:-1]]
        close = np.r_[False, (ts[1:] - ts[:-1]) <= np.timedelta64(MAX_CHART_GAP.value, "ns")]
        continues = bad & np.r_[False, bad[:-1]] & same & close
        run_id = np.cumsum(bad & ~continues)
        table = pd.DataFrame({"run": run_id[bad], "patient_id": pid[bad], "ts": ts[bad]})
        g = table.groupby("run", sort=True)
        agg = pd.DataFrame({"patient_id": g["patient_id"].first(), "first": g["ts"].min(), "last": g["ts"].max(),
                            "n": g.size()})
        agg = agg[agg["n"] >= 2]
        if agg.empty:
            continue
        onset = pd.to_datetime(agg["first"], utc=True).dt.floor(W.WINDOW)
        end = pd.to_datetime(agg["last"], utc=True).dt.floor(W.WINDOW) + W.WINDOW
        runs.append(pd.DataFrame({"patient_id": agg["patient_id"].to_numpy(object), "kind": kind,
                                  "onset": onset.to_numpy(), "end": end.to_numpy()}))
    if not runs:
        return _events_frame([])
    order = {k: i for i, k in enumerate(L.CRITERIA)}
    allruns = pd.concat(runs, ignore_index=True)
    allruns["_k"] = allruns["kind"].map(order)
    allruns = allruns.sort_values(["patient_id", "onset", "_k"], kind="mergesort")
    merged: list[tuple[str, str, pd.Timestamp, pd.Timestamp]] = []
    for row in allruns.itertuples(index=False):  # the merge rule of models.labels.events
        if merged and merged[-1][0] == row.patient_id and row.onset - merged[-1][3] < L.MERGE_GAP:
            p, k, o, e = merged[-1]
            merged[-1] = (p, k, o, max(e, row.end))
        else:
            merged.append((row.patient_id, row.kind, row.onset, row.end))
    return _events_frame(merged)


def _events_frame(rows: list[tuple[str, str, pd.Timestamp, pd.Timestamp]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(L.EVENT_COLUMNS)).astype({"patient_id": object, "kind": object})
    for c in ("onset", "end"):
        frame[c] = pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]")
    return frame


def stay_hours(readings: pd.DataFrame, patient_ids: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Accepted readings of some stays → (hours, feature rows, charted events), everything but the twin.

    ``hours``: one row per stay and hour (``patient_id, hour, window_end``) with ``news2_total, news2_partial, label,
    eligible, onset``. ``feature rows``: ``patient_id, window_end``, ``FEATURE_NAMES`` and ``fresh`` (the service's
    staleness rule) at every hour end the grid reaches; a stay without readings has none. :func:`score_stays` scores
    them with the shipped twin; :mod:`lab.physionet_cv` fits the twin's model on them.
    """
    ends = hour_ends()
    skeleton = pd.DataFrame({"patient_id": np.repeat(np.asarray(patient_ids, dtype=object), len(HOURS)),
                             "hour": np.tile(np.asarray(HOURS, dtype="int64"), len(patient_ids)),
                             "window_end": np.tile(ends, len(patient_ids))})
    skeleton["window_end"] = pd.to_datetime(skeleton["window_end"], utc=True).astype("datetime64[ns, UTC]")
    events = charted_events(readings)
    # The grid starts HISTORY before admission, as the service's does for a newly admitted patient (its cycle
    # carries windows forward over [window_end - HISTORY, window_end)), so the features are the service's.
    grid = W.carry_forward(W.aggregate(readings), ADMISSION_AT - F.HISTORY, ends[-1].to_pydatetime())
    if grid.empty:
        hours = skeleton.assign(news2_total=np.nan, news2_partial=False, label=0, eligible=False, onset=pd.NaT)
        empty = pd.DataFrame({"patient_id": pd.Series([], dtype=object),
                              "window_end": pd.Series([], dtype="datetime64[ns, UTC]"),
                              **{n: pd.Series([], dtype=float) for n in F.FEATURE_NAMES},
                              "fresh": pd.Series([], dtype=bool)})
        return hours, empty, events
    grid = grid.sort_values(["patient_id", "start"], kind="mergesort").reset_index(drop=True)
    grid_end = grid["start"] + W.WINDOW
    at_hour = grid_end.isin(ends).to_numpy()

    # The serving path's features, then the service's staleness rule.
    feats = F.build(grid)
    hourly_feats = feats[feats["window_end"].isin(ends)].reset_index(drop=True)
    has_data = scoring.seen(grid["hr_count"], grid["spo2_mean"], grid["rr_mean"])
    last_seen = grid["start"].where(has_data).groupby(grid["patient_id"], sort=False).ffill()
    fresh = scoring.is_fresh(last_seen, grid_end, STALE_AFTER).to_numpy()
    fresh_at = pd.DataFrame({"patient_id": grid["patient_id"], "window_end": grid_end, "fresh": fresh})[at_hour]
    hourly_feats = hourly_feats.merge(fresh_at, on=["patient_id", "window_end"], how="left")
    hourly_feats["fresh"] = hourly_feats["fresh"].fillna(False).astype(bool)

    # NEWS2 charted hourly at best: the hour's window, means from the newest window within the hour.
    hour_rows = grid.copy()
    for c in _MEAN_COLUMNS:
        hour_rows[c] = hour_rows.groupby("patient_id", sort=False)[c].ffill(limit=W_PER_HOUR - 1)
    hour_rows = hour_rows[at_hour].reset_index(drop=True)
    n2 = N.from_windows(hour_rows)
    observed = hour_rows[list(_NEWS2_INPUTS)].notna().any(axis=1).to_numpy()
    news_rows = pd.DataFrame({"patient_id": n2["patient_id"], "window_end": n2["window_end"],
                              "news2_total": np.where(observed, n2["news2"].to_numpy(float), np.nan),
                              "news2_partial": n2["partial"].to_numpy(bool)})
    news_rows["window_end"] = pd.to_datetime(news_rows["window_end"], utc=True).astype("datetime64[ns, UTC]")

    lab = L.label(grid[grid["start"] >= pd.Timestamp(ADMISSION_AT)], events)
    lab = lab[lab["window_end"].isin(ends)][["patient_id", "window_end", "label", "eligible", "onset"]]

    hours = skeleton.merge(news_rows, on=["patient_id", "window_end"], how="left")
    hours = hours.merge(lab, on=["patient_id", "window_end"], how="left")
    hours["label"] = hours["label"].fillna(0).astype("int64")
    hours["eligible"] = hours["eligible"].fillna(False).astype(bool)
    hours["news2_partial"] = hours["news2_partial"].fillna(False).astype(bool)
    return hours, hourly_feats, events


def score_stays(readings: pd.DataFrame, patient_ids: Sequence[str], twin: Twin) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accepted readings of some stays → (one row per stay and hour, the stays' charted events).

    Rows: ``record_id, hour, risk, news2_total`` (NaN where empty), then ``patient_id, window_end, news2_partial,
    label, eligible, onset`` for the report. ``patient_ids`` lists every stay, with or without readings.
    """
    hours, hourly_feats, events = stay_hours(readings, patient_ids)
    return score_hours(hours, hourly_feats, twin), events


def score_hours(hours: pd.DataFrame, hourly_feats: pd.DataFrame, twin: Twin) -> pd.DataFrame:
    """:func:`stay_hours` output scored with ``twin`` (risk empty where the service would not score): the rows of
    :func:`score_stays`."""
    risks = [s.risk for s in twin.score(hourly_feats, explain=False)]
    twin_rows = hourly_feats[["patient_id", "window_end"]].assign(risk=np.asarray(risks, dtype=float))
    twin_rows.loc[~hourly_feats["fresh"].to_numpy(bool), "risk"] = np.nan
    out = hours.merge(twin_rows, on=["patient_id", "window_end"], how="left")
    if len(hourly_feats):
        missing = hourly_feats.set_index(["patient_id", "window_end"])[list(F.FEATURE_NAMES)].isna()
        out.attrs["feature_missing"] = missing.sum().to_dict()
        out.attrs["feature_rows"] = len(missing)
    return _finish(out)


def _finish(out: pd.DataFrame) -> pd.DataFrame:
    out = out.copy()
    out.insert(0, "record_id", [record_id(p) for p in out["patient_id"]])
    front = [*SCORE_COLUMNS, "patient_id", "window_end", "news2_partial", "label", "eligible", "onset"]
    attrs = dict(out.attrs)
    out = out[front].sort_values(["record_id", "hour"], kind="mergesort").reset_index(drop=True)
    out.attrs.update(attrs)
    return out


def write_scores_csv(scores: pd.DataFrame, path: str | Path) -> None:
    """``record_id,hour,risk,news2_total``; risk to 6 significant digits, NEWS2 as an integer; empty = not
    computable."""
    frame = scores.loc[:, list(SCORE_COLUMNS)].copy()
    frame["risk"] = frame["risk"].map(lambda r: "" if pd.isna(r) else f"{r:.6g}")
    frame["news2_total"] = frame["news2_total"].map(lambda v: "" if pd.isna(v) else str(int(v)))
    frame.to_csv(path, index=False, lineterminator="\n")


# --------------------------------------------------------------------------------------------
# The report


def first_event_sensitivity(frame: pd.DataFrame, events: pd.DataFrame, score: np.ndarray, threshold: float, *,
                            n_bootstrap: int, seed: int) -> dict[str, Any]:
    """First event per stay, detected with ≥ ``LEAD`` lead (module docstring); patient-bootstrap 95 % interval.

    ``frame``: the eligible hours both scores can be computed on (patient_id, window_end); ``score`` aligned to it.
    """
    first = events.sort_values(["patient_id", "onset"], kind="mergesort").groupby("patient_id", sort=False).head(1)
    hits = pd.DataFrame({"patient_id": frame["patient_id"].to_numpy(object),
                         "t": pd.DatetimeIndex(frame["window_end"]).as_unit("ns").asi8,
                         "above": np.asarray(score) >= threshold})
    merged = first[["patient_id", "onset"]].merge(hits, on="patient_id", how="inner")
    onset = pd.DatetimeIndex(merged["onset"]).as_unit("ns").asi8
    inside = (merged["t"] >= onset - L.HORIZON.value) & (merged["t"] <= onset - LEAD.value)
    merged = merged[inside.to_numpy()]
    lead_h = (onset[inside.to_numpy()] - merged["t"].to_numpy()) / pd.Timedelta(hours=1).value
    merged = merged.assign(lead_h=np.where(merged["above"].to_numpy(bool), lead_h, np.nan))
    per_event = merged.groupby("patient_id", sort=True).agg(detected=("above", "any"), lead_h=("lead_h", "max"))
    detected = per_event["detected"].to_numpy(bool)
    n = len(detected)
    rng = np.random.default_rng(seed)
    draws = [float(detected[rng.integers(0, n, n)].mean()) for _ in range(n_bootstrap)] if n else []
    ci = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else [None, None]
    leads = per_event["lead_h"].dropna().to_numpy(float)
    return {"threshold": float(threshold), "first_events": n, "detected": int(detected.sum()),
            "sensitivity": float(detected.mean()) if n else None, "sensitivity_ci": ci,
            "median_lead_h": float(np.median(leads)) if len(leads) else None}


def _curve(y: np.ndarray, s: np.ndarray) -> dict[str, list[float]]:
    if len(np.unique(y)) < 2:
        return {"fpr": [], "tpr": []}
    fpr, tpr, _ = roc_curve(y, s)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 400)).astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}


def _f(x: Any, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def _ci(m: dict[str, Any], key: str = "auroc") -> str:
    lo, hi = m[f"{key}_ci"]
    return f"{_f(m[key])} ({_f(lo)}–{_f(hi)})"


def twin_threshold(twin: Twin) -> tuple[float, str]:
    """The artifact's alert threshold, as the service alerts on it (``Twin.alert_threshold``: the operating point
    set by an alert budget); for an older artifact, the operating point matched to NEWS2 >= 5."""
    alert = (twin.artifact.get("operating_points") or {}).get("alert") or {}
    if alert.get("threshold") is not None:
        budget = alert.get("budget_alerts_per_100_patient_days")
        return twin.alert_threshold, "artifact operating_points.alert" + (
            f" (budget {budget:g} alerts per 100 patient-days)" if isinstance(budget, int | float) else "")
    point = (twin.artifact.get("operating_points") or {}).get("match_news2_5") or {}
    if "threshold" in point:
        return float(point["threshold"]), "artifact operating_points.match_news2_5 (" + str(point.get("rule", "")) + ")"
    return 0.7, "no threshold in the artifact: the service default alert_threshold 0.7"


DEATH_PREDICTORS: Final[tuple[str, ...]] = ("twin_peak", "twin_last", "news2_peak", "news2_last", "saps1", "sofa")


def per_stay_predictors(scores: pd.DataFrame, outcomes: dict[int, Outcome]) -> pd.DataFrame:
    """One row per stay (index ``patient_id``): peak and last computed risk and NEWS2 over hours 1..48, SAPS-I, SOFA
    and in-hospital death from the outcomes (NaN where unknown)."""
    per_stay = scores.groupby("patient_id", sort=True).agg(
        twin_peak=("risk", "max"), twin_last=("risk", lambda s: s.dropna().iloc[-1] if s.notna().any() else np.nan),
        news2_peak=("news2_total", "max"),
        news2_last=("news2_total", lambda s: s.dropna().iloc[-1] if s.notna().any() else np.nan))
    per_stay["record_id"] = [record_id(p) for p in per_stay.index]
    o = [outcomes.get(r) for r in per_stay["record_id"]]
    per_stay["saps1"] = [np.nan if x is None or x.saps1 is None else x.saps1 for x in o]
    per_stay["sofa"] = [np.nan if x is None or x.sofa is None else x.sofa for x in o]
    per_stay["death"] = [np.nan if x is None or x.in_hospital_death is None else x.in_hospital_death for x in o]
    return per_stay


def death_section(per_stay: pd.DataFrame, *, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Task (b) on the stays where all of ``DEATH_PREDICTORS`` are known (paired bootstrap against NEWS2 peak); the
    complete stays are returned under ``_complete`` for the caller to pop."""
    complete = per_stay.dropna(subset=["death", *DEATH_PREDICTORS])
    yd = complete["death"].to_numpy(int)
    death_scores = {k: complete[k].to_numpy(float) for k in DEATH_PREDICTORS}
    death_scores["news2"] = death_scores.pop("news2_peak")  # the reference for paired differences
    d_disc = bootstrap(yd, death_scores, complete.index.to_numpy(object), n=n_bootstrap, seed=seed)
    d_disc["news2_peak"] = d_disc.pop("news2")
    own = {}
    for k in DEATH_PREDICTORS:
        sub = per_stay.dropna(subset=["death", k])
        own[k] = {"stays": len(sub), "deaths": int(sub["death"].sum()),
                  "auroc": auroc(sub["death"].to_numpy(int), sub[k].to_numpy(float))}
    best_twin = max((d_disc[k]["auroc"] or 0.0) for k in ("twin_peak", "twin_last"))
    death_goal = {"target": f"twin AUROC >= {GOALS['death_auroc']}", "best_twin_auroc": best_twin,
                  "met": bool(best_twin >= GOALS["death_auroc"])}
    return {"stays": len(complete), "deaths": int(yd.sum()), "discrimination": d_disc,
            "each_on_its_own_stays": own, "goal": death_goal,
            "difference_reference": "auroc_minus_news2 in this section is against NEWS2 peak (paired bootstrap)",
            "published_reference": {"saps1": GOALS["saps1_published_auroc"], "sofa": GOALS["sofa_published_auroc"]},
            "_complete": complete}


def build_report(scores: pd.DataFrame, events: pd.DataFrame, outcomes: dict[int, Outcome], twin: Twin, *,
                 n_bootstrap: int = 500, seed: int = 2012, data: dict[str, Any] | None = None,
                 demographics: pd.DataFrame | None = None,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Both tasks as plain data (JSON-ready); the numbers come from ``lab.metrics``. ``demographics``
    (``patient_id``, ``age``, ``gender``) adds the subgroup section."""
    say = progress or (lambda _: None)
    stays = scores["patient_id"].nunique()
    ids = set(scores["patient_id"])
    events = events[events["patient_id"].isin(ids)]
    both = scores["risk"].notna() & scores["news2_total"].notna()
    same = scores[both & scores["eligible"]].reset_index(drop=True)
    y = same["label"].to_numpy(int)
    risk, news = same["risk"].to_numpy(float), same["news2_total"].to_numpy(float)
    say(f"task (a): {len(same)} eligible hours, {int(y.sum())} positive; bootstrap {n_bootstrap}")
    disc = bootstrap(y, {"twin": risk, "news2": news}, same["patient_id"].to_numpy(object), n=n_bootstrap, seed=seed)
    thr, thr_source = twin_threshold(twin)
    ops = {f"NEWS2 >= {NEWS2_THRESHOLD}": first_event_sensitivity(same, events, news, NEWS2_THRESHOLD,
                                                                  n_bootstrap=n_bootstrap, seed=seed),
           f"twin >= {thr:g}": first_event_sensitivity(same, events, risk, thr, n_bootstrap=n_bootstrap, seed=seed)}
    events_goal = events_goal_of(disc["twin"])

    say("task (b): in-hospital death from the first 48 h")
    death = death_section(per_stay_predictors(scores, outcomes), n_bootstrap=n_bootstrap, seed=seed)
    complete = death.pop("_complete")
    yd = complete["death"].to_numpy(int)

    calibration = {"in_the_large": calibration_in_the_large(y, risk), "by_bin": reliability(y, risk),
                   "note": "the twin's risk is calibrated on its training data, not on ICU stays charted hourly"}
    decision = decision_curve(y, risk, {f"NEWS2 >= {NEWS2_THRESHOLD}": news >= NEWS2_THRESHOLD})
    subgroups = None
    if demographics is not None:
        say("subgroups: sex and age band")
        subgroups = S.section(same, risk, news, per_stay_predictors(scores, outcomes).dropna(
            subset=["death", "twin_last", "news2_last", "saps1"]), demographics, twin_death="twin_last",
            n_bootstrap=n_bootstrap, seed=seed)
    feature_rows = int(scores.attrs.get("feature_rows", 0))
    feature_missing = {k: v / feature_rows for k, v in scores.attrs.get("feature_missing", {}).items()} \
        if feature_rows else {}
    report: dict[str, Any] = {
        "scope": f"{records_given(data or {}, stays)}, charted vitals; twin {twin.version}, trained on "
                 f"{(data or {}).get('twin_training_data') or training_data(twin.artifact)}; " + (
            "its risk as served (its training data does not include these records), scored hourly through the "
            "serving code" if (data or {}).get("risk", "the twin as served") == "the twin as served" else
            "the twin was fitted on these stays, so its risk here is out of fold: each stay scored by the fold "
            "model that did not see it, through the same windows and features, calibrated by the artifact's "
            "Platt map"),
        "twin_version": twin.version, "data": data or {},
        "coverage": {
            "stay_hours": len(scores), "risk_empty_hours": int(scores["risk"].isna().sum()),
            "news2_empty_hours": int(scores["news2_total"].isna().sum()),
            "news2_partial_share_of_computed": float(scores.loc[scores["news2_total"].notna(), "news2_partial"]
                                                     .mean()) if scores["news2_total"].notna().any() else None,
            "feature_missing_share_at_scored_hours": {k: round(v, 4) for k, v in feature_missing.items()},
        },
        "events_6h": {
            "events": len(events), "stays_with_event": int(events["patient_id"].nunique()),
            "events_by_kind": {str(k): int(v) for k, v in events["kind"].value_counts().sort_index().items()},
            "eligible_hours_same": len(same), "positive_hours": int(y.sum()),
            "stays": int(same["patient_id"].nunique()),
            "discrimination": disc, "sensitivity_30min_lead": ops, "twin_threshold_source": thr_source,
            "goal": events_goal, "calibration": calibration, "decision_curve": decision,
        },
        "subgroups": subgroups,
        "death": death,
        "rules": RULES,
        "curves": {
            "events": {"twin": _curve(y, risk), "news2": _curve(y, news)},
            "death": {k: _curve(yd, complete[k].to_numpy(float)) for k in DEATH_PREDICTORS},
        },
        "risk_by_outcome": {
            "death_twin_peak": {str(int(k)): g.to_numpy(float).round(5).tolist()
                                for k, g in complete.groupby("death")["twin_peak"]},
            "hours_twin_risk_quantiles": {str(k): np.percentile(g, [5, 25, 50, 75, 95]).tolist()
                                          for k, g in pd.Series(risk).groupby(y)} if len(y) else {},
        },
    }
    report["summary"] = summary_lines(report)
    return report


def events_goal_of(m: dict[str, Any]) -> dict[str, Any]:
    """``GOALS``' 6-hour-event target on a score's bootstrap entry (``auroc_minus_news2`` and its interval)."""
    margin, ci = m.get("auroc_minus_news2"), m.get("auroc_minus_news2_ci") or [None, None]
    need = GOALS["events_auroc_margin_over_news2"]
    return {"target": f"twin AUROC >= NEWS2 AUROC + {need}, the interval's lower end above 0", "margin": margin,
            "margin_ci": ci, "met": bool(margin is not None and margin >= need and ci[0] is not None and ci[0] > 0)}


GOAL_TEXT: Final[str] = f"Goal (≥ +{GOALS['events_auroc_margin_over_news2']:.2f}, lower end > 0)"


def records_given(data: dict[str, Any], stays: int) -> str:
    """The records the evaluation was given, as its report names them: archive, limit, stays scored."""
    records = data.get("records")
    limit = data.get("limit")
    given = f"records {records}" if records else "records given"
    return (f"PhysioNet/CinC Challenge 2012 {given}" + (f", the first {limit} stays" if limit is not None else "")
            + f", {stays} real ICU stays")


def training_data(artifact: dict[str, Any]) -> str:
    """The twin's training data as its artifact records it (``cohort``): simulated patients and real records."""
    cohort = artifact.get("cohort") or {}
    parts = []
    if cohort.get("n_patients"):
        parts.append(f"{cohort['n_patients']} simulated patients × {cohort.get('hours', '?'):g} h (simulator "
                     f"{cohort.get('simulator_version', '?')}, seed {cohort.get('seed', '?')})"
                     if isinstance(cohort.get("hours"), int | float) else f"{cohort['n_patients']} simulated patients")
    real = cohort.get("real_data")
    if real:
        limit = f", first {real['limit']} stays" if real.get("limit") is not None else ""
        sha = f", sha256 {str(real['records_sha256'])[:12]}" if real.get("records_sha256") else ""
        parts.append(f"{real.get('stays', '?')} stays of {real.get('records', '?')}{limit}{sha}")
    return " + ".join(parts) if parts else "training data not recorded in the artifact"


RULES: Final[dict[str, str]] = {
    "admission": "every stay admitted at 2012-01-01T00:00Z; ts = admission + HH:MM (lab.physionet2012)",
    "validation": "every mapped reading goes through app.ingest.validate_batch (the API's validation) with now = "
                  "admission + 49 h; only accepted readings are scored; zeros and implausible values are not fixed",
    "risk": "aggregate → carry_forward → features.build → Twin.score at hour ends 1..48; empty when the service "
            "would not score (newest window with HR, SpO2 or RR older than 60 min) or the stay has no reading",
    "news2": "models.news2.from_windows on the hour's window (SBP/temp carried ≤ 1 h, ACVPU/O2 ≤ 12 h, HR/SpO2/RR "
             "from the newest window within the hour); unobserved parameters score 0 (partial); empty when none is "
             "observed",
    "events": "models.labels thresholds and 1 h merge; sustained = two consecutive abnormal charted values of the "
              "vital (≤ 4 h apart, no normal value between) instead of 15 min of 5-minute windows; labels and "
              "eligibility from models.labels.label (6 h horizon, 1 h refractory, ≥ 1 h history, censored "
              "negatives out)",
    "same_hours": "task (a) uses eligible hours where both risk and NEWS2 are computed",
    "sensitivity": "first event per stay; detected when an eligible scored hour in [onset − 6 h, onset − 30 min] "
                   "is at or above the threshold; events without such an hour are not counted",
    "death": "per stay: peak and last computed twin risk and NEWS2 over hours 1..48; SAPS-I and SOFA from "
             "Outcomes-a.txt; AUROC on stays where all six are known",
    "bootstrap": "patient (stay) bootstrap, percentile 95 % intervals (lab.metrics.bootstrap)",
    "spo2": "SaO2 (arterial blood gas, a few a day), not pulse oximetry",
    "acvpu": "GCS 15 → A, 13–14 → C, 9–12 → V, 6–8 → P, 3–5 → U (ours); in an ICU a low GCS is often sedation",
    "oxygen": "FiO2 > 0.21 or MechVent = 1 → supplemental oxygen at a nominal 2 L/min; FiO2 0.21 → room air",
}


def summary_lines(report: dict[str, Any]) -> list[str]:
    ev, de = report["events_6h"], report["death"]
    d = ev["discrimination"]
    lines = [
        f"{report['scope']}.",
        f"(a) 6-hour events: {ev['events']} events in {ev['stays_with_event']} stays; {ev['eligible_hours_same']} "
        f"eligible hours ({ev['positive_hours']} positive) where both scores exist.",
        f"    AUROC twin {_ci(d['twin'])} vs NEWS2 {_ci(d['news2'])}; difference "
        f"{_f(d['twin'].get('auroc_minus_news2'), '+.3f')} ({_f(d['twin']['auroc_minus_news2_ci'][0], '+.3f')} to "
        f"{_f(d['twin']['auroc_minus_news2_ci'][1], '+.3f')}). {GOAL_TEXT}: "
        f"{'met' if ev['goal']['met'] else 'NOT met'}.",
    ]
    for name, op in ev["sensitivity_30min_lead"].items():
        lo, hi = op["sensitivity_ci"]
        lines.append(f"    {name}: first-event sensitivity with ≥ 30 min lead {_f(op['sensitivity'], '.2f')} "
                     f"({_f(lo, '.2f')}–{_f(hi, '.2f')}; {op['detected']}/{op['first_events']}), median lead "
                     f"{_f(op['median_lead_h'], '.1f')} h")
    lines.append(f"(b) in-hospital death, {de['stays']} stays ({de['deaths']} deaths), AUROC (95 % CI):")
    for k in ("twin_peak", "twin_last", "news2_peak", "news2_last", "saps1", "sofa"):
        lines.append(f"    {k:<11} {_ci(de['discrimination'][k])}")
    lines.append(f"    Goal (twin ≥ 0.75): {'met' if de['goal']['met'] else 'NOT met'} "
                 f"(best twin {_f(de['goal']['best_twin_auroc'])}); published on set A: SAPS-I 0.650, SOFA 0.623.")
    cal = ev.get("calibration", {}).get("in_the_large")
    if cal:
        lines.append(f"    calibration in the large: mean risk {_f(cal['expected'])} vs event rate "
                     f"{_f(cal['observed'])} (intercept with slope 1: {_f(cal['intercept_slope_1'], '+.2f')})")
    if report.get("subgroups"):
        lines.extend(S.lines(report["subgroups"], twin_death="twin_last"))
    cov = report["coverage"]
    miss = cov["feature_missing_share_at_scored_hours"]
    if miss and not ev["goal"]["met"]:
        shown = ("hr_outside_normal", "rr_outside_normal", "spo2_below_normal", "shock_index_above_0_7", "hr_rise_1h",
                 "sbp_outside_normal", "not_alert")
        lines.append("Why: the twin's features were built for monitor streams; at charted cadence most cannot be "
                     "computed and contribute 0 (missing at scored hours: "
                     + ", ".join(f"{k} {miss[k]:.0%}" for k in shown if k in miss) + ").")
    lines.append(f"Coverage: risk empty at {cov['risk_empty_hours']}/{cov['stay_hours']} stay-hours, NEWS2 empty at "
                 f"{cov['news2_empty_hours']}; NEWS2 partial at {_f(cov['news2_partial_share_of_computed'], '.0%')} "
                 "of computed hours.")
    return lines


def write_report(report: dict[str, Any], out: str | Path, *, cv: dict[str, Any] | None = None) -> None:
    """``report.json``, ``roc_events.png``, ``roc_death.png``, ``risk_by_outcome.png`` and ``index.html``; with
    ``cv`` (:func:`lab.physionet_cv.evaluate`) also ``cv_variant.json`` and its section in ``index.html``."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, sort_keys=True, indent=1, allow_nan=False) + "\n",
                                     encoding="utf-8")
    ev, de = report["events_6h"], report["death"]
    for name, curves, disc, title in (
            ("roc_events.png", report["curves"]["events"], ev["discrimination"], "6-hour events, eligible hours"),
            ("roc_death.png", report["curves"]["death"], de["discrimination"], "In-hospital death, per stay")):
        fig, ax = plt.subplots(figsize=(5, 5))
        for k, cur in curves.items():
            key = "news2" if k == "news2" and "news2" in disc else k
            ax.plot(cur["fpr"], cur["tpr"], label=f"{k} ({_f(disc.get(key, {}).get('auroc'))})")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
        ax.set(xlabel="1 − specificity", ylabel="sensitivity", title=title)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    by_death = report["risk_by_outcome"]["death_twin_peak"]
    keys = sorted(by_death)
    axes[0].boxplot([by_death[k] or [np.nan] for k in keys],
                    tick_labels=["survived" if k == "0" else "died" for k in keys])
    axes[0].set(ylabel="twin peak risk (48 h)", title="Twin peak risk by in-hospital death", yscale="log")
    q = report["risk_by_outcome"]["hours_twin_risk_quantiles"]
    for i, k in enumerate(sorted(q)):
        p5, p25, p50, p75, p95 = q[k]
        axes[1].vlines(i, p5, p95, color="grey")
        axes[1].vlines(i, p25, p75, lw=8, color="tab:blue")
        axes[1].plot(i, p50, "o", color="white", markeredgecolor="black")
    axes[1].set_xticks(range(len(q)), ["no event in 6 h" if k == "0" else "event within 6 h" for k in sorted(q)])
    axes[1].set(ylabel="twin risk (5/25/50/75/95 %)", title="Twin risk by 6-hour label", yscale="log")
    fig.tight_layout()
    fig.savefig(out / "risk_by_outcome.png", dpi=100)
    plt.close(fig)
    _plot_calibration_and_decision(ev, out / "calibration_decision.png")
    html = [f"<h1>wardtwin {escape(report['twin_version'])} on PhysioNet 2012 set A</h1>",
            f"<pre>{escape(chr(10).join(report['summary']))}</pre>",
            "<img src='roc_events.png' alt='ROC, 6-hour events'><img src='roc_death.png' alt='ROC, death'>",
            "<img src='risk_by_outcome.png' alt='risk by outcome' style='max-width:98%'>",
            "<img src='calibration_decision.png' alt='calibration by bin and decision curve' style='max-width:98%'>",
            *(_cv_section(cv) if cv is not None else []),
            "<h2>Rules</h2><ul>", *rule_items(report["rules"]),
            "</ul>", "<h2>Data</h2><pre>" + escape(json.dumps(report["data"], indent=1, sort_keys=True)) + "</pre>",
            "<p>Data: PhysioNet challenge-2012 1.0.0 (ODC-By 1.0). Silva I, Moody G, Scott DJ, Celi LA, Mark RG. "
            "Computing in Cardiology 2012;39:245-248. Full numbers: <a href='report.json'>report.json</a>.</p>",
            "</body></html>"]
    (out / "index.html").write_text(page("wardtwin on PhysioNet 2012", html, width_px=1100, img_percent=49),
                                    encoding="utf-8")
    if cv is not None:
        (out / "cv_variant.json").write_text(json.dumps(cv, sort_keys=True, indent=1, allow_nan=False) + "\n",
                                             encoding="utf-8")


def _plot_calibration_and_decision(ev: dict[str, Any], path: Path) -> None:
    """Task (a): observed event rate by bin of predicted risk, and net benefit against treat-all and NEWS2 >= 5."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    bins = ev.get("calibration", {}).get("by_bin", [])
    if bins:
        axes[0].plot([b["mean_predicted"] for b in bins], [b["observed"] for b in bins], "o-", label="twin")
    axes[0].plot([0, 1], [0, 1], color="grey", lw=0.5)
    axes[0].set(xlabel="mean predicted risk (bin)", ylabel="observed 6-hour event rate",
                title="Calibration on set A (ward-calibrated twin)", xlim=(0, 1), ylim=(0, 1))
    dc = ev.get("decision_curve")
    if dc:
        for key, label in (("model", "twin"), ("treat_all", "alert on every hour"),
                           (f"NEWS2 >= {NEWS2_THRESHOLD}", f"NEWS2 >= {NEWS2_THRESHOLD}"), ("treat_none", "none")):
            axes[1].plot(dc["thresholds"], dc[key], label=label)
        axes[1].set(xlabel="threshold probability", ylabel="net benefit per hour", title="Decision curve, set A",
                    ylim=(-0.05, max(0.12, max(dc["model"]) * 1.1)))
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cv_section(cv: dict[str, Any]) -> list[str]:
    ev, de = cv["events_6h"], cv["death"]
    return ["<h2>Variant: the twin fitted on set A (patient-level cross-validation, not shipped)</h2>",
            f"<p><b>Goals on out-of-fold risks</b>: 6-hour events (twin ≥ NEWS2 + 0.05) "
            f"<b>{'met' if ev['goal']['met'] else 'not met'}</b>; in-hospital death (≥ 0.75) "
            f"<b>{'met' if de['goal']['met'] else 'not met'}</b>. {escape(cv['not_shipped'])}</p>",
            f"<pre>{escape(chr(10).join(cv['summary']))}</pre>",
            "<p>Design: " + "; ".join(f"<b>{escape(k)}</b>: {escape(str(v))}" for k, v in cv["design"].items())
            + ". Every number: <a href='cv_variant.json'>cv_variant.json</a>.</p>"]


__all__ = ["DEATH_PREDICTORS", "GOALS", "GOAL_TEXT", "HOURS", "LEAD", "MAX_CHART_GAP", "RULES", "SCORE_COLUMNS",
           "STALE_AFTER", "build_report", "charted_events", "death_section", "events_goal_of",
           "first_event_sensitivity", "hour_ends", "per_stay_predictors", "record_id", "score_hours", "score_stays",
           "stay_hours", "summary_lines", "twin_threshold", "write_report", "write_scores_csv"]
