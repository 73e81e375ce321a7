"""``wardtwin evaluate alert-burden-physionet2012``: real ICU stays (PhysioNet 2012 set A) streamed through the
service in process, a five-minute cycle at a time over their 48 h, every alert counted as the service's own alert
engine stored it — the same machinery and definitions as ``wardtwin evaluate alert-burden``
(:mod:`lab.alert_burden`), with real patients instead of simulated ones.

- Readings: each stay's readings that the API's validation accepts (:func:`lab.physionet_cmd.validated`),
  delivered at their charted time (charting latency is not recorded in set A).
- Patients: monitored from admission to 48 h (every set-A stay lasts at least 48 h).
- First event: the stay's first charted 6-hour event (:func:`lab.physionet_eval.charted_events`, the rule of
  the set-A report).
- Stays: the first ``--limit`` of the archive (default 500: 4,000 stays × 576 cycles do not fit a session on two
  cores); the archive order is not chosen by outcome.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from lab import alert_burden as B
from lab import alert_pareto
from lab import physionet2012 as P
from lab import physionet_eval as E
from lab.physionet_cmd import Tally, _fitted_on_these, _skew, validated
from lab.sources_cmd import OUT_OF_FOLD as OUT_OF_FOLD_NAME
from models.schema import ACVPU_CODES, READING_COLUMNS, VITALS
from simulator.devices import QUALITIES
from simulator.patient import PatientStream

HOURS = float(P.STAY_HOURS)


def stay_streams(records: Path, limit: int | None, hours: float = HOURS) -> tuple[list[PatientStream], Tally]:
    """Every stay with at least one accepted reading in its first ``hours``, as a stream delivered at charting
    time."""
    tally = Tally()
    start_ms = int(pd.Timestamp(P.ADMISSION_AT).value // 1_000_000)
    streams: list[PatientStream] = []
    for stay, readings in validated(P.iter_stays(records, limit), tally, _skew()):
        if not readings:
            continue
        frame = pd.DataFrame(readings).loc[:, list(READING_COLUMNS)]
        frame = frame[pd.to_datetime(frame["ts"], utc=True) <= pd.Timestamp(P.ADMISSION_AT) + pd.Timedelta(hours=hours)]
        if frame.empty:
            continue
        ts_ms = pd.to_datetime(frame["ts"], utc=True).dt.as_unit("ms").astype("int64").to_numpy(np.int64)
        order = np.argsort(ts_ms, kind="stable")
        first = E.charted_events(frame).sort_values("onset").head(1)
        events = [{"kind": k, "onset": pd.Timestamp(o)} for k, o in zip(first["kind"], first["onset"], strict=True)]
        streams.append(PatientStream(
            patient={"patient_id": stay.patient_id, "archetype": f"icu type {stay.icu_type}"}, events=events,
            start_ms=start_ms, end_ms=start_ms + int(hours * 3_600_000), ts_ms=ts_ms[order], deliver_ms=ts_ms[order],
            vital=np.asarray([VITALS.index(v) for v in frame["vital"]], dtype=np.int8)[order],
            value=frame["value"].to_numpy(float)[order],
            quality=np.asarray([QUALITIES.index(q) for q in frame["quality"]], dtype=np.int8)[order]))
    return streams, tally


#: Who charted the hourly sets the Pareto replay builds from set A's charted values.
ICU_CHART = "icu-chart"
#: How far back a set looks for each parameter (the set-A report's hourly NEWS2 rule, ``lab.physionet_eval.RULES``).
SET_LOOKBACK_H = {"hr": 1, "rr": 1, "spo2": 1, "sbp": 1, "temp": 1, "acvpu": 12, "o2": 12}
#: The twin's out-of-fold logits on set A (``wardtwin sources``, ``lab.sources_cmd``).
OUT_OF_FOLD = Path("reports/sources") / OUT_OF_FOLD_NAME


def hourly_sets(stream: PatientStream, hours: float = HOURS) -> list[tuple[datetime, dict[str, Any]]]:
    """At each hour end 1..``hours`` of a stay, its charted values as one observation set (``POST
    /v1/observations`` body) with the hour end: per parameter the newest value within the last hour (ACVPU and
    oxygen: 12 h), as the set-A report's hourly NEWS2; a parameter not charted is left out (a partial set); an
    hour with none is no set."""
    start = pd.Timestamp(stream.start_ms, unit="ms", tz="UTC").to_pydatetime()
    ok = stream.quality == QUALITIES.index("ok")
    out = []
    for h in range(1, int(hours) + 1):
        end_ms = stream.start_ms + h * 3_600_000
        body: dict[str, Any] = {}
        for vital, back_h in SET_LOOKBACK_H.items():
            sel = ok & (stream.vital == VITALS.index(vital)) & (stream.ts_ms <= end_ms) \
                & (stream.ts_ms > end_ms - back_h * 3_600_000)
            if sel.any():
                value = float(stream.value[sel][np.argmax(stream.ts_ms[sel])])
                body[vital] = ACVPU_CODES[round(value)] if vital == "acvpu" else value
        if body:
            at = start + timedelta(hours=h)
            out.append((at, {"patient_id": stream.patient["patient_id"], "ts": at.isoformat(), **body,
                             "by": ICU_CHART}))
    return out


def out_of_fold_scores(run: B.SeedRun, path: Path) -> int:
    """Replace the twin's risk in ``run.scores`` by its out-of-fold risk, ``expit(a · logit + c)`` with the
    artifact's calibration map, the logit of the stay's newest hour end at or before the window end (the fold models
    score hour ends 1..48); 0 where no fold model scored. Returns how many scores got an out-of-fold risk."""
    from scipy.special import expit

    oof = pd.read_csv(path, dtype={"record_id": int, "hour": int, "logit": float}).dropna()
    logit = {(int(r), int(h)): float(x) for r, h, x in zip(oof["record_id"], oof["hour"], oof["logit"], strict=True)}
    cal = run.meta["twin_calibration"]
    n = 0
    for pid, scores in run.scores.items():
        rid = E.record_id(pid)
        fresh = []
        for s in scores:
            x = logit.get((rid, int((s.window_end - P.ADMISSION_AT) // timedelta(hours=1))))
            n += x is not None
            fresh.append(dataclasses.replace(s, risk=0.0 if x is None else float(expit(cal["a"] * x + cal["c"]))))
        run.scores[pid] = fresh
    return n


def pareto_on_set_a(run: B.SeedRun, streams: list[PatientStream], in_sample: str | None, hours: float, *,
                    n_boot: int, out_of_fold: Path) -> dict[str, Any]:
    """The Pareto table on set A (``lab.alert_pareto``, the shipped policy replayed): charted NEWS2 on hourly sets
    built from the stays' charted values (which the service did not see: it got the readings), monitor-derived NEWS2
    under each persistence, the twin at several thresholds — out of fold when it was fitted on these stays (its
    out-of-fold logits), left out when those are missing."""
    check = alert_pareto.replay_check([run])  # the service's own alerts, before the study changes anything
    note = "the twin as served (not fitted on these records)"
    if in_sample:
        if not out_of_fold.exists():
            return {"left_out": f"the twin was fitted on these records ({in_sample}) and its out-of-fold logits "
                                f"({out_of_fold}) are missing: no twin number on set A here", "replay_check": check}
        n = out_of_fold_scores(run, out_of_fold)
        note = (f"out of fold: the twin was fitted on these records ({in_sample}); every score's risk is the "
                f"out-of-fold risk of its stay's newest hour end ({n} scores; {out_of_fold})")
    run.charted = {s.patient["patient_id"]: hourly_sets(s, hours) for s in streams}
    return alert_pareto.build([run], n_boot=n_boot, shipped="replay", charted_label="charted NEWS2 (hourly sets)") \
        | {"twin_risk": note, "replay_check": check}


def evaluate(records: Path, limit: int | None, out: Path, *, hours: float = HOURS, n_boot: int = B.N_BOOT,
             progress_every: int = 48, say: Any = lambda _: None, command: str = "",
             out_of_fold: Path = OUT_OF_FOLD, alert_settings: dict[str, str] | None = None) -> dict[str, Any]:
    streams, tally = stay_streams(records, limit, hours)
    say(f"set A: {tally.stays} stays read, {len(streams)} with readings; streaming {hours:g} h through the service")
    with tempfile.TemporaryDirectory() as tmp:
        run = asyncio.run(B.run_streams(streams, hours, 0, Path(tmp), start=pd.Timestamp(P.ADMISSION_AT),
                                        progress_every=progress_every, say=say, alert_settings=alert_settings))
    table = B.patient_table(run)
    summary = B.summarise(table, np.random.default_rng(20120101), n_boot)
    in_sample = _fitted_on_these({"cohort": run.meta.get("twin_cohort")}, records)
    say("Pareto table on set A: the shipped rules replayed")
    set_a = pareto_on_set_a(run, streams, in_sample, hours, n_boot=n_boot, out_of_fold=out_of_fold)
    report = {"command": command, "scope": f"PhysioNet/CinC Challenge 2012 records {records.name}"
                                           + (f", the first {limit} stays" if limit is not None else "")
                                           + f": {tally.stays} stays read, {len(streams)} with an accepted reading",
              "model_version": run.model_version, "twin_threshold": run.twin_threshold,
              "twin_training_data": E.training_data({"cohort": run.meta.get("twin_cohort")}),
              "twin_in_sample": in_sample,
              "definitions": {**B.DEFINITIONS, "first event": "the stay's first charted 6-hour event "
                              "(lab.physionet_eval.charted_events)",
                              "patient-days": f"{hours:g} h per stay (admission to the end of the streamed span)"},
              "readings": run.readings, "windows": run.windows, "seconds": run.seconds, "pooled": summary,
              "pareto_set_a": set_a}
    if alert_settings:  # not the shipped policy: said in the report
        report["alert_settings"] = dict(alert_settings)
    write(report, table, run.alerts, out)
    return report


#: The set-A fold study's alerts, one a row (written by ``write``; regenerated, not committed).
FOLD_ALERTS_CSV: Final[str] = "fold_study_alerts.csv"


def write(report: dict[str, Any], table: pd.DataFrame, alerts: list[dict[str, Any]], out: Path) -> None:
    """``report.json``, ``README.md``, ``lead_time.png``, ``patients.csv`` and ``alerts.csv`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    study = (report.get("pareto_set_a") or {}).get("fold_study") or {}
    if "alerts" in study:  # the fold study's alert-by-alert list (~900 rows on 250 stays): a CSV beside, not the JSON
        pd.DataFrame(study.pop("alerts")).to_csv(out / FOLD_ALERTS_CSV, index=False)
        study["alerts_in"] = FOLD_ALERTS_CSV
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "README.md").write_text("\n".join([
        "# Alert burden and lead time on real ICU stays: the service's own alert engine", "",
        f"`{report['command']}`. {report['scope']}. Each stay's accepted readings are delivered at their charted "
        "time to the service in process and the five-minute cycle runs at every window end of the streamed span; "
        "every alert is read back through `GET /v1/alerts`. Patient-bootstrap 95 % intervals.", "",
        *([f"**Not the shipped alert policy**: the service ran with "
           f"{', '.join(f'`{k}={v}`' for k, v in report['alert_settings'].items())} (`--alert-settings`).", ""]
          if report.get("alert_settings") else []),
        *(f"- {line}" for line in summary_lines(report)), "",
        "Definitions: `report.json` (`definitions`) and `lab/alert_burden.py` (the simulator's report uses the same "
        "code). ICU stays are sicker than a ward's patients. The service got each stay's readings (no charted "
        "set), so it raised no `news2` alert; the Pareto table below adds hourly charted sets.", "",
        "![lead time](lead_time.png)", "", *pareto_lines(report.get("pareto_set_a") or {})]), encoding="utf-8")
    B.plot_lead_time(table, out / "lead_time.png")
    table.to_csv(out / "patients.csv", index=False)
    pd.DataFrame([{k: a.get(k) for k in ("id", "patient_id", "kind", "window_end", "raised_at", "resolved_at",
                                          "state", "risk")} for a in alerts]).to_csv(out / "alerts.csv", index=False)


def pareto_lines(p: dict[str, Any]) -> list[str]:
    """The set-A Pareto section of the README."""
    lines = ["## Pareto table on set A", ""]
    if "left_out" in p:
        return [*lines, f"Left out: {p['left_out']}.", ""]
    if "pareto" not in p:
        return []
    s = p["summary"]
    check = p["replay_check"]
    return [*lines,
            "Charted NEWS2 here is `decide_charted` on hourly sets built from each stay's charted values (the newest "
            "value within the hour; ACVPU and oxygen within 12 h; partial sets score missing parameters 0), which "
            "the service did not see (it got the readings); every row, the shipped one included, is the service's "
            "rules replayed over its stored scores and those sets. Set A has no monitor stream: its five-minute "
            "windows hold the charted values (about hourly, not carried), so a rule that must hold in every window "
            f"for an hour rarely can. Twin risk: {p['twin_risk']}. The replay of "
            "the service's own run gives its alerts: " + ", ".join(
                f"{k} {v['replay']}/{v['service']}" for k, v in check.items() if isinstance(v, dict))
            + f" (same open periods: {'yes' if check['all_same'] else 'NO'}).", "",
            *alert_pareto.table_lines(p["pareto"]), "",
            f"Missed vs charted NEWS2 (first events the hourly charted NEWS2 warned of and the shipped policy did "
            f"not): {s['missed_vs_charted_news2']}.", ""]


#: Policies whose numbers depend on the twin's risk: labelled in sample when the twin was fitted on these stays.
TWIN_POLICIES = ("twin", "combined")


def summary_lines(report: dict[str, Any]) -> list[str]:
    p = report["pooled"]
    est = p["estimates"]
    in_sample = report.get("twin_in_sample")

    def name(k: str) -> str:
        return f"{k} (IN SAMPLE)" if in_sample and k in TWIN_POLICIES else k

    lines = [f"{report['scope']}; twin {report['model_version']} at {report['twin_threshold']:g}, trained on "
             f"{report.get('twin_training_data', '?')}; {p['patients']} stays, {p['patient_days']:.0f} "
             f"patient-days, {p['first_events']} first events."]
    if in_sample:
        lines.append(f"IN SAMPLE: the twin was fitted on these records ({in_sample}), so every number of the twin "
                     "and of the combined policy below is in sample (optimistic), not a measure of performance; "
                     "NEWS2 and criteria numbers are not affected.")
    return [
        *lines,
        "alerts per 100 patient-days: " + ", ".join(f"{name(k)} {B.fmt(est[f'per100d_{k}'])}" for k in B.POLICIES)
        + f"; episodes{' (IN SAMPLE)' if in_sample else ''} {B.fmt(est['per100d_episodes'])}",
        "first events warned >= 30 min ahead: " + ", ".join(
            f"{name(k)} {B.fmt(est[f'sens_{k}'], 100, 0)} %" for k in B.POLICIES)
        + f"; lead added over the news2 alerts per event{' (IN SAMPLE)' if in_sample else ''}, mean "
          f"{B.fmt(est['lead_gain_mean_h'], 1, 2)} h",
        "stays without an event that got an alert: " + ", ".join(
            f"{name(k)} {p['stable_patients_alerted'][k]}/{p['stable_patients']}" for k in B.POLICIES)]


def alert_burden_physionet_command(*, records: Path, limit: int | None, hours: float, out: Path, bootstrap: int,
                                    progress_every: int, command_line: str,
                                    alert_settings: dict[str, str] | None = None) -> int:
    """``wardtwin evaluate alert-burden-physionet2012``: run :func:`evaluate`, print the summary."""
    for noisy in ("app", "simulator", "httpx", "models", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    report = evaluate(records, limit, out, hours=hours, n_boot=bootstrap, progress_every=progress_every, say=B.say,
                      command=command_line, alert_settings=alert_settings)
    for line in summary_lines(report):
        sys.stdout.write(line + "\n")
    return 0


__all__ = ["alert_burden_physionet_command", "evaluate", "stay_streams", "summary_lines", "write"]
