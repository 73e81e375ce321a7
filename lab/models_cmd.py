"""``wardtwin train`` and ``wardtwin evaluate``: cohorts in, JSON artifact / evaluation report out.

A cohort is either a directory written by ``simulator.cohort.write_cohort`` (``readings.parquet``,
``patients.parquet``, ``events.parquet``) or generated on the fly with ``simulator.cohort.iter_cohort``.
Either way readings are aggregated to windows one patient at a time (1 Hz heart rate is 86,400
rows per patient-day) and only the windows are kept.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from lab.output import Progress, out
from models import windows as W
from models.challenger import DEFAULT_CHALLENGER
from models.twin import DEFAULT_ARTIFACT


def _cohort_args(parser: argparse.ArgumentParser, *, patients: int, hours: float, seed: int,
                 mix: str | None = None) -> None:
    parser.add_argument("--cohort", type=Path, help="cohort directory written by the simulator")
    parser.add_argument("--patients", type=int, default=patients, help=f"generated cohort size (default {patients})")
    parser.add_argument("--hours", type=float, default=hours, help=f"hours per patient (default {hours:g})")
    parser.add_argument("--seed", type=int, default=seed, help=f"simulator seed (default {seed})")
    parser.add_argument("--mix", default=mix, help="generated cohort's archetype mix: 'ward' (a general ward), "
                        "'enriched' (the training mix) or weights (see `wardtwin simulate cohort --help`); default "
                        f"{mix or 'ward'}")


def _simulator_version() -> str:
    try:
        import simulator
    except ImportError:
        return "unavailable"
    return str(getattr(simulator, "__version__", "unknown"))


def _fingerprint(manifest: dict[str, Any], source: str) -> dict[str, Any]:
    keys = ("simulator_version", "seed", "n_patients", "hours", "start", "archetype_mix")
    out = {k: manifest[k] for k in keys if k in manifest}
    out["source"] = source
    return out


def load_cohort_windows(args: argparse.Namespace, progress: Callable[[str], None]
                        ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(windows, patients, ground-truth events, cohort fingerprint) for the cohort the arguments name.

    Readings are aggregated one patient at a time and dropped; only the windows are kept.
    """
    from simulator import cohort as C

    if args.cohort is not None:
        root = Path(args.cohort)
        manifest_path = root / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
        records: Iterator[Any] = C.iter_cohort_files(root)
        total = int(manifest.get("n_patients", 0)) or len(pd.read_parquet(root / "patients.parquet"))
        fingerprint = _fingerprint(manifest, f"cohort directory {root.name}")
    else:
        start = C.DEFAULT_START
        from simulator.archetypes import normalise_mix, parse_mix

        mix = normalise_mix(parse_mix(args.mix) if getattr(args, "mix", None) else None)
        records = C.iter_cohort(args.patients, args.hours, args.seed, start=start, archetype_mix=mix)
        total = args.patients
        fingerprint = _fingerprint({"simulator_version": _simulator_version(), "seed": int(args.seed),
                                    "n_patients": int(args.patients), "hours": float(args.hours),
                                    "start": pd.Timestamp(start).tz_convert("UTC").isoformat(),
                                    "archetype_mix": mix},
                                   "simulator.cohort.iter_cohort")
    frames: list[pd.DataFrame] = []
    patient_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    step = max(1, total // 20)
    for i, record in enumerate(records, start=1):
        frames.append(W.build(record.readings))
        patient_rows.append(dict(record.patient))
        event_rows.extend(dict(e) for e in record.events)
        if i % step == 0 or i == total:
            progress(f"cohort → windows: {i}/{total} patients")
    windows = W.normalise(pd.concat(frames, ignore_index=True)) if frames else W.empty_windows()
    patients = pd.DataFrame(patient_rows)
    events = pd.DataFrame(event_rows) if event_rows else pd.DataFrame({"patient_id": [], "kind": [], "onset": []})
    events["onset"] = pd.to_datetime(events["onset"], utc=True)
    return windows, patients, events, fingerprint


def train_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wardtwin train", description="Train the twin and write its JSON artifact.")
    _cohort_args(parser, patients=1500, hours=48, seed=42, mix="enriched")  # events enough to learn from
    parser.add_argument("--train-seed", type=int, default=7, help="split and estimator seed (default 7)")
    parser.add_argument("--out", type=Path, default=DEFAULT_ARTIFACT, help="artifact path (MODEL_CARD.md beside it)")
    parser.add_argument("--no-challenger", action="store_true", help="skip the gradient-boosting challenger")
    parser.add_argument("--variant", default=None, help="force a feature variant (lab.train.VARIANTS) to study it; "
                        "default: the stated selection rule chooses (never ship a forced one)")
    parser.add_argument("--physionet-records", type=Path, default=None,
                        help="PhysioNet 2012 set-A records (.tar.gz or folder): compare training on the simulator, "
                             "set A or both (lab.source_choice.SOURCE_RULE) and ship the rule's choice")
    parser.add_argument("--physionet-outcomes", type=Path, default=None,
                        help="Outcomes-a.txt (with --physionet-records)")
    parser.add_argument("--sources-report", type=Path, default=Path("reports/sources"),
                        help="where the training-data comparison is written (with --physionet-records)")
    parser.add_argument("--physionet-limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.physionet_records is None and args.out.resolve() == DEFAULT_ARTIFACT.resolve():
        parser.error("the shipped twin is trained on the simulator and PhysioNet 2012 set A (reports/sources/): pass "
                     "--physionet-records and --physionet-outcomes, or --out elsewhere for a simulator-only twin")
    from lab import train as T

    progress = Progress("train")
    windows, patients, events, fingerprint = load_cohort_windows(args, progress)
    dataset = T.prepare(windows, patients, events, progress=progress)
    pooled = None
    if args.physionet_records is not None:
        if args.variant is not None:
            parser.error("--variant studies simulator-only variants; it cannot be combined with --physionet-records")
        from lab.sources_cmd import choose_sources

        pooled, fingerprint = choose_sources(args, dataset, fingerprint, progress, argv)
    artifact = T.train(windows, events, patients, seed=args.train_seed, cohort_fingerprint=fingerprint,
                       progress=progress, dataset=dataset, variant=args.variant, pooled=pooled)
    path = T.write_artifact(artifact, args.out)
    out(f"twin {artifact['version']} written to {path} (model card {path.parent / 'MODEL_CARD.md'})")
    if not args.no_challenger:
        challenger = T.train_challenger(dataset, seed=args.train_seed, twin=artifact, progress=progress)
        cpath = args.out.parent / DEFAULT_CHALLENGER.name
        T.write_json(challenger, cpath)
        out(f"challenger {challenger['version']} written to {cpath}")
    m = artifact["metrics"]["test"]
    out(f"test patients: AUROC twin {m['auroc']:.3f} vs NEWS2 {m['news2_auroc']:.3f}; "
         f"Brier {m['brier']:.4f}; calibration slope {m['calibration_slope']:.2f}")
    return 0


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--seeds takes integers separated by commas, got {text!r}") from exc
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds needs distinct seeds, got {text!r}")
    return seeds


def evaluate_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wardtwin evaluate",
                                     description="Evaluate the twin against NEWS2 (charted at the RCP frequency and "
                                                 "every 5 min) and the challenger on independent simulator cohorts, "
                                                 "one per seed and pooled; writes report.json, plots and index.html.")
    _cohort_args(parser, patients=600, hours=48, seed=2024)
    parser.add_argument("--seeds", type=_seeds, default=None,
                        help="simulator seeds, each an independent evaluation cohort (e.g. 1,2,3); default: --seed")
    parser.add_argument("--artifact", type=Path, default=DEFAULT_ARTIFACT)
    parser.add_argument("--challenger", type=Path, default=None, help="challenger JSON (default: beside the artifact)")
    parser.add_argument("--out", type=Path, default=Path("reports/evaluation"))
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for 95 %% intervals")
    parser.add_argument("--no-model-card", action="store_true", help="do not rewrite MODEL_CARD.md with the results")
    parser.add_argument("--physionet-report", type=Path, default=Path("reports/physionet2012/report.json"),
                        help="real-data results put in the model card beside these (wardtwin evaluate physionet2012)")
    args = parser.parse_args(argv)
    from lab import report as R
    from lab import train as T
    from lab.model_card import write_model_card
    from models.twin import Twin

    progress = Progress("evaluate")
    twin = Twin.load(args.artifact)
    challenger_path = args.challenger or args.artifact.parent / DEFAULT_CHALLENGER.name
    seeds = [args.seed] if args.cohort is not None or args.seeds is None else args.seeds
    datasets, fingerprints = {}, {}
    for s in seeds:
        progress(f"cohort seed {s}")
        windows, patients, events, fingerprint = load_cohort_windows(argparse.Namespace(**{**vars(args), "seed": s}),
                                                                     progress)
        datasets[s] = T.prepare(windows, patients, events, progress=progress)
        fingerprints[s] = fingerprint
        del windows
    old_path = args.out / "report.json"
    previous = R.previous_summary(json.loads(old_path.read_text(encoding="utf-8"))) if old_path.exists() else None
    report = R.evaluate_seeds(twin, datasets, fingerprints,
                              challenger_path=challenger_path if challenger_path.exists() else None,
                              n_bootstrap=args.bootstrap, previous=previous, progress=progress)
    R.write_report(report, args.out)
    pooled = report["pooled"]
    if not args.no_model_card and pooled["twin_version"] == twin.version \
            and args.artifact.resolve() == DEFAULT_ARTIFACT.resolve() and args.cohort is None \
            and pooled["scope"].startswith("an independent cohort"):
        real = (json.loads(args.physionet_report.read_text(encoding="utf-8"))
                if args.physionet_report.exists() else None)
        write_model_card(twin.artifact, args.artifact.parent / "MODEL_CARD.md", {**pooled, "seeds": report["seeds"]},
                         real)
        out(f"model card updated with this evaluation: {args.artifact.parent / 'MODEL_CARD.md'}")
    out(R.format_table(report))
    out(f"report: {args.out / 'report.json'} and {args.out / 'index.html'}")
    return 0


__all__ = ["evaluate_main", "load_cohort_windows", "train_main"]
