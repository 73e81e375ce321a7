"""``wardtwin train --physionet-records ...``: build both training sources, run the stated comparison
(:mod:`lab.source_choice`), write ``reports/sources/``, and hand the rule's choice to ``lab.train.train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab import physionet2012 as P
from lab import physionet_eval as E
from lab import source_choice as S
from lab import source_report
from lab import train as T
from lab.output import Progress, out
from lab.physionet_cmd import Tally, stay_hour_batches


def set_a_table(records: Path, limit: int | None, progress: Progress) -> tuple[pd.DataFrame, pd.DataFrame, Tally]:
    from lab.physionet_cv import hour_table

    tally = Tally()
    tables, events = [], []
    for hours, hourly_feats, ev in stay_hour_batches(records, limit, tally, progress, batch=200, progress_every=500):
        tables.append(hour_table(hours, hourly_feats))
        events.append(ev)
    if not tables:
        raise SystemExit(f"no stays found in {records}")
    return pd.concat(tables, ignore_index=True), pd.concat(events, ignore_index=True), tally


def write_out_of_fold(table: pd.DataFrame, logit: np.ndarray, path: Path) -> None:
    """``record_id,hour,logit``: the chosen candidate's out-of-fold raw logit at every set-A stay-hour (empty where
    no fold model scored it), for ``wardtwin evaluate physionet2012`` to judge a twin that has seen set A."""
    hours = ((pd.to_datetime(table["window_end"], utc=True) - pd.Timestamp(P.ADMISSION_AT)) / pd.Timedelta(hours=1))
    frame = pd.DataFrame({"record_id": [E.record_id(p) for p in table["patient_id"]],
                          "hour": hours.round().astype(int),
                          "logit": [("" if not np.isfinite(v) else f"{v:.7g}") for v in logit]})
    frame = frame.sort_values(["record_id", "hour"], kind="mergesort")
    frame.to_csv(path, index=False, lineterminator="\n", compression={"method": "gzip", "mtime": 0})


def choose_sources(records: Path, limit: int | None, *, train_seed: int, sources_report: Path,
                   dataset: T.Dataset, fingerprint: dict[str, Any], progress: Progress,
                   command_line: str, external: dict[str, Any] | None = None
                   ) -> tuple[T.PooledFit | None, dict[str, Any]]:
    """(the pooled fit to ship, or None when the simulator alone wins; the cohort fingerprint, with set A's).

    ``records``: set A (its charted events are the labels); ``limit``: at most that many stays; ``command_line``
    is recorded in the report."""
    table, events, tally = set_a_table(records, limit, progress)
    progress(f"set A: {tally.stays} stays, {len(table)} stay-hours, {len(events)} charted events")
    by_name = {"simulator": S.simulator_rows(dataset, seed=train_seed), "set-a": S.set_a_rows(table, events)}
    report, logits = S.compare(by_name, progress=progress)
    report["command"] = command_line
    source_report.write(report, sources_report)
    for line in source_report.summary_lines(report):
        out(line)
    if external is not None:  # set A's rows for the shipped twin's calibration check (lab.train)
        external.update(S.external_rows(by_name, logits, report["chosen"]) or {},
                        source_choice=S.choice_summary(report))
    if report["chosen"] == "simulator":
        return None, fingerprint
    write_out_of_fold(table, logits[report["chosen"]]["set-a"], sources_report / OUT_OF_FOLD)
    real = {"dataset": "PhysioNet/CinC Challenge 2012 set A (1.0.0, ODC-By 1.0)",
            "records": records.name, "records_sha256": P.records_sha256(records),
            "stays": tally.stays, "stay_hours": len(table), "limit": limit}
    return S.pooled_fit(report, logits, by_name, progress=progress), {**fingerprint, "real_data": real}


#: The chosen candidate's out-of-fold logits on set A, beside ``report.json`` in ``--sources-report``.
OUT_OF_FOLD = "set_a_out_of_fold.csv.gz"

__all__ = ["OUT_OF_FOLD", "choose_sources", "set_a_table", "write_out_of_fold"]
