"""Which alerts beyond charted NEWS2 earn their interruption, and what folding them into an open alert costs
(``app.alerts.rules.Policy.fold``; part of ``wardtwin evaluate alert-burden``).

From the seeds' runs (:class:`lab.alert_burden.SeedRun`), the service's rules replayed over the stored scores and
charted sets (:mod:`lab.alert_replay`):

- **one by one**: every alert beyond charted NEWS2 (kinds ``criteria``, ``obs_due``, ``twin``) that the rules raise
  with folding off, with what was already open for the patient when it was raised (kind; a ``news2`` alert's RCP
  grade at that moment), the minutes to the nearest charted ``news2`` raise, whether it warned of the patient's first
  event (open in ``[onset − 6 h, onset − 30 min]``) or fired on an event-free patient, a verdict, and what the
  shipped fold does with it (raised, or recorded on which open alert).
- **candidates**: the shipped rules with each fold (``rules.FOLDS``), and "twin suppressed while a charted ``news2``
  alert of grade ≥ 2 is open" (post hoc: the fold-off twin alerts raised inside such an alert dropped): alerts
  beyond charted NEWS2, combined warned − chance, its margin over charted NEWS2, first events missed against charted
  NEWS2, rules folded. Same patient-bootstrap replicates as the Pareto table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from app.alerts.rules import FOLDS, charted_grade
from app.alerts.store import KINDS
from lab import alert_policies as AP
from lab import alert_replay as R

#: Verdicts on one alert beyond charted NEWS2 (``verdict`` of a row).
VERDICTS: Final[dict[str, str]] = {
    "first_warning": "warned of the first event ≥ 30 min ahead, nothing else open: earns its interruption",
    "repeat_warning": "warned of the first event, but another alert of the patient was already open",
    "at_event": "raised within 30 min of the event or after it (the ward hears of a deterioration under way)",
    "event_free": "on a patient with no event in the stay",
    "other": "on a patient with an event, but more than 6 h before it",
}
BEYOND: Final[tuple[str, ...]] = tuple(k for k in KINDS if k != "news2")


def _key(seed: int, pid: str) -> str:
    return f"{seed}/{pid}"


def _open_at(spans: Sequence[tuple[datetime, datetime | None]], t: datetime) -> tuple[datetime, datetime | None] | None:
    return next(((a, b) for a, b in spans if a <= t and (b is None or b > t)), None)


def _grade_at(raised: datetime, t: datetime, sets: Sequence[R.Posted], policy: Any) -> int:
    """The grade of the ``news2`` alert raised at ``raised`` as it stands at ``t``: the highest grade of the sets
    posted in between (the rules raise at the first and escalate only to a higher grade)."""
    return max((charted_grade(c.news2, policy) for at, c in sets if raised <= at <= t), default=0)


#: a run's charted sets as the rules see them (``lab.alert_pareto.charted_sets``)
SetsOf = Callable[[Any], Mapping[str, Sequence[R.Posted]]]


def per_alert(runs: Sequence[Any], onsets: Mapping[str, datetime | None], charted_sets: SetsOf
              ) -> list[dict[str, Any]]:
    """Every alert beyond charted NEWS2 the rules raise with folding off, one row each (module docstring)."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        sets = charted_sets(run)
        off = R.variant(run.policy, fold="off")
        spans_off = R.replay(run.scores, sets, off, run.grace)
        folded: dict[str, R.Folds] = {}
        spans_on = R.replay(run.scores, sets, run.policy, run.grace, folded)
        for pid, by_kind in spans_off.items():
            onset = onsets.get(_key(run.seed, pid))
            news2 = sorted(by_kind.get("news2", []), key=lambda s: s[0])
            for kind in BEYOND:
                for raised, resolved in by_kind.get(kind, []):
                    already = []
                    for other in KINDS:
                        span = _open_at(by_kind.get(other, []), raised) if other != kind else None
                        if span is not None:
                            grade = _grade_at(span[0], raised, sets.get(pid, ()), run.policy) if other == "news2" \
                                else None
                            already.append(other if grade is None else f"news2 grade {grade}")
                    nearest = min(((n - raised).total_seconds() / 60 for n, _ in news2), key=abs, default=None)
                    warned = onset is not None and AP.lead_h([(raised, resolved)], onset) is not None
                    if onset is None:
                        verdict = "event_free"
                    elif warned:
                        verdict = "first_warning" if not already else "repeat_warning"
                    elif raised > onset - AP.MIN_LEAD:
                        verdict = "at_event"
                    else:
                        verdict = "other"
                    mine = spans_on.get(pid, {})
                    if any(a == raised for a, _ in mine.get(kind, [])):
                        fate = "raised"
                    elif raised in folded.get(pid, {}).get(kind, []):
                        host = [k for k in KINDS if _open_at(mine.get(k, []), raised) is not None
                                or any(a == raised for a, _ in mine.get(k, []))]
                        fate = "folded into " + (host[0] if host else "an open alert")
                    elif any(t < raised for t in folded.get(pid, {}).get(kind, [])):
                        fate = "not raised (recorded earlier on an alert still open)"
                    else:
                        fate = "not raised"
                    rows.append({
                        "seed": run.seed, "patient_id": pid, "kind": kind, "raised_at": raised.isoformat(),
                        "resolved_at": resolved.isoformat() if resolved else None, "already_open": already,
                        "minutes_to_nearest_charted_news2": None if nearest is None else round(nearest, 1),
                        "event": onset is not None,
                        "minutes_before_onset": None if onset is None
                        else round((onset - raised).total_seconds() / 60, 1),
                        "warned_first_event": warned, "verdict": verdict, "shipped_fold": fate})
    return sorted(rows, key=lambda r: (r["seed"], r["patient_id"], r["raised_at"]))


def candidates(runs: Sequence[Any], patients: Sequence[AP.Patient], pseudo: Mapping[str, Sequence[datetime]],
               est: AP.Estimator, charted: AP.PolicyColumns, charted_sets: SetsOf) -> list[dict[str, Any]]:
    """The shipped rules under each fold, and twin suppressed during a charted ``news2`` alert of grade ≥ 2."""
    variants: dict[str, tuple[dict[str, R.KindSpans], dict[str, int]]] = {}
    for fold in FOLDS:
        flat: dict[str, R.KindSpans] = {}
        counts = dict.fromkeys(BEYOND, 0)
        for run in runs:
            folded: dict[str, R.Folds] = {}
            spans = R.replay(run.scores, charted_sets(run), R.variant(run.policy, fold=fold), run.grace, folded)
            flat |= {_key(run.seed, pid): by_kind for pid, by_kind in spans.items()}
            for per in folded.values():
                for kind, times in per.items():
                    counts[kind] = counts.get(kind, 0) + len(times)
        variants[f"fold {fold}"] = (flat, counts)
    # (c) post hoc: the fold-off twin alerts raised while a charted news2 alert of grade >= 2 was open, dropped
    off = variants["fold off"][0]
    sets = {_key(run.seed, pid): s for run in runs for pid, s in charted_sets(run).items()}
    policy = runs[0].policy if runs else None
    suppressed: dict[str, R.KindSpans] = {}
    dropped = 0
    for key, by_kind in off.items():
        kept = []
        for raised, resolved in by_kind.get("twin", []):
            span = _open_at(by_kind.get("news2", []), raised)
            if span is not None and _grade_at(span[0], raised, sets.get(key, ()), policy) >= 2:
                dropped += 1
            else:
                kept.append((raised, resolved))
        suppressed[key] = {**by_kind, "twin": kept}
    variants["twin suppressed while a charted news2 alert of grade ≥ 2 is open"] = (suppressed, {"twin": dropped})
    out = []
    for name, (flat, counts) in variants.items():
        cols = AP.columns(patients, R.of_kinds(flat, KINDS), pseudo)
        beyond = AP.columns(patients, R.of_kinds(flat, BEYOND), pseudo)
        e = est.estimates(cols)
        out.append({"policy": name, "estimates": e, "beyond_charted_news2": est.estimates(beyond)["per100d"],
                    "alerts_beyond": int(beyond.alerts.sum()), "combined": e["per100d"],
                    "warned_minus_chance": e["warned_minus_chance"],
                    "added_over_charted_news2": est.difference(cols, charted, "warned_minus_chance"),
                    "missed_vs_charted_news2": len(AP.missed(patients, charted, cols)), "folded": counts})
    return out


def study(runs: Sequence[Any], patients: Sequence[AP.Patient], pseudo: Mapping[str, Sequence[datetime]],
          est: AP.Estimator, charted: AP.PolicyColumns, charted_sets: SetsOf) -> dict[str, Any]:
    """Both parts (module docstring), JSON-ready; ``charted_sets``: a run's charted sets as the rules see them."""
    rows = per_alert(runs, {p.patient_id: p.onset for p in patients}, charted_sets)
    tally: dict[str, int] = {}
    for r in rows:
        tally[r["verdict"]] = tally.get(r["verdict"], 0) + 1
    return {"alerts": rows, "verdicts": tally, "verdict_meaning": VERDICTS,
            "candidates": candidates(runs, patients, pseudo, est, charted, charted_sets)}


def lines(fold: Mapping[str, Any], folded: Mapping[str, Any] | None = None) -> list[str]:
    """The study in Markdown: what the ward no longer hears, the candidates, then the alerts one by one."""
    out = ["## One interruption per patient episode: which alerts beyond charted NEWS2 earn theirs", ""]
    if folded:
        recorded = folded.get("recorded_on_service_alerts")
        out += [f"Shipped fold `{folded['policy_fold']}`: rules recorded on an open alert instead of raised "
                "(what the ward no longer hears as a separate alert): "
                + ", ".join(f"{k} {v}" for k, v in folded["by_kind"].items())
                + (" (found in the reasons of the service's alerts: "
                   + ", ".join(f"{k} {v}" for k, v in recorded.items()) + ")" if recorded else "")
                + f"; without folding the same rules raise {folded['alerts_beyond_without_fold']} alerts beyond "
                  f"charted NEWS2, {AP.fmt(folded['beyond_charted_news2_without_fold'])} per 100 patient-days.", ""]
    out += ["| rule (replayed over the stored scores and sets) | beyond charted NEWS2 / 100 patient-days | alerts "
            "beyond | combined warned − chance | margin over charted NEWS2 | missed vs charted NEWS2 | rules folded "
            "or dropped |", "|---|---|---|---|---|---|---|"]
    for c in fold["candidates"]:
        out.append(f"| {c['policy']} | {AP.fmt(c['beyond_charted_news2'])} | {c['alerts_beyond']} | "
                   f"{AP.fmt(c['warned_minus_chance'], 1, 2)} | {AP.fmt(c['added_over_charted_news2'], 1, 2)} | "
                   f"{c['missed_vs_charted_news2']} | "
                   + ", ".join(f"{k} {v}" for k, v in c["folded"].items() if v) + " |")
    by = {c["policy"]: c for c in fold["candidates"]}
    if {"fold off", "fold less_urgent", "fold any"} <= set(by):
        off, less, every = by["fold off"], by["fold less_urgent"], by["fold any"]
        twin = next((c for name, c in by.items() if name.startswith("twin suppressed")), None)
        out += ["", "**The rule shipped, and how it was chosen.** One interruption per patient episode, unless the "
                "urgency rises: a criteria, obs_due or twin rule that holds while the patient has an open, "
                "unacknowledged alert of a more urgent kind (news2, criteria, obs_due, twin) is recorded on that alert "
                "instead of raised (`less_urgent`); charted NEWS2 is never folded. Every candidate is judged on all "
                "three targets at once, not on the burden alone: "
                f"`less_urgent` raises {less['alerts_beyond']} alerts beyond charted NEWS2 against "
                f"{off['alerts_beyond']} with folding off, with warned − chance "
                f"{AP.fmt(less['warned_minus_chance'], 1, 2)} against "
                f"{AP.fmt(off['warned_minus_chance'], 1, 2)} and {less['missed_vs_charted_news2']} first events "
                f"missed against charted NEWS2. `any` would save {less['alerts_beyond'] - every['alerts_beyond']} more "
                "only by "
                "recording a more urgent finding (a deterioration criterion met now, observations due) on a less "
                "urgent open alert, which nobody is told of and which leaves the board showing the lower urgency"
                + (f"; suppressing the twin during a charted news2 alert of grade ≥ 2 saves "
                   f"{off['alerts_beyond'] - twin['alerts_beyond']} and leaves the criteria and obs_due repeats"
                   if twin else "") + "."]
    tally = fold["verdicts"]
    out += ["", "Every alert beyond charted NEWS2 the rules raise with folding off: "
            + "; ".join(f"**{tally.get(k, 0)}** {meaning}" for k, meaning in fold["verdict_meaning"].items()) + ".",
            "", "| seed | patient | kind | raised | already open | min to the nearest charted news2 raise (+: after) "
            "| min before onset | verdict | shipped fold |", "|---|---|---|---|---|---|---|---|---|"]
    for r in fold["alerts"]:
        dt = r["minutes_to_nearest_charted_news2"]
        before = r["minutes_before_onset"]
        out.append(f"| {r['seed']} | {r['patient_id']} | {r['kind']} | {r['raised_at'][11:16]} | "
                   f"{', '.join(r['already_open']) or '–'} | {'–' if dt is None else f'{dt:+.0f}'} | "
                   f"{'no event' if before is None else f'{before:.0f}'} | {r['verdict']} | {r['shipped_fold']} |")
    return [*out, ""]
