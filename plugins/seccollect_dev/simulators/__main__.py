"""Run vendor simulators as a process: ``python -m seccollect_dev.simulators --netskope-port 0``.

Why a process: the demo and end-to-end tests run Airflow tasks in other processes, which
need a URL to talk to. Once every simulator listens, the state file receives
``{"<name>": {"url": ..., "pid": ...}}`` (written atomically, so a poller never reads half a
file); the process then runs until SIGTERM/SIGINT and removes the state file on the way out.

Simulators are the entries of :data:`seccollect_dev.simulators.SIMULATORS`; one runs when its
``--<name>-port`` is given, and all of them run (on free ports) when none is.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seccollect_dev.simulators import SIMULATORS
from seccollect_dev.simulators.base import FAULT_INJECTION_HELP
from seccollect_dev.simulators.spec import STOP_DEADLINE, RunningSimulator, stop_simulators

log = logging.getLogger("seccollect_dev.simulators")


def _port_option(name: str) -> str:
    return f"--{name}-port"


def _port_dest(name: str) -> str:
    return f"{name.replace('-', '_')}_port"


def build_parser() -> argparse.ArgumentParser:
    """The CLI: common options, then ``--<name>-port`` and each simulator's own options."""
    epilog = "\n".join([FAULT_INJECTION_HELP, *(spec.help for spec in SIMULATORS.values() if spec.help)])
    parser = argparse.ArgumentParser(
        prog="python -m seccollect_dev.simulators",
        description="Run local vendor API simulators (with fault injection) until SIGTERM / Ctrl-C.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data (default: %(default)s)")
    parser.add_argument(
        "--hours", type=float, default=2.0, help="generated data covers this many hours before now"
    )
    parser.add_argument(
        "--ahead-hours",
        type=float,
        default=0.0,
        help="generated data also covers this many hours after now; a simulator with a clock serves it as "
        "its clock reaches it (a live feed for `make airflow`)",
    )
    parser.add_argument(
        "--state-file", type=Path, default=None, help="write {name: {url, pid}} here once listening"
    )
    parser.add_argument("--log-level", default="WARNING")
    for name, spec in SIMULATORS.items():
        parser.add_argument(
            _port_option(name),
            dest=_port_dest(name),
            type=int,
            default=None,
            help=f"run the {name} simulator on this port (0 = any free port; demo: {spec.default_port})",
        )
        spec.add_arguments(parser)
    return parser


def _write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    chosen = [name for name in SIMULATORS if getattr(args, _port_dest(name)) is not None]
    chosen = chosen or list(SIMULATORS)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    running: dict[str, RunningSimulator] = {}
    try:
        for name in chosen:
            port = getattr(args, _port_dest(name)) or 0
            running[name] = SIMULATORS[name].start(args, args.host, port)
        state = {name: {"url": sim.url, "pid": os.getpid()} for name, sim in running.items()}
        if args.state_file is not None:
            _write_state(args.state_file, state)
        print(json.dumps(state), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        still = stop_simulators(running)
        if still:
            log.warning("simulators still stopping after %.0fs, left to the process's exit: %s", STOP_DEADLINE, still)
        if args.state_file is not None and running:
            args.state_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
