"""``wardtwin import physionet2012`` and ``wardtwin evaluate physionet2012``: real ICU stays in, store / report out.

Both read PhysioNet 2012 set A with :mod:`lab.physionet2012` (the ``.tar.gz`` streamed, or a folder of records),
one stay at a time, and send every mapped reading through the API's own validation
(:func:`app.ingest.validate_batch`, with ``now`` fixed one hour after the last possible reading, so timestamps are
never "in the future"). Zeros and implausible values are not fixed: they are rejected and counted by reason.

- ``import`` writes the accepted readings into the configured store (``app.main.make_store(Settings())``: SQLite
  under ``WARDTWIN_DATA_DIR`` by default, InfluxDB when ``WARDTWIN_INFLUX_URL`` is set) and aggregates their windows.
- ``evaluate`` scores every stay at every hour 1..48 through the serving code (:mod:`lab.physionet_eval`) and
  writes ``scores.csv``, ``report.json``, ``index.html`` and plots to ``--out``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.domain import Reading
from app.ingest import validate_batch
from app.settings import Settings
from lab import physionet2012 as P
from lab.output import Progress
from lab.output import out as say
from models.schema import READING_COLUMNS

#: ``now`` for validation: one hour after the last possible reading of a 48 h stay.
VALIDATION_NOW = P.ADMISSION_AT + timedelta(hours=P.STAY_HOURS + 1)
WRITE_BATCH = 20_000




@dataclass
class Tally:
    """What happened to the charted values: mapped, accepted, rejected (by reason), not mappable."""

    stays: int = 0
    mapped: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    unmapped: Counter[str] = field(default_factory=Counter)
    accepted_sources: Counter[str] = field(default_factory=Counter)
    stays_without_readings: int = 0
    demographics: dict[str, tuple[float | None, int | None]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stays": self.stays, "readings_mapped": self.mapped, "readings_accepted": self.accepted,
            "readings_rejected": self.rejected,
            "rejected_by_reason": {k: {"count": v, "example": self.examples[k]}
                                   for k, v in sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))},
            "not_mapped": dict(sorted(self.unmapped.items())),
            "accepted_by_source": dict(sorted(self.accepted_sources.items())),
            "stays_without_accepted_readings": self.stays_without_readings,
        }

    def lines(self) -> list[str]:
        out = [f"stays {self.stays}: readings mapped {self.mapped}, accepted {self.accepted}, "
               f"rejected {self.rejected}"]
        for reason, n in sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  rejected {n:>7}  {reason}  (e.g. {self.examples[reason]})")
        for reason, n in sorted(self.unmapped.items()):
            out.append(f"  not mapped {n:>5}  {reason}")
        fallback = sum(v for k, v in self.accepted_sources.items() if k.endswith(("<-SysABP", "<-DiasABP")))
        out.append(f"  accepted BP readings from the arterial line (no cuff value at that time): {fallback}")
        if self.stays_without_readings:
            out.append(f"  stays without any accepted reading: {self.stays_without_readings}")
        return out


def validated(stays: Iterator[P.Stay], tally: Tally, max_future_skew: timedelta
              ) -> Iterator[tuple[P.Stay, list[Reading]]]:
    """Each stay with the readings the API's validation accepts; rejections and unmapped values go to ``tally``."""
    for stay in stays:
        items = stay.items()
        result = validate_batch(items, VALIDATION_NOW, max_future_skew)
        tally.stays += 1
        tally.demographics[stay.patient_id] = (stay.age, stay.gender)
        tally.mapped += len(items)
        tally.accepted += len(result.readings)
        tally.unmapped.update(stay.unmapped)
        bad: set[int] = set()
        for err in result.errors:
            index = err["loc"][2]
            field_name = err["loc"][3] if len(err["loc"]) > 3 else "item"
            if index in bad:
                continue
            bad.add(index)
            reading = stay.readings[index]
            reason = f"{reading.vital} ({reading.source}) {field_name}: {err['type']}"
            tally.reasons[reason] += 1
            tally.examples.setdefault(reason, err["msg"])
        tally.rejected += len(bad)
        tally.accepted_sources.update(f"{r.vital}<-{r.source}" for i, r in enumerate(stay.readings) if i not in bad)
        if not result.readings:
            tally.stays_without_readings += 1
        yield stay, result.readings


def _skew() -> timedelta:
    return timedelta(seconds=Settings().max_future_skew_s)


def import_stays(*, records: Path, outcomes: Path, limit: int | None, progress_every: int) -> int:
    """``wardtwin import physionet2012``: the accepted readings of ``records`` into the configured store."""
    return asyncio.run(_import(records, outcomes, limit, progress_every))


async def _import(records: Path, outcomes_path: Path, limit: int | None, progress_every: int) -> int:
    from app.main import make_store

    progress = Progress("import")
    outcomes = P.read_outcomes(outcomes_path)
    settings = Settings()  # the configured service's store, on purpose
    store = make_store(settings)
    tally = Tally()
    with_outcome = deaths = 0
    pending: list[Reading] = []
    await store.open()
    try:
        for stay, readings in validated(P.iter_stays(records, limit), tally, _skew()):
            outcome = outcomes.get(stay.record_id)
            if outcome is not None:
                with_outcome += 1
                deaths += int(outcome.in_hospital_death or 0)
            pending.extend(readings)
            if len(pending) >= WRITE_BATCH:
                await store.write_readings(pending)
                pending = []
            if tally.stays % progress_every == 0:
                progress(f"{tally.stays} stays, {tally.accepted} readings accepted, {tally.rejected} rejected")
        if pending:
            await store.write_readings(pending)
        windows = await store.materialize_pending(VALIDATION_NOW)
    finally:
        await store.close()
    progress(f"done: {tally.stays} stays")
    say(f"imported into the {store.name} store (admission of every stay at {P.ADMISSION_AT.isoformat()}; "
         f"patient ids {P.PATIENT_PREFIX}RECORDID); windows aggregated at {len(windows)} five-minute window starts")
    for line in tally.lines():
        say(line)
    say(f"outcomes: {len(outcomes)} rows in {outcomes_path.name}; {with_outcome} of the imported stays have one "
         f"({deaths} in-hospital deaths)")
    return 0


def evaluate_stays(*, records: Path, outcomes: Path, limit: int | None, progress_every: int, out: Path,
                   artifact: Path | None, bootstrap: int, seed: int, batch: int, cv_variant: bool, cv_folds: int,
                   out_of_fold: Path) -> int:
    """``wardtwin evaluate physionet2012``: score every stay at every hour 1..48 with the twin (``artifact``, None:
    the shipped one) and NEWS2; write ``scores.csv``, ``report.json``, ``index.html`` and plots to ``out``."""
    from lab import physionet_eval as E
    from lab.physionet_cv import hour_table
    from models.twin import Twin

    progress = Progress("evaluate")
    twin = Twin.load(artifact)
    outcome_rows = P.read_outcomes(outcomes)
    tally = Tally()
    score_parts: list[pd.DataFrame] = []
    event_parts: list[pd.DataFrame] = []
    missing: Counter[str] = Counter()
    feature_rows = 0
    table_parts: list[pd.DataFrame] = []
    for hours, hourly_feats, events in stay_hour_batches(records, limit, tally, progress, batch=batch,
                                                         progress_every=progress_every):
        scores = E.score_hours(hours, hourly_feats, twin)
        if cv_variant:
            table_parts.append(hour_table(hours, hourly_feats))
        missing.update(scores.attrs.get("feature_missing", {}))
        feature_rows += int(scores.attrs.get("feature_rows", 0))
        score_parts.append(scores)
        event_parts.append(events)
    if not score_parts:
        say("no stays found")
        return 1
    progress(f"scored {tally.stays} stays × {len(E.HOURS)} hours")
    scores = pd.concat(score_parts, ignore_index=True)
    in_sample = _fitted_on_these(twin.artifact, records)  # whatever --limit: a subset of those stays is in sample
    if in_sample is not None:
        if not out_of_fold.exists():
            say(f"the twin {twin.version} was fitted on {records.name} ({in_sample}); judging it there needs "
                f"its out-of-fold logits ({out_of_fold}, written by wardtwin train --physionet-records)")
            return 2
        scores = _with_out_of_fold_risk(scores, twin.artifact, out_of_fold)
        progress(f"the twin was fitted on these stays: judged on its out-of-fold risk ({out_of_fold})")
    scores.attrs["feature_missing"] = dict(missing)
    scores.attrs["feature_rows"] = feature_rows
    events = pd.concat(event_parts, ignore_index=True)
    data = tally.as_dict()
    data["records"] = records.name
    data["limit"] = limit
    data["twin_training_data"] = E.training_data(twin.artifact)
    data["outcome_rows"] = len(outcome_rows)
    data["risk"] = ("out of fold: " + str(out_of_fold)) if in_sample is not None else "the twin as served"
    demographics = pd.DataFrame([(p, a, g) for p, (a, g) in tally.demographics.items()],
                                columns=["patient_id", "age", "gender"])
    report = E.build_report(scores, events, outcome_rows, twin, n_bootstrap=bootstrap, seed=seed, data=data,
                            demographics=demographics, progress=progress)
    cv = None
    if cv_variant:
        cv = _cv_variant(pd.concat(table_parts, ignore_index=True), scores, events, outcome_rows, report,
                         folds=cv_folds, bootstrap=bootstrap, seed=seed, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    E.write_scores_csv(scores, out / "scores.csv")
    E.write_report(report, out, cv=cv)
    progress("report written")
    for line in tally.lines():
        say(line)
    for line in report["summary"]:
        say(line)
    if cv is not None:
        for line in cv["summary"]:
            say(line)
    say(f"scores: {out / 'scores.csv'}; report: {out / 'report.json'} and {out / 'index.html'}")
    return 0


def _fitted_on_these(artifact: dict[str, Any], records: Path) -> str | None:
    """How the twin's training data names ``records`` when the twin was fitted on (some of) them, else None.

    The archive is the unit: a twin fitted on its first N stays (``limit``) has seen stays that any evaluation of
    the archive, limited or not, would judge; so no limit on either side skips this check."""
    real = (artifact.get("cohort") or {}).get("real_data")
    if not real or not real.get("records_sha256"):
        return None
    if P.records_sha256(records) != real["records_sha256"]:
        return None
    fitted = "all its stays" if real.get("limit") is None else f"its first {real['limit']} stays"
    return f"sha256 {real['records_sha256'][:12]}, {fitted}"


def _with_out_of_fold_risk(scores: pd.DataFrame, artifact: dict[str, Any], path: Path) -> pd.DataFrame:
    """``risk`` replaced by the out-of-fold risk, ``expit(a · logit + c)`` with the artifact's Platt map (fitted on
    the simulator's development patients only, so no set-A label tunes it); empty where the service would not
    score or no fold model did."""
    from scipy.special import expit

    oof = pd.read_csv(path, dtype={"record_id": int, "hour": int, "logit": float})
    cal = artifact["calibration"]
    merged = scores[["record_id", "hour"]].merge(oof, on=["record_id", "hour"], how="left")
    risk = expit(cal["a"] * merged["logit"].to_numpy(float) + cal["c"])
    out = scores.copy()
    out["risk"] = np.where(scores["risk"].notna().to_numpy(), risk, np.nan)
    out.attrs.update(scores.attrs)
    return out


def stay_hour_batches(records: Path, limit: int | None, tally: Tally, progress: Progress, *, batch: int = 200,
                      progress_every: int = 250) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """``lab.physionet_eval.stay_hours`` (hours, hourly features, charted events) of the validated stays of
    ``records`` (at most ``limit``), ``batch`` stays at a time; a progress line every ``progress_every`` stays."""
    from lab import physionet_eval as E

    batch_ids: list[str] = []
    batch_readings: list[Reading] = []

    def flush() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        frame = pd.DataFrame(batch_readings, columns=list(Reading._fields)).loc[:, list(READING_COLUMNS)]
        out = E.stay_hours(frame, batch_ids)
        batch_ids.clear()
        batch_readings.clear()
        return out

    for stay, readings in validated(P.iter_stays(records, limit), tally, _skew()):
        batch_ids.append(stay.patient_id)
        batch_readings.extend(readings)
        if len(batch_ids) >= batch:
            yield flush()
        if tally.stays % progress_every == 0:
            progress(f"{tally.stays} stays read ({tally.accepted} readings accepted, {tally.rejected} rejected)")
    if batch_ids:
        yield flush()


def _cv_variant(table: pd.DataFrame, scores: pd.DataFrame, events: pd.DataFrame, outcomes: dict[int, P.Outcome],
                report: dict[str, Any], *, folds: int, bootstrap: int, seed: int, progress: Progress
                ) -> dict[str, Any]:
    """``--cv-variant``: the twin's model fitted on these stays, patient-level CV; its numbers, never an artifact."""
    from lab import physionet_cv as C

    t0 = time.monotonic()
    progress(f"cv variant: {folds}-fold patient-level cross-validation over {table['patient_id'].nunique()} "
             "stays")
    cv_rows, fits = C.cross_validate(table, events, folds=folds, seed=seed, progress=progress)
    shipped = cv_rows[["patient_id", "window_end"]].merge(scores[["patient_id", "window_end", "risk"]],
                                                          on=["patient_id", "window_end"], how="left")["risk"]
    cv = C.evaluate(cv_rows, events, outcomes, fits, shipped_risk=shipped.to_numpy(float),
                    n_bootstrap=bootstrap, seed=seed, progress=progress)
    cv["seconds_fit_and_evaluate"] = round(time.monotonic() - t0, 1)
    cv["summary"] = C.summary_lines(cv, report)
    report["variants"] = {"twin-cv-set-a": {
        "file": "cv_variant.json", "not_shipped": True,
        "events_auroc": cv["events_6h"]["discrimination"]["twin_cv"]["auroc"],
        "events_auroc_minus_news2": cv["events_6h"]["discrimination"]["twin_cv"].get("auroc_minus_news2"),
        "death_auroc_peak": cv["death"]["discrimination"]["twin_peak"]["auroc"],
        "death_auroc_last": cv["death"]["discrimination"]["twin_last"]["auroc"],
        "events_goal_met": cv["events_6h"]["goal"]["met"], "death_goal_met": cv["death"]["goal"]["met"]}}
    return cv


__all__ = ["VALIDATION_NOW", "Tally", "evaluate_stays", "import_stays", "stay_hour_batches", "validated"]
