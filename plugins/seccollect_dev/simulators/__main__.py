"""Run vendor simulators as a process: ``python -m seccollect_dev.simulators --netskope-port 0``.

Why a process: the demo and end-to-end tests run Airflow tasks in other processes, which
need a URL to talk to. Once every simulator listens, the state file receives
``{"<vendor>": {"url": ..., "pid": ...}}`` (written atomically, so a poller never reads half a
file); the process then runs until SIGTERM/SIGINT and removes the state file on the way out.

Vendors are entries of :data:`VENDORS`; a vendor runs when its ``--<vendor>-port`` is given,
and all vendors run (on free ports) when none is.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from seccollect_dev.simulators.base import SimulatorApp, SimulatorServer

log = logging.getLogger("seccollect_dev.simulators")


@dataclass(frozen=True)
class VendorSpec:
    """How to add a vendor's options to the CLI and build its app from parsed args."""

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    build: Callable[[argparse.Namespace], SimulatorApp]


def _netskope_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("netskope")
    group.add_argument(
        "--netskope-port", type=int, default=None, help="port for the Netskope simulator (0 = any free port)"
    )
    group.add_argument(
        "--netskope-rates", default="", help="records per hour, e.g. alert=600,application=900,page=1500"
    )


def _build_netskope(args: argparse.Namespace) -> SimulatorApp:
    from seccollect_dev.simulators.netskope import ALL_V2_SCOPES, NetskopeDataset, NetskopeSimulator

    rates: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in args.netskope_rates.split(","))):
        key, _, value = item.partition("=")
        rates[key.strip()] = float(value)
    end = datetime.now(UTC).replace(microsecond=0)
    dataset = NetskopeDataset(seed=args.seed, start=end - timedelta(hours=args.hours), end=end, rates=rates)
    v2_scopes = os.environ.get("SIM_NETSKOPE_V2_SCOPES")
    scopes = tuple(s.strip() for s in v2_scopes.split(",") if s.strip()) if v2_scopes else ALL_V2_SCOPES
    return NetskopeSimulator(
        dataset,
        v1_token=os.environ.get("SIM_NETSKOPE_V1_TOKEN", "sim-netskope-v1-token"),
        v2_tokens={os.environ.get("SIM_NETSKOPE_V2_TOKEN", "sim-netskope-v2-token"): scopes},
    )


VENDORS: dict[str, VendorSpec] = {
    "netskope": VendorSpec("netskope", _netskope_arguments, _build_netskope),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seccollect_dev.simulators", description="Run local vendor API simulators."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--hours", type=float, default=2.0, help="generated data covers this many hours before now"
    )
    parser.add_argument(
        "--state-file", type=Path, default=None, help="write {vendor: {url, pid}} here once listening"
    )
    parser.add_argument("--log-level", default="WARNING")
    for spec in VENDORS.values():
        spec.add_arguments(parser)
    return parser


def _write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    chosen = [name for name in VENDORS if getattr(args, f"{name}_port") is not None]
    chosen = chosen or list(VENDORS)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    servers: dict[str, SimulatorServer] = {}
    try:
        for name in chosen:
            port = getattr(args, f"{name}_port") or 0
            servers[name] = SimulatorServer(VENDORS[name].build(args), host=args.host, port=port).start()
        state = {name: {"url": srv.url, "pid": os.getpid()} for name, srv in servers.items()}
        if args.state_file is not None:
            _write_state(args.state_file, state)
        print(json.dumps(state), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for srv in servers.values():
            srv.stop()
        if args.state_file is not None and servers:
            args.state_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
