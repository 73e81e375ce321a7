"""The one command-line entry point: ``wardtwin demo | serve | simulate | train | evaluate | import``."""

from __future__ import annotations

import argparse
import logging
import sys


def _serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wardtwin serve", description="Serve the API (settings from WARDTWIN_*).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    import uvicorn

    # permessage-deflate off: it compresses every frame once per client (the alert fan-out's largest cost at
    # 1,000 clients after the store writes, issue 14); alert frames are ~1 kB of JSON on a hospital LAN.
    uvicorn.run("app.main:app_from_env", factory=True, host=args.host, port=args.port, log_level="info",
                ws_per_message_deflate=False)
    return 0


def _demo(argv: list[str]) -> int:
    from lab.demo import main as demo_main

    return demo_main(argv)


def _simulate(argv: list[str]) -> int:
    from simulator.cli import main as simulate_main

    return simulate_main(argv)


def _train(argv: list[str]) -> int:
    from lab.models_cmd import train_main

    return train_main(argv)


def _evaluate(argv: list[str]) -> int:
    if argv[:1] == ["alert-burden"]:
        from lab.alert_burden import main as evaluate_alert_burden

        return evaluate_alert_burden(argv[1:])
    if argv[:1] == ["alert-day"]:
        from lab.alert_day import main as evaluate_alert_day

        return evaluate_alert_day(argv[1:])
    if argv[:1] == ["alert-burden-physionet2012"]:
        from lab.alert_burden_physionet import main as evaluate_alert_burden_physionet

        return evaluate_alert_burden_physionet(argv[1:])
    if argv[:1] == ["physionet2012"]:
        from lab.physionet_cmd import evaluate_main as evaluate_physionet

        return evaluate_physionet(argv)
    from lab.models_cmd import evaluate_main

    return evaluate_main(argv)


def _import(argv: list[str]) -> int:
    from lab.physionet_cmd import import_main

    return import_main(argv)


def _keys(argv: list[str]) -> int:
    from lab.keys_cmd import main as keys_main

    return keys_main(argv)


def _replay(argv: list[str]) -> int:
    from lab.replay import main as replay_main

    return replay_main(argv)


COMMANDS = {
    "demo": (_demo, "live demo: a simulated 24-bed ward scored on the embedded store"),
    "serve": (_serve, "serve the API (InfluxDB when WARDTWIN_INFLUX_URL is set, else SQLite)"),
    "simulate": (_simulate, "simulator: cohort files, live streaming, realism report"),
    "train": (_train, "train the twin on a simulated cohort and write its JSON artifact"),
    "evaluate": (_evaluate, "evaluate the twin against NEWS2 on held-out patients (or: evaluate physionet2012)"),
    "import": (_import, "import real ICU stays (import physionet2012 --records PATH --outcomes FILE)"),
    "keys": (_keys, "API keys: keys create --role clinician --name \"ward 7 board\" | keys list | keys revoke ID"),
    "replay": (_replay, "score a simulated ward's history offline and print a digest of every score"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: wardtwin {" + ",".join(COMMANDS) + "} ...\n")
        for name, (_, help_text) in COMMANDS.items():
            print(f"  {name:<10} {help_text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler, _ = COMMANDS[argv[0]]
    return handler(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
