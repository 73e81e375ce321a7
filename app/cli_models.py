"""``wardtwin train`` and ``wardtwin evaluate``: cohorts in, JSON artifact / evaluation report out.

A cohort is either a directory written by ``simulator.cohort.write_cohort`` (``readings.parquet``,
``patients.parquet``, ``events.parquet``) or generated on the fly with ``simulator.cohort.iter_cohort``.
Either way readings are aggregated to windows one patient at a time (1 Hz heart rate is 86,400
rows per patient-day) and only the windows are kept.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from models import windows as W
from models.twin import DEFAULT_ARTIFACT, DEFAULT_CHALLENGER

COHORT_START = pd.Timestamp("2024-01-01 00:00", tz="UTC")


class _Progress:
    """Progress lines on stderr: ``[train   12.3s] message``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        sys.stderr.write(f"[{self.name} {time.monotonic() - self.t0:6.1f}s] {message}\n")
        sys.stderr.flush()


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _cohort_args(parser: argparse.ArgumentParser, *, patients: int, hours: float, seed: int) -> None:
    parser.add_argument("--cohort", type=Path, help="cohort directory written by the simulator")
    parser.add_argument("--patients", type=int, default=patients, help=f"generated cohort size (default {patients})")
    parser.add_argument("--hours", type=float, default=hours, help=f"hours per patient (default {hours:g})")
    parser.add_argument("--seed", type=int, default=seed, help=f"simulator seed (default {seed})")


def _simulator_version() -> str:
    try:
        import simulator
    except ImportError:
        return "unavailable"
    return str(getattr(simulator, "__version__", "unknown"))


def _records_from_dir(path: Path, progress: Callable[[str], None]) -> Iterator[tuple[str, pd.DataFrame]]:
    """(patient_id, readings) per patient from readings.parquet, streaming record batches."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path / "readings.parquet")
    buffer: list[pd.DataFrame] = []
    current: str | None = None
    done: set[str] = set()
    for batch in f.iter_batches(batch_size=1_000_000):
        frame = batch.to_pandas()
        frame["patient_id"] = frame["patient_id"].astype(object)
        ids = frame["patient_id"]
        change = ids.ne(ids.shift()).to_numpy()
        starts = [i for i, c in enumerate(change) if c] + [len(frame)]
        for a, b in itertools.pairwise(starts):
            pid = str(ids.iat[a])
            part = frame.iloc[a:b]
            if pid == current:
                buffer.append(part)
                continue
            if current is not None:
                yield current, pd.concat(buffer, ignore_index=True)
                done.add(current)
            if pid in done:
                raise ValueError(f"{path}/readings.parquet is not grouped by patient ({pid} reappears)")
            current, buffer = pid, [part]
    if current is not None:
        yield current, pd.concat(buffer, ignore_index=True)


def load_cohort_windows(args: argparse.Namespace, progress: Callable[[str], None]
                        ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(windows, patients, ground-truth events, cohort fingerprint) for the cohort the arguments name."""
    frames: list[pd.DataFrame] = []
    if args.cohort is not None:
        root = Path(args.cohort)
        patients = pd.read_parquet(root / "patients.parquet")
        events_path = root / "events.parquet"
        events = pd.read_parquet(events_path) if events_path.exists() else pd.DataFrame(columns=["patient_id", "kind",
                                                                                                 "onset"])
        n = len(patients)
        for i, (_, readings) in enumerate(_records_from_dir(root, progress), start=1):
            frames.append(W.build(readings))
            if i % 25 == 0 or i == n:
                progress(f"windows: {i}/{n} patients")
        fingerprint: dict[str, Any] = {"source": f"cohort directory {root.name}", "n_patients": int(n),
                                       "simulator_version": _simulator_version()}
        for name in ("manifest.json", "cohort.json"):
            if (root / name).exists():
                fingerprint["manifest"] = json.loads((root / name).read_text(encoding="utf-8"))
    else:
        from simulator.cohort import iter_cohort

        patient_rows: list[dict[str, Any]] = []
        event_rows: list[dict[str, Any]] = []
        for i, record in enumerate(iter_cohort(args.patients, args.hours, args.seed, start=COHORT_START), start=1):
            frames.append(W.build(record.readings))
            patient_rows.append(dict(record.patient))
            event_rows.extend(dict(e) for e in record.events)
            if i % 25 == 0 or i == args.patients:
                progress(f"simulate + windows: {i}/{args.patients} patients")
        patients = pd.DataFrame(patient_rows)
        events = pd.DataFrame(event_rows, columns=["patient_id", "kind", "onset"]) if not event_rows \
            else pd.DataFrame(event_rows)
        fingerprint = {"source": "simulator.cohort.iter_cohort", "simulator_version": _simulator_version(),
                       "seed": int(args.seed), "n_patients": int(args.patients), "hours": float(args.hours),
                       "start": COHORT_START.isoformat()}
    windows = pd.concat(frames, ignore_index=True) if frames else W.empty_windows()
    if "onset" in events:
        events["onset"] = pd.to_datetime(events["onset"], utc=True)
    return W.normalise(windows), patients, events, fingerprint


def train_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wardtwin train", description="Train the twin and write its JSON artifact.")
    _cohort_args(parser, patients=800, hours=48, seed=42)
    parser.add_argument("--train-seed", type=int, default=7, help="split and estimator seed (default 7)")
    parser.add_argument("--out", type=Path, default=DEFAULT_ARTIFACT, help="artifact path (MODEL_CARD.md beside it)")
    parser.add_argument("--no-challenger", action="store_true", help="skip the gradient-boosting challenger")
    args = parser.parse_args(argv)
    from models import train as T

    progress = _Progress("train")
    windows, patients, events, fingerprint = load_cohort_windows(args, progress)
    dataset = T.prepare(windows, patients, events, progress=progress)
    artifact = T.train(windows, events, patients, seed=args.train_seed, cohort_fingerprint=fingerprint,
                       progress=progress, dataset=dataset)
    path = T.write_artifact(artifact, args.out)
    _out(f"twin {artifact['version']} written to {path} (model card {path.parent / 'MODEL_CARD.md'})")
    if not args.no_challenger and hasattr(T, "train_challenger"):
        challenger = T.train_challenger(dataset, seed=args.train_seed, twin=artifact, progress=progress)
        cpath = args.out.parent / DEFAULT_CHALLENGER.name
        T.write_json(challenger, cpath)
        _out(f"challenger {challenger['version']} written to {cpath}")
    m = artifact["metrics"]["test"]
    _out(f"test patients: AUROC twin {m['auroc']:.3f} vs NEWS2 {m['news2_auroc']:.3f}; "
         f"Brier {m['brier']:.4f}; calibration slope {m['calibration_slope']:.2f}")
    return 0


def evaluate_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wardtwin evaluate",
                                     description="Evaluate the twin against NEWS2 (and the challenger) on held-out "
                                                 "patients; writes report.json and index.html.")
    _cohort_args(parser, patients=400, hours=48, seed=2024)
    parser.add_argument("--artifact", type=Path, default=DEFAULT_ARTIFACT)
    parser.add_argument("--challenger", type=Path, default=None, help="challenger JSON (default: beside the artifact)")
    parser.add_argument("--out", type=Path, default=Path("reports/evaluation"))
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for 95 %% intervals")
    args = parser.parse_args(argv)
    from models import evaluate as E
    from models import train as T
    from models.twin import Twin

    progress = _Progress("evaluate")
    twin = Twin.load(args.artifact)
    challenger_path = args.challenger or args.artifact.parent / DEFAULT_CHALLENGER.name
    windows, patients, events, fingerprint = load_cohort_windows(args, progress)
    dataset = T.prepare(windows, patients, events, progress=progress)
    report = E.evaluate(twin, dataset, cohort_fingerprint=fingerprint,
                        challenger_path=challenger_path if challenger_path.exists() else None,
                        n_bootstrap=args.bootstrap, seed=args.seed, progress=progress)
    E.write_report(report, args.out)
    _out(E.format_table(report))
    _out(f"report: {args.out / 'report.json'} and {args.out / 'index.html'}")
    return 0


__all__ = ["evaluate_main", "load_cohort_windows", "train_main"]
