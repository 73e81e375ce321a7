"""``wardtwin evaluate alert-burden``: alerts per 100 patient-days and first-event lead time, counted by the
service's own alert engine (NEWS2, twin and criteria-met alerts together).

For each seed a simulated cohort (``simulator.cohort.iter_streams``: every patient a pure function of
``(seed, i)``; by default the general-ward mix) streams through the real service in process: ``create_app`` on a
temporary data directory with a fixed clock, the monitor's readings posted through ``POST /v1/readings`` and the
simulated nurse's observation sets (one full set per round, at the RCP 2017 frequency set by her last NEWS2)
through ``POST /v1/observations`` when the simulator *delivers* them, the clock stepped to each five-minute window
end plus the cycle grace (``Settings.cycle_grace_s``), and ``POST /v1/cycle`` for that window end. Afterwards every
alert is read back through ``GET /v1/alerts`` (per patient and kind, so no page is cut short), and every stored
score through the store. Nothing here applies an alert rule: this module only counts what the service raised; the
summary and the Pareto table (:mod:`lab.alert_pareto`) replay the service's own rules over what it stored.

Definitions (stated once, used everywhere):

- **patient-days**: each patient's monitored time (admission to end of monitoring: the horizon, or transfer
  out after an event), summed, / 24 h.
- **alerts per 100 patient-days**: alerts raised, by kind (``news2`` = NEWS2 alone, ``twin``, ``criteria``)
  and for the combined policy (any kind).
- **alert episode**: one patient's alerts of any kind whose open periods ``[raised_at, resolved_at)``
  overlap or touch (an alert still open at the end counts as open until the end of monitoring) are chained
  into one episode; an episode is counted once however many kinds it holds.
- **warning for an event**: the patient's *first* ground-truth event (``events``: onset of the first
  sustained threshold crossing). A policy warned if one of its alerts was open at some time in
  ``[onset − 6 h, onset − 30 min]``: raised in that span, or raised earlier and not resolved before
  ``onset − 6 h``. Lead time = onset − max(earliest such ``raised_at``, onset − 6 h), so at most 6 h.
  "Combined" is any kind; the twin's added lead per event is combined lead − NEWS2 lead (NEWS2 lead 0 when
  NEWS2 did not warn).
- **intervals**: 95 % percentile intervals from resampling patients with replacement (1,000 replicates;
  pooled: patients of all seeds resampled together).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
import orjson
import pandas as pd

from app.alerts.store import KINDS
from app.clock import FixedClock
from app.main import create_app
from app.security.keys import new_token
from app.settings import Settings
from lab import alert_fold, alert_pareto, alert_policies
from models.schema import SOURCES, VITALS
from models.windows import WINDOW
from simulator.cohort import DEFAULT_START, iter_streams
from simulator.devices import QUALITIES
from simulator.patient import PatientStream

logger = logging.getLogger(__name__)

BATCH: Final[int] = 10_000
LOOKBACK: Final[timedelta] = timedelta(hours=6)
MIN_LEAD: Final[timedelta] = timedelta(minutes=30)
ALERT_PAGE: Final[int] = 1000  # the route's maximum ``limit``
N_BOOT: Final[int] = 1000
#: every alert kind the service raises, then any kind
POLICIES: Final[tuple[str, ...]] = (*KINDS, "combined")
#: The settings of the alert policy a study may run the service with instead of the shipped ones
#: (``--alert-settings``): to measure another policy through the service's own engine, or to retrace a report made
#: under an earlier one.
ALERT_POLICY_SETTINGS: Final[tuple[str, ...]] = (
    "alert_threshold", "alert_clear_threshold", "news2_alert_aggregate", "news2_alert_single_parameter",
    "twin_sustain_windows", "obs_due_after_min", "obs_due_aggregate", "obs_due_single_parameter", "alert_fold",
    "alert_clear_after_min")


def alert_settings_arg(text: str) -> dict[str, str]:
    """``NAME=VALUE,NAME=VALUE`` of :data:`ALERT_POLICY_SETTINGS` (values validated by ``Settings``)."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in ALERT_POLICY_SETTINGS:
            raise ValueError(f"{item!r}: expected NAME=VALUE with NAME one of {', '.join(ALERT_POLICY_SETTINGS)}")
        pairs[name.strip()] = value.strip()
    return pairs


@dataclass
class SeedRun:
    """One seed's cohort as the service saw it: alerts read back, patients, events, monitored time."""

    seed: int
    alerts: list[dict[str, Any]]
    patients: list[dict[str, Any]]  # patient_id, archetype, start, end (monitored span)
    events: list[dict[str, Any]]  # first event per patient: patient_id, kind, onset
    twin_threshold: float
    model_version: str
    windows: int
    seconds: float
    readings: int
    meta: dict[str, Any] = field(default_factory=dict)
    #: per patient, the scores the service stored (``models.scoring.Score``, oldest first): the Pareto's replay input
    scores: dict[str, list[Any]] = field(default_factory=dict)
    #: the alert policy the service ran (``app.alerts.rules.Policy``) and the cycle grace it stamps alerts with
    policy: Any = None
    grace: timedelta = timedelta(0)
    #: per patient, the nurse's sets the service accepted: ``(clock time of the post, the body posted)``, in order
    charted: dict[str, list[tuple[datetime, dict[str, Any]]]] = field(default_factory=dict)


def _ts(ms: int) -> datetime:
    return pd.Timestamp(ms, unit="ms", tz="UTC").to_pydatetime()


async def run_seed(n_patients: int, hours: float, seed: int, data_dir: Path, *, start: pd.Timestamp = DEFAULT_START,
                   archetype_mix: dict[str, float] | None = None, progress_every: int = 48,
                   say: Callable[[str], None] = lambda _: None) -> SeedRun:
    """Stream one seed's cohort through the service in process and read every alert back."""
    streams = list(iter_streams(n_patients, hours, seed, start, archetype_mix))
    return await run_streams(streams, hours, seed, data_dir, start=start, progress_every=progress_every, say=say)


async def run_streams(streams: Sequence[PatientStream], hours: float, seed: int, data_dir: Path, *,
                      start: pd.Timestamp, progress_every: int = 48,
                      say: Callable[[str], None] = lambda _: None,
                      alert_settings: Mapping[str, Any] | None = None) -> SeedRun:
    """Deliver ``streams`` (simulated, or real stays in the same shape) to the service in process, a five-minute
    cycle at a time from ``start`` for ``hours``, and read every alert back. ``seed`` only labels the run.
    ``alert_settings``: alert-policy settings (:data:`ALERT_POLICY_SETTINGS`) the service runs with instead of the
    shipped ones."""
    t0 = time.perf_counter()
    ids = [s.patient["patient_id"] for s in streams]
    keep = [_monitor_only(s) for s in streams]  # the nurse's values go as sets, through POST /v1/observations
    sizes = [int(k.sum()) for k in keep]
    pidx = np.repeat(np.arange(len(streams)), sizes)
    deliver = np.concatenate([s.deliver_ms[k] for s, k in zip(streams, keep, strict=True)]) if streams \
        else np.empty(0, np.int64)
    order = np.argsort(deliver, kind="stable")
    pidx, deliver = pidx[order], deliver[order]
    ts_ms, vital, value, quality = (np.concatenate([getattr(s, name)[k] for s, k in zip(streams, keep, strict=True)])
                                    [order] for name in ("ts_ms", "vital", "value", "quality"))

    start_dt = pd.Timestamp(start).tz_convert("UTC").to_pydatetime()
    end_dt = start_dt + timedelta(hours=hours)
    clock = FixedClock(start_dt)
    key = new_token()  # this in-process session's key with every role; it is the only client, so no rate limit
    settings = Settings.explicit(data_dir=data_dir, demo_key=key, rate_limit_per_s=1e9, rate_limit_burst=10**9,
                                 **dict(alert_settings or {}))
    grace = timedelta(seconds=settings.cycle_grace_s)
    app = create_app(settings, clock, cycle_interval_s=None)
    sent, windows = 0, 0
    sets = sorted(((doc, i, body) for i, st in enumerate(streams) for doc, body in nurse_sets(st)),
                  key=lambda x: x[:2])
    set_at = np.asarray([doc for doc, _, _ in sets], np.int64)
    posted, charted = 0, {}
    meta: dict[str, Any] = {"observation_sets": 0, "observation_sets_refused": 0, "observations_route": True}
    n_windows = int((end_dt - start_dt) / WINDOW)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://alert-burden",
            headers={"Authorization": f"Bearer {key}"}) as client:
        wt = app.state.wardtwin
        window_end = start_dt + WINDOW
        while window_end <= end_dt:
            now = window_end + grace
            clock.set(now)
            upto = int(np.searchsorted(deliver, int(pd.Timestamp(now).value // 1_000_000), side="right"))
            for i in range(sent, upto, BATCH):
                j = min(i + BATCH, upto)
                stamps = np.datetime_as_string(ts_ms[i:j].astype("datetime64[ms]"), unit="ms", timezone="UTC")
                items = [{"patient_id": ids[p], "vital": VITALS[v], "ts": t, "value": x, "quality": QUALITIES[q]}
                         for p, v, t, x, q in zip(pidx[i:j].tolist(), vital[i:j].tolist(), stamps.tolist(),
                                                  value[i:j].tolist(), quality[i:j].tolist(), strict=True)]
                response = await client.post("/v1/readings", content=orjson.dumps({"readings": items}),
                                             headers={"content-type": "application/json"})
                if response.status_code != 200:
                    raise ValueError(f"the service rejected simulated readings: {response.text[:500]}")
            sent = upto
            due = int(np.searchsorted(set_at, int(pd.Timestamp(now).value // 1_000_000), side="right"))
            for _, _, body in sets[posted:due] if meta["observations_route"] else ():
                response = await client.post("/v1/observations", json=body)
                if response.status_code in (404, 405):  # a service without the route: readings only
                    meta["observations_route"] = False
                    break
                if response.is_success:
                    charted.setdefault(body["patient_id"], []).append((now, body))
                    meta["observation_sets"] += 1
                else:
                    meta["observation_sets_refused"] += 1
                    meta.setdefault("observation_set_refused_example", response.text[:300])
            posted = due
            (await client.post("/v1/cycle", params={"window_end": window_end.isoformat()})).raise_for_status()
            windows += 1
            if progress_every and (windows % progress_every == 0 or windows == n_windows):
                say(f"  seed {seed}: window {windows}/{n_windows} ({window_end:%Y-%m-%d %H:%M}Z) "
                    f"readings {sent:,} elapsed {time.perf_counter() - t0:.0f}s")
            window_end += WINDOW
        served = {p["patient_id"] for p in (await client.get("/v1/patients")).raise_for_status().json()}
        alerts: list[dict[str, Any]] = []
        for pid in sorted(served | set(ids)):
            for kind in KINDS:
                page = (await client.get("/v1/alerts", params={"patient_id": pid, "kind": kind,
                                                               "limit": ALERT_PAGE})).raise_for_status().json()
                if len(page) >= ALERT_PAGE:
                    raise RuntimeError(f"{pid} has {ALERT_PAGE}+ {kind} alerts; the route cannot page further")
                alerts += page
        threshold, version = float(wt.engine.policy.threshold), str(wt.twin.version)
        scores = {pid: await wt.store.score_history(pid, start_dt, end_dt + timedelta(milliseconds=1))
                  for pid in sorted(served | set(ids))}
        policy = wt.engine.policy
        meta["twin_cohort"] = wt.twin.artifact.get("cohort")
        meta["twin_calibration"] = wt.twin.artifact.get("calibration")
    patients, events = [], []
    for s in streams:
        pid = s.patient["patient_id"]
        patients.append({"patient_id": pid, "archetype": s.patient.get("archetype"), "start": _ts(s.start_ms),
                         "end": min(_ts(s.end_ms), end_dt)})
        first = sorted(s.events, key=lambda e: pd.Timestamp(e["onset"]))[:1]
        events += [{"patient_id": pid, "kind": e["kind"], "onset": pd.Timestamp(e["onset"]).to_pydatetime()}
                   for e in first]
    return SeedRun(seed, sorted(alerts, key=lambda a: (a["raised_at"], a["id"])), patients, events, threshold,
                   version, windows, time.perf_counter() - t0, sent, meta=meta, scores=scores, policy=policy,
                   grace=grace,
                   charted=charted)


def nurse_sets(stream: PatientStream) -> list[tuple[int, dict[str, Any]]]:
    """The simulated nurse's observation sets (``simulator.nurse``: one full set per round, at the RCP 2017
    frequency set by her last NEWS2) as ``POST /v1/observations`` bodies, each with the time it is documented
    (epoch ms: its ``ts`` and its delivery); none for a stream without a nurse (real stays)."""
    sets = getattr(stream, "observation_sets", None)
    return sets() if callable(sets) else []


def _monitor_only(stream: PatientStream) -> np.ndarray:
    """Which of the stream's readings the monitor sent (a charted value reaches the service in its set)."""
    source = getattr(stream, "source", np.empty(0, np.int8))
    if len(source) != len(stream):
        return np.ones(len(stream), bool)
    return np.asarray(source) == SOURCES.index("monitor")


# -- per-patient facts --------------------------------------------------------------------------------
def _episodes(alerts: Sequence[dict[str, Any]], end: datetime) -> int:
    """Chains of alerts whose open periods ``[raised_at, resolved_at or end)`` overlap or touch."""
    spans = []
    for a in alerts:
        raised = datetime.fromisoformat(a["raised_at"])
        spans.append((raised, datetime.fromisoformat(a["resolved_at"]) if a.get("resolved_at") else max(end, raised)))
    spans.sort()
    count, open_until = 0, None
    for lo, hi in spans:
        if open_until is None or lo > open_until:
            count += 1
            open_until = hi
        else:
            open_until = max(open_until, hi)
    return count


def _lead_h(alerts: Sequence[dict[str, Any]], onset: datetime) -> float | None:
    """Lead in hours of the earliest alert open during ``[onset − 6 h, onset − 30 min]``; None if none was."""
    lo, hi = onset - LOOKBACK, onset - MIN_LEAD
    best: datetime | None = None
    for a in alerts:
        raised = datetime.fromisoformat(a["raised_at"])
        resolved = datetime.fromisoformat(a["resolved_at"]) if a.get("resolved_at") else None
        if raised <= hi and (resolved is None or resolved > lo):
            at = max(raised, lo)
            best = at if best is None or at < best else best
    return None if best is None else (onset - best).total_seconds() / 3600.0


def patient_table(run: SeedRun) -> pd.DataFrame:
    """One row per patient: days, alert counts by kind, episodes, and first-event warnings and leads."""
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for a in run.alerts:
        by_patient.setdefault(a["patient_id"], []).append(a)
    onsets = {e["patient_id"]: e["onset"] for e in run.events}
    rows = []
    for p in run.patients:
        pid, mine = p["patient_id"], by_patient.get(p["patient_id"], [])
        row: dict[str, Any] = {"seed": run.seed, "patient_id": pid, "archetype": p["archetype"],
                               "days": (p["end"] - p["start"]).total_seconds() / 86400.0,
                               "event": pid in onsets}
        for kind in KINDS:
            row[f"n_{kind}"] = sum(a["kind"] == kind for a in mine)
        row["n_combined"] = len(mine)
        row["episodes"] = _episodes(mine, p["end"])
        for policy in POLICIES:
            chosen = mine if policy == "combined" else [a for a in mine if a["kind"] == policy]
            row[f"lead_{policy}"] = _lead_h(chosen, onsets[pid]) if pid in onsets else None
        rows.append(row)
    return pd.DataFrame(rows)


# -- statistics -------------------------------------------------------------------------------------
def _stats(t: pd.DataFrame) -> dict[str, float | None]:
    days = float(t["days"].sum())
    out: dict[str, float | None] = {}
    for policy in POLICIES:
        out[f"per100d_{policy}"] = 100.0 * t[f"n_{policy}"].sum() / days if days else None
    out["per100d_episodes"] = 100.0 * t["episodes"].sum() / days if days else None
    ev = t[t["event"]]
    for policy in POLICIES:
        lead = ev[f"lead_{policy}"].dropna().astype(float)
        out[f"sens_{policy}"] = len(lead) / len(ev) if len(ev) else None
        out[f"lead_median_h_{policy}"] = float(lead.median()) if len(lead) else None
    if len(ev):
        gain = ev["lead_combined"].fillna(0.0).astype(float) - ev["lead_news2"].fillna(0.0).astype(float)
        out["lead_gain_mean_h"] = float(gain.mean())
    else:
        out["lead_gain_mean_h"] = None
    stable = t[~t["event"]]
    for policy in POLICIES:
        out[f"stable_alerted_frac_{policy}"] = float((stable[f"n_{policy}"] > 0).mean()) if len(stable) else None
    return out


def summarise(t: pd.DataFrame, rng: np.random.Generator, n_boot: int) -> dict[str, Any]:
    point = _stats(t)
    boots: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_boot):
        sample = t.iloc[rng.integers(0, len(t), len(t))]
        for k, v in _stats(sample).items():
            if v is not None and not np.isnan(v):
                boots[k].append(v)
    estimates = {k: {"value": v, "ci95": ([float(np.percentile(boots[k], 2.5)), float(np.percentile(boots[k], 97.5))]
                                         if len(boots[k]) >= 20 else None)} for k, v in point.items()}
    ev, stable = t[t["event"]], t[~t["event"]]
    leads = {}
    for policy in POLICIES:
        lead = ev[f"lead_{policy}"].dropna().astype(float)
        leads[policy] = ({"n": len(lead), "median_h": float(lead.median()), "q1_h": float(lead.quantile(0.25)),
                          "q3_h": float(lead.quantile(0.75))} if len(lead) else {"n": 0})
    gain = ev["lead_combined"].fillna(0.0).astype(float) - ev["lead_news2"].fillna(0.0).astype(float)
    return {
        "patients": len(t), "patient_days": float(t["days"].sum()), "first_events": len(ev),
        "stable_patients": len(stable),
        "alerts": {p: int(t[f"n_{p}"].sum()) for p in POLICIES} | {"episodes": int(t["episodes"].sum())},
        "estimates": estimates,
        "lead_time_h": leads,
        "twin_added_lead_h": ({"n_events": len(ev), "median": float(gain.median()), "q1": float(gain.quantile(0.25)),
                               "q3": float(gain.quantile(0.75)),
                               "events_warned_by_combined_not_news2": int((ev["lead_combined"].notna()
                                                                           & ev["lead_news2"].isna()).sum())}
                              if len(ev) else {"n_events": 0}),
        "stable_patients_alerted": {p: int((stable[f"n_{p}"] > 0).sum()) for p in POLICIES},
    }


# -- outputs ----------------------------------------------------------------------------------------
def fmt(est: dict[str, Any], scale: float = 1.0, digits: int = 1) -> str:
    v = est["value"]
    if v is None:
        return "–"
    ci = est["ci95"]
    text = f"{v * scale:.{digits}f}"
    return text + (f" ({ci[0] * scale:.{digits}f}–{ci[1] * scale:.{digits}f})" if ci else "")


def _lead_cell(lead: dict[str, Any]) -> str:
    if not lead["n"]:
        return "–"
    return f"{lead['median_h']:.2f} [{lead['q1_h']:.2f}–{lead['q3_h']:.2f}] ({lead['n']})"


def _readme(report: dict[str, Any]) -> str:
    cfg = report["config"]
    lines = [
        "# Alert burden and lead time: the service's own alert engine on a simulated general ward",
        "",
        f"`{report['command']}` — {cfg['patients']} simulated patients × {cfg['hours']:g} h per seed "
        f"({'the ward mix' if cfg.get('archetype_mix') is None else 'mix ' + str(cfg['archetype_mix'])}), seeds "
        f"{', '.join(map(str, cfg['seeds']))}; twin `{report['model_version']}`, alert threshold "
        f"{report['twin_threshold']:g}; run time {report['seconds']:.0f} s. Definitions: see `report.json` "
        "(`definitions`), `lab/alert_burden.py` and `lab/alert_policies.py`. Values with patient-bootstrap 95 % "
        "intervals.",
        "",
        *(_summary_sections(report) if "summary" in report else []),
        "## Per seed", "",
        "| | " + " | ".join(report["groups"]) + " |",
        "|---|" + "---|" * len(report["groups"]),
    ]
    groups = [report["per_seed"][g] if g != "pooled" else report["pooled"] for g in report["groups"]]
    rows = [
        ("patient-days", lambda s: f"{s['patient_days']:.1f}"),
        ("first events / stable patients", lambda s: f"{s['first_events']} / {s['stable_patients']}"),
        *[(f"{p} alerts / 100 patient-days", lambda s, p=p: fmt(s["estimates"][f"per100d_{p}"]))
          for p in KINDS],
        ("**combined (any kind) alerts / 100 patient-days**", lambda s: fmt(s["estimates"]["per100d_combined"])),
        ("combined alert episodes / 100 patient-days", lambda s: fmt(s["estimates"]["per100d_episodes"])),
        *[(f"first events warned ≥ 30 min, {p} (%)", lambda s, p=p: fmt(s["estimates"][f"sens_{p}"], 100, 0))
          for p in POLICIES],
        *[(f"lead h, {p}: median [IQR] (n)", lambda s, p=p: _lead_cell(s["lead_time_h"][p]))
          for p in ("news2", "combined")],
        ("lead added by the other kinds over news2 alerts, h: median [IQR]; mean (CI)", lambda s: (
            f"{s['twin_added_lead_h']['median']:.2f} [{s['twin_added_lead_h']['q1']:.2f}–"
            f"{s['twin_added_lead_h']['q3']:.2f}]; {fmt(s['estimates']['lead_gain_mean_h'], 1, 2)}"
            if s["twin_added_lead_h"]["n_events"] else "–")),
        ("events warned by combined but not by news2 alerts", lambda s: str(
            s["twin_added_lead_h"].get("events_warned_by_combined_not_news2", "–"))),
        *[(f"stable patients with ≥ 1 {p} alert",
           lambda s, p=p: f"{s['stable_patients_alerted'][p]}/{s['stable_patients']}") for p in POLICIES],
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(s) for s in groups) + " |")
    lines += ["", "**Episode rule**: " + report["definitions"]["episode"], "",
              "**Warning rule**: " + report["definitions"]["warning"], "",
              "![lead time](lead_time.png)", ""]
    return "\n".join(lines)


def _summary_sections(report: dict[str, Any]) -> list[str]:
    check = report["replay_check"]
    charting = [report["per_seed"][g].get("charting", {}) for g in report["groups"] if g != "pooled"]
    sets = sum(c.get("observation_sets", 0) for c in charting)
    refused = sum(c.get("observation_sets_refused", 0) for c in charting)
    return [
        "## Summary: alerts a ward would keep?", "",
        f"The simulated nurse charted {sets} observation sets through `POST /v1/observations` ({refused} refused) at "
        "the RCP 2017 frequency set by her last NEWS2; the service raised `news2` alerts on them at once. "
        "`charted_news2` is the RCP reference: `app.alerts.rules.decide_charted` on those sets alone. "
        "`beyond_charted_news2` counts every alert of another kind (obs_due, twin, criteria).", "",
        *alert_pareto.summary_lines(report["summary"]), "",
        "**Chance warned**: " + report["definitions"]["chance_warned"] + ".", "",
        "## Pareto table", "",
        "Every row but the last is computed post hoc from the scores and charted sets the service stored, by the "
        "service's own rules (`app.alerts.rules.decide` / `decide_charted`, `lab/alert_replay.py`) with the policy "
        "changed; the last row is what the service raised. Replaying the shipped policy gives the service's own "
        "alerts: " + ", ".join(f"{k} {v['replay']}/{v['service']}" for k, v in check.items() if isinstance(v, dict))
        + f" (same open periods: {'yes' if check['all_same'] else 'NO'}). All seeds pooled; patient-bootstrap "
        "95 % intervals.", "",
        *alert_pareto.table_lines(report["pareto"]), "",
        "![Pareto](pareto.png)", "",
        *(alert_fold.lines(report["fold_study"], report["summary"].get("folded")) if "fold_study" in report
          else [])]


def plot_lead_time(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = table[table["event"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    for policy, colour in (("news2", "tab:blue"), ("combined", "tab:red")):
        lead = np.sort(ev[f"lead_{policy}"].fillna(0.0).astype(float).to_numpy())
        if len(lead):
            # survival: fraction of first events warned with at least x hours lead (no warning ≥ 30 min = 0 h)
            xs = np.linspace(0, LOOKBACK.total_seconds() / 3600, 200)
            ax.plot(xs, [(lead >= x).mean() if x > 0 else (lead > 0).mean() for x in xs], label=policy, color=colour)
    ax.axvline(MIN_LEAD.total_seconds() / 3600, color="grey", ls=":", lw=1)
    ax.set_xlabel("lead time before onset (h)")
    ax.set_ylabel("fraction of first events warned with ≥ this lead")
    ax.set_title(f"First events (n={len(ev)}, all seeds): NEWS2 alone vs combined policy")
    ax.set_ylim(0, 1)
    if ax.get_lines()[1:]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


DEFINITIONS: Final[dict[str, str]] = {
    "patient_days": "each patient's monitored time (admission to the horizon, or to transfer out), summed / 24 h",
    "alerts_per_100_patient_days": "alerts raised by the service's alert engine (read back via GET /v1/alerts), "
                                   "by kind and for any kind (combined), × 100 / patient-days",
    "episode": "one patient's alerts of any kind whose open periods [raised_at, resolved_at) overlap or touch are "
               "chained into one episode (an alert never resolved is open until the end of monitoring); an "
               "episode counts once whatever kinds it holds",
    "warning": "for each patient's first ground-truth event: a policy warned if one of its alerts was open at some "
               "time in [onset − 6 h, onset − 30 min]; lead = onset − max(earliest such raised_at, onset − 6 h). "
               "Combined = any kind. Twin-added lead per event = combined lead − NEWS2 lead (0 when not warned)",
    "intervals": f"95 % percentile intervals, {N_BOOT} patient-bootstrap replicates (pooled: all seeds' patients "
                 "resampled together)",
}


def _silent(_: str) -> None:
    """No progress lines (a module-level function: it crosses into a seed's process)."""


def _one_seed(args: tuple[int, float, int, dict[str, float] | None, int], say: Callable[[str], None]) -> SeedRun:
    n_patients, hours, seed, archetype_mix, progress_every = args
    say(f"seed {seed}: {n_patients} patients × {hours:g} h")
    with tempfile.TemporaryDirectory() as tmp:
        run = asyncio.run(run_seed(n_patients, hours, seed, Path(tmp), archetype_mix=archetype_mix,
                                   progress_every=progress_every, say=say))
    say(f"seed {seed}: {len(run.alerts)} alerts, {len(run.events)} first events, {run.readings:,} readings, "
        f"{run.seconds:.0f}s")
    return run


def evaluate(n_patients: int, hours: float, seeds: Sequence[int], out: Path, *,
             archetype_mix: dict[str, float] | None = None, n_boot: int = N_BOOT, progress_every: int = 48,
             say: Callable[[str], None] | None = None, command: str = "", jobs: int = 1) -> dict[str, Any]:
    """Run every seed (``jobs`` at a time, each in its own process: a seed's service is a pure function of its
    cohort, so the runs do not depend on each other), write ``report.json``, ``README.md``, ``lead_time.png``,
    ``pareto.png`` and ``alerts.csv``; return the report."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    say = say or _silent
    args = [(n_patients, hours, seed, archetype_mix, progress_every) for seed in seeds]
    if jobs > 1 and len(seeds) > 1:
        with ProcessPoolExecutor(min(jobs, len(seeds))) as pool:
            runs = list(pool.map(_one_seed, args, [say] * len(args)))
    else:
        runs = [_one_seed(a, say) for a in args]
    tables = {r.seed: patient_table(r) for r in runs}
    pooled = pd.concat(tables.values(), ignore_index=True)
    rng = np.random.default_rng(20260105)
    report: dict[str, Any] = {
        "command": command or f"wardtwin evaluate alert-burden --patients {n_patients} --hours {hours:g} "
                              f"--seeds {','.join(map(str, seeds))} --out {out}",
        "config": {"patients": n_patients, "hours": hours, "seeds": list(seeds), "archetype_mix": archetype_mix,
                   "bootstrap": n_boot, "lookback_h": LOOKBACK.total_seconds() / 3600,
                   "min_lead_h": MIN_LEAD.total_seconds() / 3600},
        "model_version": runs[0].model_version, "twin_threshold": runs[0].twin_threshold,
        "definitions": DEFINITIONS,
        "groups": [f"seed {s}" for s in seeds] + ["pooled"],
        "per_seed": {f"seed {r.seed}": summarise(tables[r.seed], rng, n_boot) | {
            "seconds": r.seconds, "windows": r.windows, "readings": r.readings,
            "charting": {k: v for k, v in r.meta.items() if not k.startswith(("twin_", "_"))}} for r in runs},
        "pooled": summarise(pooled, rng, n_boot),
    }
    say("summary and Pareto table: the service's rules replayed over the stored scores")
    report |= alert_pareto.build(runs, n_boot=n_boot)
    report["definitions"] = {**DEFINITIONS, **alert_policies.DEFINITIONS, **alert_pareto.DEFINITIONS}
    report["seconds"] = time.perf_counter() - t0
    alerts = pd.DataFrame([{"seed": r.seed, **{k: a.get(k) for k in (
        "id", "patient_id", "kind", "window_end", "raised_at", "resolved_at", "state", "risk")}}
        for r in runs for a in r.alerts])
    alerts.to_csv(out / "alerts.csv", index=False)
    pooled.to_csv(out / "patients.csv", index=False)
    plot_lead_time(pooled, out / "lead_time.png")
    alert_pareto.plot(report["pareto"], out / "pareto.png")
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "README.md").write_text(_readme(report))
    return report


def alert_burden_command(*, patients: int, hours: float, seeds: list[int], out: Path, bootstrap: int,
                         progress_every: int, command_line: str, jobs: int = 1) -> int:
    """``wardtwin evaluate alert-burden``: run :func:`evaluate`, print the pooled rates."""
    for noisy in ("app", "simulator", "httpx", "models", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    report = evaluate(patients, hours, seeds, out, n_boot=bootstrap, progress_every=progress_every, say=say,
                      command=command_line, jobs=jobs)
    pooled = report["pooled"]["estimates"]
    sys.stdout.write(f"pooled alerts/100 patient-days: news2 {fmt(pooled['per100d_news2'])}, combined "
                     f"{fmt(pooled['per100d_combined'])}, episodes {fmt(pooled['per100d_episodes'])}; "
                     f"report in {out}\n")
    return 0


def say(text: str) -> None:
    """A progress line on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
