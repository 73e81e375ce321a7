"""The summary and the Pareto table of ``wardtwin evaluate alert-burden``: which alerts a ward would keep.

From the seeds' runs (:class:`lab.alert_burden.SeedRun`: the alerts the service raised, the scores it stored, the
charted sets of the simulated nurse):

- **summary** (the issue's "what it must show"): alerts per 100 patient-days by kind and combined, as the service
  raised them; ``beyond_charted_news2`` (every alert charted NEWS2 would not have raised: all kinds but ``news2``);
  ``first_event_warned``, ``chance_warned`` and their difference per policy; ``missed_vs_charted_news2`` (first
  events the charted-NEWS2 reference warned of that the shipped policy did not); the targets, met or missed.
- **Pareto table**: the same three numbers for charted NEWS2 at the RCP frequency, monitor NEWS2 under each
  persistence, the twin at several thresholds, and the shipped policy. Every row but the shipped one is computed
  post hoc by ONE pure function, the service's own ``app.alerts.rules.decide``, replayed over the same stored
  scores (:mod:`lab.alert_replay`) with the policy changed; the shipped row is what the service raised.

The charted-NEWS2 reference (``charted_news2``) is ``decide`` on one score per charted set (its NEWS2 only; no risk,
no criteria), so an alert opens at a set scoring ≥ 5 or a single 3 and resolves at the next set below both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from app.alerts.rules import ChartedSet, fold_header
from app.alerts.store import KINDS
from app.ingest_observations import parse_observation
from lab import alert_fold
from lab import alert_policies as AP
from lab import alert_replay as R
from models.news2 import News2Summary

#: The twin thresholds the Pareto table replays (the shipped one is added).
TWIN_THRESHOLDS: Final[tuple[float, ...]] = (0.02, 0.03, 0.05, 0.1, 0.2, 0.3)
#: Persistence rules (minutes a monitor-derived NEWS2 trigger must hold) the table replays.
PERSISTENCE_MIN: Final[tuple[int, ...]] = (5, 15, 30, 60)

DEFINITIONS: Final[dict[str, str]] = {
    "beyond_charted_news2": "alerts of every kind but news2 (obs_due, twin, criteria) per 100 patient-days: what "
                            "charted NEWS2 at the RCP frequency would not have raised",
    "charted_news2": "the RCP reference: app.alerts.rules.decide_charted on the charted sets alone (a set scoring "
                     "≥ 5, ≥ 7 or a single 3 raises; one below every trigger resolves)",
    "missed_vs_charted_news2": "first events charted_news2 warned of that the shipped policy (every alert the "
                               "service raised) did not",
    "pareto": "each row but the shipped one: the service's rules (decide / decide_charted) replayed over the scores "
              "and charted sets the service stored, with the policy changed (lab.alert_replay)",
    "folded": "rules that held long enough to raise while the patient had an open, unacknowledged alert of a more "
              "urgent kind (KINDS order news2, criteria, obs_due, twin), recorded on that alert instead of raised "
              "(Policy.fold, shipped 'less_urgent'): counted by the shipped policy replayed over what the service "
              "stored (which reproduces its alerts: replay_check), and as the header lines found in the reasons of "
              "the alerts the service raised",
    "fold_study": "every alert beyond charted NEWS2 that the rules raise with folding off, one by one, and the "
                  "candidate rules compared (lab.alert_fold)",
}

TARGETS: Final[dict[str, str]] = {
    "beyond_charted_news2": "beyond_charted_news2 ≤ 10 alerts per 100 patient-days",
    "added_warning": "(combined warned − chance) ≥ (charted NEWS2 warned − chance) + 0.05",
    "missed_vs_charted_news2": "missed_vs_charted_news2 = 0",
}


def _key(seed: int, pid: str) -> str:
    return f"{seed}/{pid}"


def patients_of(runs: Sequence[Any]) -> list[AP.Patient]:
    """Every patient of every seed (ids ``seed/patient``), with the first event's onset."""
    out = []
    for run in runs:
        onsets = {e["patient_id"]: e["onset"] for e in run.events}
        out += [AP.Patient(_key(run.seed, p["patient_id"]), p["start"], p["end"], onsets.get(p["patient_id"]))
                for p in run.patients]
    return out


def service_spans(runs: Sequence[Any], kinds: Sequence[str]) -> dict[str, list[tuple[datetime, datetime | None]]]:
    out: dict[str, list[tuple[datetime, datetime | None]]] = {}
    for run in runs:
        out |= {_key(run.seed, pid): s for pid, s in AP.spans_of(run.alerts, kinds).items()}
    return out


def charted_sets(run: Any) -> dict[str, list[R.Posted]]:
    """The nurse's accepted sets as the rules saw them (``app.ingest_observations.parse_observation``, the route's
    own parser), each with the clock time it was posted (parsed once per run)."""
    cached = run.meta.get("_charted_sets")
    if cached is not None and cached[0] is run.charted:
        return cached[1]
    out: dict[str, list[R.Posted]] = {}
    for pid, sets in run.charted.items():
        for posted_at, body in sets:
            obs = parse_observation(body, posted_at, timedelta(days=1))
            if isinstance(obs, list):
                raise ValueError(f"a set the service accepted does not parse here: {obs}")
            out.setdefault(pid, []).append((posted_at, ChartedSet(
                obs.patient_id, obs.ts, News2Summary.of(obs.news2), by=obs.by or "", missing=obs.missing)))
    run.meta["_charted_sets"] = (run.charted, out)
    return out


def replayed(runs: Sequence[Any], policy_of: Any, kinds: Sequence[str], *, scores: bool = True
             ) -> dict[str, list[tuple[datetime, datetime | None]]]:
    """Per patient (all seeds), the spans of ``kinds`` the rules raise over the run's charted sets and (``scores``)
    its stored scores, under ``policy_of(run)``."""
    out: dict[str, list[tuple[datetime, datetime | None]]] = {}
    for run in runs:
        spans = R.replay(run.scores if scores else {}, charted_sets(run), policy_of(run), run.grace)
        out |= {_key(run.seed, pid): s for pid, s in R.of_kinds(spans, kinds).items()}
    return out


def _kinds_raised(runs: Sequence[Any]) -> list[str]:
    seen = {a["kind"] for r in runs for a in r.alerts}
    return [*KINDS, *sorted(seen - set(KINDS))]


def replay_check(runs: Sequence[Any]) -> dict[str, Any]:
    """The shipped policy replayed over the stored scores and charted sets against what the service raised, per
    kind: alerts counted both ways and whether every open period is the same."""
    out: dict[str, Any] = {}
    everything: dict[str, R.KindSpans] = {}
    for run in runs:
        everything[str(run.seed)] = R.replay(run.scores, charted_sets(run), run.policy, run.grace)
    for kind in _kinds_raised(runs):
        ours = {_key(int(seed), pid): sorted(by_kind[kind], key=lambda s: s[0])
                for seed, spans in everything.items() for pid, by_kind in spans.items() if by_kind.get(kind)}
        theirs = {k: sorted(v, key=lambda s: s[0]) for k, v in service_spans(runs, [kind]).items() if v}
        out[kind] = {"service": sum(map(len, theirs.values())), "replay": sum(map(len, ours.values())),
                     "same_open_periods": ours == theirs}
    out["all_same"] = all(v["same_open_periods"] for v in out.values())
    return out


def build(runs: Sequence[Any], *, n_boot: int, seed: int = 20260105, shipped: str = "service",
          charted_label: str = "charted NEWS2 (RCP frequency)") -> dict[str, Any]:
    """``summary`` and ``pareto`` (JSON-ready) of the seeds' runs. ``shipped``: ``"service"``, the shipped policy's
    alerts as the service raised them (and the replay checked against them); ``"replay"``, the shipped policy
    replayed over the runs' scores and charted sets (when the study changed either after the service ran, e.g. a
    twin's out-of-fold risk, or sets the service never saw)."""
    patients = patients_of(runs)
    pseudo = AP.pseudo_onsets(patients, seed)  # times since admission drawn from every seed's first events
    est = AP.Estimator(patients, n_boot, seed)
    kinds = _kinds_raised(runs)
    cols: dict[str, AP.PolicyColumns] = {}
    replay_all = {} if shipped == "service" else {
        _key(run.seed, pid): by_kind for run in runs
        for pid, by_kind in R.replay(run.scores, charted_sets(run), run.policy, run.grace).items()}
    for name, chosen in ({"combined": kinds, "beyond_charted_news2": [k for k in kinds if k != "news2"]}
                         | {k: [k] for k in kinds}).items():
        spans = service_spans(runs, chosen) if shipped == "service" else R.of_kinds(replay_all, chosen)
        cols[name] = AP.columns(patients, spans, pseudo)
    cols["charted_news2"] = AP.columns(patients, replayed(runs, lambda r: r.policy, ["news2"], scores=False), pseudo)

    per100 = {k: est.estimates(cols[k])["per100d"] for k in (*kinds, "combined")}
    beyond = est.estimates(cols["beyond_charted_news2"])["per100d"]
    policies = ("combined", "charted_news2", *kinds)
    warned = {k: est.estimates(cols[k]) for k in policies}
    added = est.difference(cols["combined"], cols["charted_news2"], "warned_minus_chance")
    missed = AP.missed(patients, cols["charted_news2"], cols["combined"])
    summary: dict[str, Any] = {
        "patients": len(patients), "patient_days": float(est.days.sum()), "first_events": int(est.event.sum()),
        "alerts": {k: int(cols[k].alerts.sum()) for k in (*kinds, "combined", "beyond_charted_news2",
                                                           "charted_news2")},
        "alerts_per_100_patient_days": per100,
        "beyond_charted_news2": beyond,
        "first_event_warned": {k: warned[k]["warned"] for k in policies},
        "chance_warned": {k: warned[k]["chance"] for k in policies},
        "warned_minus_chance": {k: warned[k]["warned_minus_chance"] for k in policies},
        "combined_minus_charted_news2_added_warning": added,
        "missed_vs_charted_news2": len(missed),
        "missed_vs_charted_news2_patients": missed,
        "charted_news2_reference_alerts_per_100_patient_days": est.estimates(cols["charted_news2"])["per100d"],
    }
    fold = alert_fold.study(runs, patients, pseudo, est, cols["charted_news2"], charted_sets)
    by_name = {c["policy"]: c for c in fold["candidates"]}
    shipped_fold = by_name[f"fold {runs[0].policy.fold}"] if runs else None
    summary["folded"] = {
        "policy_fold": runs[0].policy.fold if runs else None,
        "by_kind": shipped_fold["folded"] if shipped_fold else {},
        "recorded_on_service_alerts": {k: sum(fold_header(k) in a.get("reasons", ()) for r in runs for a in r.alerts)
                                       for k in alert_fold.BEYOND} if shipped == "service" else None,
        "beyond_charted_news2_without_fold": by_name["fold off"]["beyond_charted_news2"],
        "alerts_beyond_without_fold": by_name["fold off"]["alerts_beyond"],
    }
    summary["targets"] = targets(summary)
    summary["shipped_alerts_from"] = shipped
    out = {"summary": summary, "pareto": pareto(runs, patients, pseudo, est, cols, shipped, charted_label,
                                                fold["candidates"]),
           "fold_study": fold}
    return out | ({"replay_check": replay_check(runs)} if shipped == "service" else {})


def targets(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's three targets against the summary, each met or missed with its numbers."""
    beyond, added = s["beyond_charted_news2"], s["combined_minus_charted_news2_added_warning"]
    return [
        {"target": TARGETS["beyond_charted_news2"], "value": beyond["value"], "ci95": beyond["ci95"],
         "met": beyond["value"] is not None and beyond["value"] <= 10.0},
        {"target": TARGETS["added_warning"], "value": added["value"], "ci95": added["ci95"],
         "combined_warned_minus_chance": s["warned_minus_chance"]["combined"]["value"],
         "charted_news2_warned_minus_chance": s["warned_minus_chance"]["charted_news2"]["value"],
         "met": added["value"] is not None and added["value"] >= 0.05},
        {"target": TARGETS["missed_vs_charted_news2"], "value": s["missed_vs_charted_news2"],
         "met": s["missed_vs_charted_news2"] == 0},
    ]


def pareto(runs: Sequence[Any], patients: Sequence[AP.Patient], pseudo: Mapping[str, Sequence[datetime]],
           est: AP.Estimator, cols: Mapping[str, AP.PolicyColumns], shipped_from: str = "service",
           charted_label: str = "charted NEWS2 (RCP frequency)",
           folds: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Rows: charted NEWS2, monitor NEWS2 per persistence and the twin per threshold (each rule on its own: fold off,
    so an alert is counted whatever else is open), every kind under each fold rule (``folds``:
    :func:`lab.alert_fold.candidates`), the shipped policy."""
    rows: list[dict[str, Any]] = []

    def row(name: str, how: str, c: AP.PolicyColumns, short: str) -> None:
        rows.append({"policy": name, "short": short, "how": how, **est.estimates(c)})

    row(charted_label, "decide_charted on the charted sets alone", cols["charted_news2"], "charted NEWS2")
    shipped = runs[0].policy
    # the monitor-derived trigger at the RCP ward triggers (≥ 5 or a single 3) and at the shipped one
    triggers = list(dict.fromkeys([(5, 3), (shipped.obs_due_aggregate, shipped.obs_due_single_parameter)]))
    for aggregate, single in triggers:
        said = f"≥ {aggregate}" + (f" or a single {single}" if single <= 3 else "")  # 4: the single trigger is off
        for m in PERSISTENCE_MIN:
            change = {"obs_due_after": timedelta(minutes=m), "obs_due_aggregate": aggregate,
                      "obs_due_single_parameter": single, "fold": "off"}
            row(f"monitor NEWS2 {said}, every window for {m} min (obs_due)",
                f"decide over the stored scores and charted sets, obs_due_after {m} min, trigger {said}",
                AP.columns(patients, replayed(runs, lambda r, c=change: R.variant(r.policy, **c), ["obs_due"]),
                           pseudo),
                f"monitor {said} {m} min")
    ratio = shipped.clear_threshold / shipped.threshold if shipped.threshold else 1.0
    for t in sorted({*TWIN_THRESHOLDS, round(float(shipped.threshold), 6)}):
        change = {"threshold": t, "clear_threshold": t * ratio, "fold": "off"}
        row(f"twin ≥ {t:g}, {shipped.twin_sustain_windows} windows", f"decide over the stored scores, threshold {t:g}, "
            f"clear below {t * ratio:.3g}", AP.columns(
                patients, replayed(runs, lambda r, c=change: R.variant(r.policy, **c), ["twin"]), pseudo),
            f"twin {t:g}")
    for c in folds:
        rows.append({"policy": f"all kinds, {c['policy']}", "short": c["policy"].split(" while")[0],
                     "how": "decide / decide_charted over the stored scores and charted sets, any kind"
                            + ("" if c["policy"].startswith("fold ") else "; then the twin alerts raised while a "
                               "charted news2 alert of grade ≥ 2 was open dropped"), **c["estimates"]})
    if shipped_from == "service":
        row("shipped policy (as the service raised it)", "every alert the service raised, any kind", cols["combined"],
            "shipped")
    else:
        row("shipped policy (replayed)", "the shipped Policy replayed over the scores and sets, any kind",
            cols["combined"], "shipped")
    return {"rows": rows,
            "columns": {"per100d": "alerts per 100 patient-days", "warned": "first events warned ≥ 30 min ahead",
                        "chance": "chance warned (pseudo-onsets of event-free patients)",
                        "warned_minus_chance": "warned − chance",
                        "patients_alerted": "share of patients with at least one alert"}}


def table_lines(p: Mapping[str, Any]) -> list[str]:
    """The Pareto table in Markdown."""
    lines = ["| policy | alerts / 100 patient-days | first events warned ≥ 30 min | chance warned | warned − chance "
             "| patients alerted |", "|---|---|---|---|---|---|"]
    for r in p["rows"]:
        lines.append(f"| {r['policy']} | {AP.fmt(r['per100d'])} | {AP.fmt(r['warned'], 1, 2)} | "
                     f"{AP.fmt(r['chance'], 1, 2)} | {AP.fmt(r['warned_minus_chance'], 1, 2)} | "
                     f"{AP.fmt(r['patients_alerted'], 1, 2)} |")
    return [*lines, "", "Alerts count raises: a low threshold holds one alert open for hours where a higher one "
                        "raises, clears and raises again, so the count need not fall as the threshold rises; "
                        "*patients alerted* (share with at least one alert) and *chance warned* show the time under "
                        "alert."]


def summary_lines(s: Mapping[str, Any]) -> list[str]:
    """The summary and the targets in Markdown."""
    per100 = s["alerts_per_100_patient_days"]
    lines = [f"{s['patients']} patients, {s['patient_days']:.1f} patient-days, {s['first_events']} first events.", "",
             "| alerts / 100 patient-days | " + " | ".join(per100) + " | beyond charted NEWS2 |",
             "|---|" + "---|" * (len(per100) + 1),
             "| | " + " | ".join(AP.fmt(v) for v in per100.values()) + f" | {AP.fmt(s['beyond_charted_news2'])} |", "",
             "| policy | first events warned | chance warned | warned − chance |", "|---|---|---|---|"]
    for k in s["first_event_warned"]:
        lines.append(f"| {k} | {AP.fmt(s['first_event_warned'][k], 1, 2)} | {AP.fmt(s['chance_warned'][k], 1, 2)} "
                     f"| {AP.fmt(s['warned_minus_chance'][k], 1, 2)} |")
    lines += ["", "**Targets**", ""]
    for t in s["targets"]:
        ci = f" ({t['ci95'][0]:.2f}–{t['ci95'][1]:.2f})" if t.get("ci95") else ""
        value = t["value"] if isinstance(t["value"], int) else (
            "–" if t["value"] is None else f"{t['value']:.2f}")
        lines.append(f"- {t['target']}: **{value}**{ci} — {'met' if t['met'] else 'MISSED'}")
    return lines


def plot(p: Mapping[str, Any], path: Path) -> None:
    """Warned − chance against alerts per 100 patient-days, one point per Pareto row (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for r in p["rows"]:
        x, y = r["per100d"]["value"], r["warned_minus_chance"]["value"]
        if x is None or y is None:
            continue
        marker = "*" if r["policy"].startswith("shipped") else "s" if r["policy"].startswith("charted") else "o"
        ax.plot(max(x, 0.1), y, marker, ms=10 if marker == "*" else 6)
        ax.annotate(r.get("short", r["policy"]), (max(x, 0.1), y), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    ax.axvline(10, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("alerts per 100 patient-days (log; 0 drawn at 0.1); dotted: the 10 / 100 patient-day budget")
    ax.set_ylabel("first events warned − chance warned")
    ax.set_title("Alert policies on the simulated ward (all seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["DEFINITIONS", "PERSISTENCE_MIN", "TARGETS", "TWIN_THRESHOLDS", "build", "plot", "replay_check",
           "summary_lines", "table_lines"]
