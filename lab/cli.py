"""The one command line, ``wardtwin``: every subcommand and option declared once, in :data:`TREE`.

Built on the standard library's argparse (one declarative tree walked into parsers; no new dependency). Each command
names the typed function that runs it as ``"module:function"``, imported only when that command runs, so
``wardtwin --help``, ``demo``, ``serve``, ``replay`` and ``keys`` never import the lab's plotting or Parquet code
(``pip install -e .`` has neither). The function receives the parsed options as keyword arguments (one per option's
``dest``; ``command_line`` too when the command records how it was run); a command's ``check`` refuses combinations
of options before anything runs, with the usage line and exit status 2, as argparse does for one option.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from simulator.archetypes import ENRICHED_MIX, WARD_EVENT_RATE_PER_DAY


# -- argument types ----------------------------------------------------------------------------------------------
def int_list(text: str) -> list[int]:
    """``"1,2,3"`` → ``[1, 2, 3]``."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from exc


def _alert_settings(text: str) -> dict[str, str]:
    from lab.alert_burden import alert_settings_arg  # the study's own list of alert-policy settings

    try:
        return alert_settings_arg(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def distinct_seeds(text: str) -> list[int]:
    """``int_list``, refusing an empty or repeated seed (each seed is one independent cohort)."""
    seeds = int_list(text)
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds needs distinct seeds, got {text!r}")
    return seeds


# -- the declarative tree ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One option or positional argument: ``flags`` as argparse takes them, ``help`` always given."""

    flags: tuple[str, ...]
    help: str
    type: Callable[[str], Any] | None = None
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] | None = None
    flag: bool = False  # a switch: present → True
    dest: str | None = None
    metavar: str | None = None

    @property
    def name(self) -> str:
        """The keyword argument the command's function receives."""
        if self.dest:
            return self.dest
        longest = max(self.flags, key=len)
        return longest.lstrip("-").replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        if self.flag:
            parser.add_argument(*self.flags, action="store_true", dest=self.name, help=self.help)
            return
        kwargs: dict[str, Any] = {"help": self.help, "default": self.default}
        if self.flags[0].startswith("-"):
            kwargs.update(dest=self.name, required=self.required)
        for key in ("type", "choices", "metavar"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        parser.add_argument(*self.flags, **kwargs)


@dataclass(frozen=True)
class Command:
    """A subcommand: ``run`` (``"module:function"``) when it does something itself, ``commands`` beneath it."""

    name: str
    help: str
    run: str | None = None
    options: tuple[Option, ...] = ()
    commands: tuple[Command, ...] = ()
    check: Callable[[dict[str, Any]], str | None] | None = None
    with_command_line: bool = False  # the function also gets ``command_line`` ("wardtwin ..." as typed)


def opt(*flags: str, help: str, **kwargs: Any) -> Option:
    return Option(flags, help, **kwargs)


def _cohort_options(*, patients: int, hours: float, seed: int, mix: str | None = None) -> tuple[Option, ...]:
    return (
        opt("--cohort", type=Path, help="cohort directory written by `wardtwin simulate cohort` (default: generate "
            "one with the options below)"),
        opt("--patients", type=int, default=patients, help=f"generated cohort size (default {patients})"),
        opt("--hours", type=float, default=hours, help=f"hours per patient (default {hours:g})"),
        opt("--seed", type=int, default=seed, help=f"simulator seed (default {seed})"),
        opt("--mix", default=mix, help="generated cohort's archetype mix: 'ward' (a general ward), 'enriched' (the "
            "training mix) or weights (see `wardtwin simulate cohort --help`); default " + (mix or "ward")),
    )


def _records_options() -> tuple[Option, ...]:
    return (
        opt("--records", type=Path, required=True, help="set-a.tar.gz or a folder of RECORDID.txt files"),
        opt("--outcomes", type=Path, required=True, help="Outcomes-a.txt"),
        opt("--limit", type=int, help="at most N stays, in archive order (default: all)"),
        opt("--progress-every", type=int, default=250, help="a progress line every N stays (default 250)"),
    )


_DATA_DIR = opt("--data-dir", type=Path, help="data directory holding access.db (default WARDTWIN_DATA_DIR or ./data)")
_START = "start time, UTC ISO 8601 (default 2026-01-05T00:00:00+00:00)"


def _check_train(o: dict[str, Any]) -> str | None:
    from models.twin import DEFAULT_ARTIFACT

    if o["physionet_records"] is None:
        if o["out"] is None or o["out"].resolve() == DEFAULT_ARTIFACT.resolve():
            return ("the shipped twin is trained on the simulator and PhysioNet 2012 set A (reports/sources/): pass "
                    "--physionet-records and --physionet-outcomes, or --out elsewhere for a simulator-only twin")
        return None
    if o["variant"] is not None:
        return "--variant studies simulator-only variants; it cannot be combined with --physionet-records"
    if o["physionet_outcomes"] is None:
        return "--physionet-records needs --physionet-outcomes"
    return None


def _check_key_name(o: dict[str, Any]) -> str | None:
    return "--name must be 1–64 characters" if not o["name"].strip() or len(o["name"]) > 64 else None


def _check_live(o: dict[str, Any]) -> str | None:
    if o["url"] and not o["key"]:
        return "--url needs a device key: --key or WARDTWIN_API_KEY (wardtwin keys create --role device ...)"
    if not (o["url"] or o["influx_url"] or o["parquet_out"]):
        return "give at least one of --url, --influx-url, --parquet-out"
    return None


def _research_sources() -> tuple[Option, ...]:
    return (
        opt("--cohort", type=Path, help="cohort directory written by `wardtwin simulate cohort`"),
        opt("--store", flag=True, help="the configured store's patients (WARDTWIN_* settings)"),
        opt("--physionet-records", type=Path, help="PhysioNet 2012 set-A records (.tar.gz or folder)"),
        opt("--physionet-outcomes", type=Path, help="Outcomes-a.txt (with --physionet-records)"),
        opt("--limit", type=int, help="at most N set-A stays (default: all)"),
    )


def _check_research_source(o: dict[str, Any]) -> str | None:
    if sum([o["cohort"] is not None, bool(o["store"]), o["physionet_records"] is not None]) != 1:
        return "give exactly one of --cohort, --store, --physionet-records"
    if o["physionet_records"] is not None and o["physionet_outcomes"] is None:
        return "--physionet-records needs --physionet-outcomes"
    return None


def _tree() -> Command:
    """The whole command line. Built per call: ``simulate live --key`` defaults to ``$WARDTWIN_API_KEY`` now."""
    from app.security.keys import ROLES

    shipped_twin = "models/artifacts/twin.json"  # for help only: None stands for models.twin.DEFAULT_ARTIFACT
    return Command("wardtwin", "Real-time patient-deterioration digital twin: the service and its lab.", commands=(
        Command("demo", "live demo: a simulated 24-bed ward scored on the embedded store", "lab.demo:demo", (
            opt("--host", default="127.0.0.1", help="interface to serve on (default 127.0.0.1)"),
            opt("--port", type=int, default=8000, help="port to serve on (default 8000)"),
            opt("--speed", type=float, default=60.0, help="simulated seconds per real second (default 60)"),
            opt("--beds", type=int, default=24, help="beds on the simulated ward (default 24)"),
            opt("--seed", type=int, default=7, help="the ward's simulator seed (default 7)"),
            opt("--history-hours", type=float, default=4.0, help="hours of history posted and scored first "
                "(default 4)"),
            opt("--data-dir", type=Path, help="default WARDTWIN_DATA_DIR or ./data"),
            opt("--fresh", flag=True, help="forget a previous demo's ward and start a new one"),
            opt("--mix", choices=("enriched", "ward"), default="enriched",
                help="'enriched' (the default: the training mix, deteriorations within hours) or 'ward' (a general "
                f"ward, {WARD_EVENT_RATE_PER_DAY} deteriorations per patient-day: its real alert rate)"),
        )),
        Command("serve", "serve the API (InfluxDB when WARDTWIN_INFLUX_URL is set, else SQLite)", "lab.cli:serve", (
            opt("--host", default="127.0.0.1", help="interface to serve on (default 127.0.0.1)"),
            opt("--port", type=int, default=8000, help="port to serve on (default 8000)"),
        )),
        Command("simulate", "simulator: cohort files, live streaming, realism report", commands=(
            Command("cohort", "write a simulated cohort as Parquet", "simulator.cli:cohort", (
                opt("--patients", type=int, required=True, help="patients in the cohort"),
                opt("--hours", type=float, required=True, help="hours per patient"),
                opt("--seed", type=int, required=True, help="simulator seed (every patient a function of it)"),
                opt("--out", type=Path, required=True, help="output directory"),
                opt("--start", help="admission time of every patient, UTC ISO 8601 (default 2026-01-05T00:00Z)"),
                opt("--mix", help=f"'ward' (the default: a general ward, {WARD_EVENT_RATE_PER_DAY} deteriorations "
                    "per patient-day), 'enriched' (the training mix: "
                    + ", ".join(f"{k}={v}" for k, v in ENRICHED_MIX.items())
                    + ") or archetype weights, e.g. 'stable=0.7,sepsis=0.1,...'"),
                opt("--event-rate", type=float, help="planned deteriorations per patient-day (overrides --mix; "
                    f"a general ward: {WARD_EVENT_RATE_PER_DAY})"),
                opt("--quiet", flag=True, help="no progress line"),
            )),
            Command("live", "stream a simulated ward to the service, InfluxDB or Parquet", "simulator.cli:live", (
                opt("--url", help="service base URL (POST {url}/v1/readings)"),
                opt("--key", default=os.environ.get("WARDTWIN_API_KEY"),
                    help="API key with the device role for --url (default: $WARDTWIN_API_KEY; never printed)"),
                opt("--influx-url", help="InfluxDB base URL (v1 /write)"),
                opt("--database", default="wardtwin", help="InfluxDB database (with --influx-url; default wardtwin)"),
                opt("--parquet-out", type=Path, help="also append readings to DIR/readings.parquet"),
                opt("--beds", type=int, default=24, help="beds on the ward (default 24)"),
                opt("--speed", type=float, default=60.0,
                    help="simulated seconds per real second (default 60); simulated time never passes the wall "
                         "clock (the service refuses future readings), so an accelerated run replays from --start "
                         "(or --history-hours ago) until it catches up, then runs in real time"),
                opt("--seed", type=int, default=7, help="simulator seed (default 7)"),
                opt("--start", help="simulated start (UTC ISO 8601); default now minus --history-hours"),
                opt("--history-hours", type=float, default=0.0, help="send this much history first, at once"),
                opt("--duration", type=float, help="stop after this many real seconds (default: run until Ctrl-C)"),
                opt("--mix", help="'ward', 'enriched' (the default here) or archetype weights (see `simulate "
                    "cohort --help`)"),
            ), check=_check_live),
            Command("report", "realism report of the simulator", "simulator.cli:report", (
                opt("--out", type=Path, default=Path("reports/simulator"), help="output directory "
                    "(default reports/simulator)"),
                opt("--patients", type=int, default=500, help="patients per seed (default 500)"),
                opt("--hours", type=float, default=24.0, help="hours per patient (default 24)"),
                opt("--seeds", type=int_list, default="1,2,3", help="comma-separated seeds (default 1,2,3)"),
            )),
        )),
        Command("train", "train the twin on a simulated cohort and write its JSON artifact", "lab.models_cmd:train", (
            *_cohort_options(patients=1500, hours=48, seed=42, mix="enriched"),  # events enough to learn from
            opt("--train-seed", type=int, default=7, help="split and estimator seed (default 7)"),
            opt("--out", type=Path, help="artifact path, MODEL_CARD.md beside it (default: the shipped "
                f"{shipped_twin}, only with --physionet-records)"),
            opt("--no-challenger", flag=True, help="skip the gradient-boosting challenger"),
            opt("--variant", help="force a feature variant (lab.train.VARIANTS) to study it; default: the stated "
                "selection rule chooses (never ship a forced one)"),
            opt("--physionet-records", type=Path, help="PhysioNet 2012 set-A records (.tar.gz or folder): compare "
                "training on the simulator, set A or both (lab.source_choice.SOURCE_RULE) and ship the rule's choice"),
            opt("--physionet-outcomes", type=Path, help="Outcomes-a.txt (with --physionet-records)"),
            opt("--sources-report", type=Path, default=Path("reports/sources"),
                help="where the training-data comparison is written (with --physionet-records; default "
                     "reports/sources)"),
            opt("--physionet-limit", type=int, help="at most N set-A stays (quick checks only; never for the "
                "shipped twin)"),
            opt("--alert-budget", type=float, help="the twin's alert budget, alerts per 100 patient-days on the "
                "simulated general ward, from which its threshold is set (default "
                "lab.train.ALERT_BUDGET_PER_100_PATIENT_DAYS, 5)"),
        ), check=_check_train, with_command_line=True),
        Command("calibrate", "refit the twin's calibration map (slope, intercept) on a site's own out-of-sample "
                "scores, weights unchanged, and write a new artifact", "lab.calibrate:calibrate", (
                    opt("--scores", type=Path, required=True, help="CSV of the twin's scores on the site's patients: "
                        "'outcome' (0/1) and 'logit' or 'risk', optionally 'patient_id' (bootstrap by patient)"),
                    opt("--out", type=Path, required=True, help="where the recalibrated artifact JSON is written"),
                    opt("--artifact", type=Path, help=f"twin artifact that scored them (default {shipped_twin})"),
                    opt("--bootstrap", type=int, default=200, help="bootstrap resamples for the 95 %% intervals of "
                        "slope and observed/expected (default 200)"),
                )),
        Command("evaluate", "evaluate the twin against NEWS2 on held-out simulated patients (and the studies below)",
                "lab.models_cmd:evaluate", (
                    *_cohort_options(patients=600, hours=48, seed=2024),
                    opt("--seeds", type=distinct_seeds, help="simulator seeds, each an independent evaluation "
                        "cohort (e.g. 1,2,3); default: --seed"),
                    opt("--artifact", type=Path, help=f"twin artifact (default {shipped_twin})"),
                    opt("--challenger", type=Path, help="challenger JSON (default: beside the artifact)"),
                    opt("--out", type=Path, default=Path("reports/evaluation"), help="output directory (default "
                        "reports/evaluation)"),
                    opt("--bootstrap", type=int, default=200, help="bootstrap resamples for 95 %% intervals "
                        "(default 200)"),
                    opt("--no-model-card", flag=True, help="do not rewrite MODEL_CARD.md with the results"),
                    opt("--physionet-report", type=Path, default=Path("reports/physionet2012/report.json"),
                        help="real-data results put in the model card beside these (wardtwin evaluate "
                             "physionet2012)"),
                ), commands=(
            Command("physionet2012", "score every real ICU stay (PhysioNet 2012 set A) at every hour 1..48 with the "
                    "shipped twin and NEWS2; writes scores.csv, report.json, index.html and plots",
                    "lab.physionet_cmd:evaluate_stays", (
                        *_records_options(),
                        opt("--out", type=Path, required=True, help="output directory"),
                        opt("--artifact", type=Path, help=f"twin artifact (default {shipped_twin})"),
                        opt("--bootstrap", type=int, default=500, help="bootstrap resamples for 95 %% intervals "
                            "(default 500)"),
                        opt("--seed", type=int, default=2012, help="bootstrap seed (default 2012)"),
                        opt("--batch", type=int, default=200, help="stays scored together, memory vs speed "
                            "(default 200)"),
                        opt("--cv-variant", flag=True, help="also fit the twin's model on these stays with "
                            "patient-level cross-validation (lab.physionet_cv) and write cv_variant.json and its "
                            "section; never shipped"),
                        opt("--cv-folds", type=int, default=5, help="outer folds for --cv-variant (default 5)"),
                        opt("--out-of-fold", type=Path, default=Path("reports/sources/set_a_out_of_fold.csv.gz"),
                            help="when the twin was fitted on these very records: its out-of-fold logits (written "
                                 "by wardtwin train --physionet-records), judged instead of its in-sample risk"),
                    )),
            Command("set-a-weights", "which signals the shipped (simulator-trained) twin under-weights on PhysioNet "
                    "2012 set A: its weights against set A's own fit and what each feature refitted on set A adds, "
                    "out of fold (analysis; nothing shipped)", "lab.set_a_weights:set_a_weights_command", (
                        opt("--records", type=Path, required=True, help="set-a.tar.gz or a folder of RECORDID.txt "
                            "files"),
                        opt("--limit", type=int, help="at most N stays, in archive order (default: all)"),
                        opt("--out", type=Path, default=Path("reports/physionet2012/set_a_weights.json"),
                            help="JSON written (default reports/physionet2012/set_a_weights.json)"),
                        opt("--artifact", type=Path, help=f"twin artifact (default {shipped_twin})"),
                        opt("--bootstrap", type=int, default=200, help="bootstrap resamples for the 95 %% intervals "
                            "of the headline margins (default 200)"),
                        opt("--simulator-folds", flag=True, help="also regenerate the twin's training cohort (from "
                            "its artifact) and score set A with each fold model of the source comparison's simulator "
                            "candidate (several minutes more)"),
                    )),
            Command("alert-burden", "alerts per 100 patient-days and first-event lead time on simulated cohorts, "
                    "counted by the service's own alert engine", "lab.alert_burden:alert_burden_command", (
                        opt("--patients", type=int, default=100, help="patients per seed (default 100)"),
                        opt("--hours", type=float, default=48.0, help="hours per patient (default 48)"),
                        opt("--seeds", type=int_list, default="1,2,3", help="comma-separated simulator seeds "
                            "(default 1,2,3)"),
                        opt("--out", type=Path, default=Path("reports/alert-burden"), help="output directory "
                            "(default reports/alert-burden)"),
                        opt("--bootstrap", type=int, default=1000, help="patient-bootstrap replicates (default 1000)"),
                        opt("--progress-every", type=int, default=48, help="print progress every N windows "
                            "(default 48; 0: never)"),
                        opt("--jobs", type=int, default=1, help="seeds run at once, each in its own process "
                            "(default 1; the results do not depend on it)"),
                    ), with_command_line=True),
            Command("alert-burden-physionet2012", "the same alert-burden study on real ICU stays (PhysioNet 2012 set "
                    "A) streamed through the service", "lab.alert_burden_physionet:alert_burden_physionet_command", (
                        opt("--records", type=Path, required=True, help="set-a.tar.gz or a folder of RECORDID.txt"),
                        opt("--limit", type=int, default=500, help="the first N stays of the archive (default 500)"),
                        opt("--hours", type=float, default=48.0, help="stream the first N hours of each stay "
                            "(default 48)"),
                        opt("--out", type=Path, default=Path("reports/alert-burden-physionet2012"),
                            help="output directory (default reports/alert-burden-physionet2012)"),
                        opt("--alert-settings", type=_alert_settings, help="run the service with these alert-policy "
                            "settings instead of the shipped ones: NAME=VALUE,... (e.g. obs_due_aggregate=5,"
                            "obs_due_single_parameter=3); the report records them"),
                        opt("--bootstrap", type=int, default=1000, help="patient-bootstrap replicates (default 1000)"),
                        opt("--progress-every", type=int, default=48, help="print progress every N windows "
                            "(default 48; 0: never)"),
                    ), with_command_line=True),
            Command("alert-day", "one day of the demo ward through the alert lifecycle, nobody acknowledging: "
                    "alerts, escalations, re-notifications and what the lifecycle suppressed",
                    "lab.alert_day:alert_day_command", (
                        opt("--beds", type=int, default=24, help="beds on the ward (default 24)"),
                        opt("--seed", type=int, default=7, help="the ward's simulator seed (default 7)"),
                        opt("--hours", type=float, default=24.0, help="hours to run (default 24)"),
                        opt("--start", type=datetime.fromisoformat, help=_START),
                        opt("--json", type=Path, dest="json_out", help="also write the result as JSON here"),
                    )),
        )),
        Command("import", "import real ICU stays into the configured store", commands=(
            Command("physionet2012", "PhysioNet 2012 set A into the configured store (SQLite by default, InfluxDB "
                    "when WARDTWIN_INFLUX_URL is set)", "lab.physionet_cmd:import_stays", _records_options()),
        )),
        Command("keys", "API keys in DATA_DIR/access.db (or WARDTWIN_CONTROL_DB): create, list, revoke", commands=(
            Command("create", "create a key and print its token (once)", "lab.keys_cmd:create", (
                opt("--role", required=True, choices=tuple(ROLES), help="the key's role"),
                opt("--name", required=True, help='who holds it, e.g. "ward 7 board" (audit shows it)'),
                opt("--scope", help='device keys only: the patient ids it may write, comma-separated prefixes or '
                    'globs, e.g. "bed-0*,bed-1?" (default: every patient)'),
                _DATA_DIR,
            ), check=_check_key_name),
            Command("list", "every key: id, role, name, created, revoked (never the tokens)", "lab.keys_cmd:list_keys",
                    (_DATA_DIR,)),
            Command("revoke", "revoke a key by its id", "lab.keys_cmd:revoke", (
                opt("key_id", metavar="KEY_ID", help="the key's id (wardtwin keys list)"),
                _DATA_DIR,
            )),
        )),
        Command("store", "the configured vital store (WARDTWIN_* settings)", commands=(
            Command("accept-database", "adopt the InfluxDB database as it is now, after /healthz flagged it "
                    "recreated or replaced: record its marker (a new one if missing), logged",
                    "lab.store_cmd:accept_database",
                    (opt("--data-dir", type=Path, help="data directory holding influx-spool.db (default "
                         "WARDTWIN_DATA_DIR or ./data)"),)),
        )),
        Command("webhooks", "webhook endpoints in the control store", commands=(
            Command("rekey", "re-seal every stored webhook secret with the newest key of WARDTWIN_SECRETS_KEY_FILE "
                    "(else DATA_DIR/secrets.key): exit 1 naming endpoints no key opens", "lab.webhooks_cmd:rekey",
                    (_DATA_DIR,)),
        )),
        Command("audit", "the audit trail in DATA_DIR/access.db", commands=(
            Command("verify", "walk the audit trail's hash chain: exit 0 \"N rows, chain intact\", or 1 naming the "
                    "first broken row (rows older than the chain are reported as unchained)", "lab.audit_cmd:verify",
                    (_DATA_DIR,
                     opt("--anchor", type=Path, help="a file of anchors (wardtwin audit anchor --out): also exit 1 "
                                                     "when an anchored row is gone (truncation) or rewritten"),
                     opt("--key-file", type=Path, help="the key the anchors were signed with (with --anchor)"))),
            Command("anchor", "print a signed anchor of the trail's end (last seq and row_hash) as a JSON line, for "
                    "verify --anchor to detect rows cut off the end; keep it and the key off the data host",
                    "lab.audit_cmd:anchor",
                    (_DATA_DIR,
                     opt("--key-file", type=Path, required=True, help="file holding the signing key (>= 16 bytes)"),
                     opt("--out", type=Path, help="also append the anchor to this file (one JSON line each)"))),
        )),
        Command("export", "research releases of ward data (issue 25): de-identified, differentially private",
                commands=(
            Command("deidentified", "a k-anonymous, l-diverse (t-close) export of 5-minute windows with outcomes: "
                    "export.csv, report.json (k, l, t, loss, twin AUROC, attack risks), index.html",
                    "lab.research.export_cmd:deidentified", (
                        *_research_sources(),
                        opt("--k", type=int, default=5, help="k-anonymity: patients per quasi-identifier class "
                            "(default 5)"),
                        opt("--l", type=int, default=2, dest="l_div", help="distinct l-diversity of the outcome per "
                            "class (default 2)"),
                        opt("--t", type=float, help="t-closeness bound on the outcome (EMD); default: reported only"),
                        opt("--max-suppression", type=float, default=0.05, help="largest share of patients that "
                            "may be suppressed before generalising further (default 0.05)"),
                        opt("--attacks", type=int, default=500, help="anonymeter attacks per risk (default 500; "
                            "0: skip the attack measurement)"),
                        opt("--out", type=Path, required=True, dest="out_dir", help="output directory"),
                        opt("--csv", type=Path, help="where export.csv goes (default OUT/export.csv)"),
                        opt("--demo-secret", flag=True, help="use the published demo secret for pseudonyms and "
                            "date shifts (tests and demos only; otherwise WARDTWIN_RESEARCH_SECRET is required)"),
                    ), check=_check_research_source, with_command_line=True),
            Command("aggregates", "one differentially private ward statistic, spent from the data set's budget in "
                    "the ledger (DATA_DIR/privacy.db)", "lab.research.dp_cmd:aggregates", (
                        *_research_sources(),
                        opt("--statistic", required=True, choices=("admissions", "deterioration_rate",
                                                                   "vitals_by_hour"), help="what to release"),
                        opt("--epsilon", type=float, required=True, help="epsilon this query spends"),
                        opt("--vital", default="hr_mean", help="vitals_by_hour: hr_mean, rr_mean, spo2_mean, sbp or "
                            "temp (default hr_mean)"),
                        opt("--max-hours", type=int, default=24, help="vitals_by_hour: hours of day one patient may "
                            "contribute to (default 24)"),
                        _DATA_DIR,
                    ), check=_check_research_source),
            Command("dp-report", "the DP statistics' error against the true aggregate at several epsilons "
                    "(report.json, index.html)", "lab.research.dp_cmd:dp_report", (
                        *_research_sources(),
                        opt("--epsilons", default="0.1,0.5,1,2", help="comma-separated epsilons (default "
                            "0.1,0.5,1,2)"),
                        opt("--draws", type=int, default=200, help="releases drawn per epsilon (default 200)"),
                        opt("--out", type=Path, default=Path("reports/research/dp"), dest="out_dir",
                            help="output directory (default reports/research/dp)"),
                    ), check=_check_research_source, with_command_line=True),
            Command("synthetic", "a synthetic cohort (pgmpy Bayesian network) and its evaluation: fidelity, "
                    "classifier two-sample test, TSTR vs TRTR, DCR, membership inference, augmentation, rebalancing",
                    "lab.research.synthetic_report:synthetic_command", (
                        *_research_sources(),
                        opt("--out", type=Path, default=Path("reports/research/synthetic-physionet2012"),
                            help="output directory (default reports/research/synthetic-physionet2012)"),
                        opt("--seed", type=int, default=2012, help="split, synthesizer and bootstrap seed "
                            "(default 2012)"),
                        opt("--bootstrap", type=int, default=200, help="patient-bootstrap resamples for 95 %% "
                            "intervals (default 200)"),
                        opt("--sizes", type=int_list, default="100,400", help="real train patients in the "
                            "augmentation study, comma-separated (default 100,400)"),
                    ), check=_check_research_source, with_command_line=True),
        )),
        Command("replay", "score a simulated ward's history offline and print a digest of every score",
                "lab.replay:replay_command", (
                    opt("--beds", type=int, default=24, help="beds on the ward (default 24)"),
                    opt("--seed", type=int, default=7, help="the ward's simulator seed (default 7)"),
                    opt("--hours", type=float, default=6.0, help="hours to replay (default 6)"),
                    opt("--start", type=datetime.fromisoformat, help=_START),
                    opt("--artifact", type=Path, help=f"twin artifact (default {shipped_twin})"),
                    opt("--out", type=Path, help="also write the scores as JSON lines here"),
                )),
    ))


# -- from the tree to argparse, and back to a typed call ----------------------------------------------------------
def walk(command: Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Command]]:
    """Every command beneath ``command`` with its path (``("evaluate", "alert-day")``), depth first."""
    found: list[tuple[tuple[str, ...], Command]] = []
    for child in command.commands:
        found.append(((*path, child.name), child))
        found += walk(child, (*path, child.name))
    return found


def _package_version() -> str:
    try:
        return version("wardtwin")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def _add(parser: argparse.ArgumentParser, command: Command, path: tuple[str, ...]) -> None:
    for option in command.options:
        option.add_to(parser)
    parser.set_defaults(_command=command, _parser=parser)
    if command.commands:
        sub = parser.add_subparsers(title="commands", metavar="COMMAND", dest="_" + "_".join(path or ("top",)),
                                    required=command.run is None)
        for child in command.commands:
            child_parser = sub.add_parser(child.name, help=child.help, description=child.help,
                                          prog=" ".join(("wardtwin", *path, child.name)))
            _add(child_parser, child, (*path, child.name))


def build_parser(tree: Command | None = None) -> argparse.ArgumentParser:
    tree = tree or _tree()
    listing = "\n".join(f"  wardtwin {' '.join(path):<40} {cmd.help}" for path, cmd in walk(tree))
    parser = argparse.ArgumentParser(prog="wardtwin", description=tree.help,
                                     epilog="every command (--help on each):\n" + listing,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"wardtwin {_package_version()}",
                        help="print the installed package's version and exit")
    _add(parser, tree, ())
    return parser


def serve(*, host: str, port: int) -> int:
    """``wardtwin serve``: the service alone (settings from ``WARDTWIN_*``); imports nothing of the lab."""
    import uvicorn

    # permessage-deflate off: it compresses every frame once per client (the alert fan-out's largest cost at
    # 1,000 clients after the store writes, issue 14); alert frames are ~1 kB of JSON on a hospital LAN.
    from app.api.serving import uvicorn_options
    from app.settings import Settings

    uvicorn.run("app.main:app_from_env", factory=True, host=host, port=port, log_level="info",
                ws_per_message_deflate=False, **uvicorn_options(Settings()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
        command: Command = ns._command
        kwargs = {option.name: getattr(ns, option.name) for option in command.options}
        problem = command.check(kwargs) if command.check else None
        if problem:
            ns._parser.error(problem)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse has printed it)
        return exc.code if isinstance(exc.code, int) else 1
    if command.with_command_line:
        kwargs["command_line"] = " ".join(["wardtwin", *argv])
    module, _, name = (command.run or "").partition(":")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(getattr(importlib.import_module(module), name)(**kwargs))


if __name__ == "__main__":
    sys.exit(main())
