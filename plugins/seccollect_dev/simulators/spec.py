"""What the simulators CLI and the demo need to know about one vendor simulator.

Why a spec: the CLI (``python -m seccollect_dev.simulators``) and the demo must not name vendors
one by one. Each vendor simulator module exports ``SIMULATOR = SimulatorSpec(...)``; the single
mapping :data:`seccollect_dev.simulators.SIMULATORS` lists them, and everything else loops over
it - so it can later be replaced by a lookup in the runtime connector registry.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

__all__ = ["STOP_DEADLINE", "RunningSimulator", "SimulatorSpec", "StartedServer", "stop_simulators"]

#: Seconds all the simulators of a process get, together, to stop (uvicorn's own graceful shutdown
#: of in-flight requests is 3 s, see ``SimulatorServer.GRACEFUL_SHUTDOWN``).
STOP_DEADLINE = 5.0


class RunningSimulator(Protocol):
    """A simulator serving in this process: where to reach it and how to stop it."""

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


def stop_simulators(running: Mapping[str, RunningSimulator], deadline: float = STOP_DEADLINE) -> list[str]:
    """Stop every simulator at once, waiting ``deadline`` seconds in all; the names still stopping then.

    At once rather than one after another, since each may wait for its in-flight requests; and with a
    deadline, since a stop may join a server thread without one (moto's). The servers run in daemon
    threads: one still stopping does not keep the process from exiting.
    """
    threads = {name: threading.Thread(target=sim.stop, name=f"stop-{name}", daemon=True)
               for name, sim in running.items()}
    for thread in threads.values():
        thread.start()
    until = time.monotonic() + deadline
    for thread in threads.values():
        thread.join(max(0.0, until - time.monotonic()))
    return [name for name, thread in threads.items() if thread.is_alive()]


@dataclass(frozen=True)
class StartedServer:
    """A :class:`RunningSimulator` from a URL and a stop function (e.g. moto's threaded server)."""

    url: str
    stop_server: Callable[[], None]

    def stop(self) -> None:
        self.stop_server()


@dataclass(frozen=True)
class SimulatorSpec:
    """One vendor simulator as the CLI and the demo see it.

    :param name: the vendor key (``"netskope"``, ``"aws"``); the CLI option ``--<name>-port``
        selects it.
    :param default_port: the demo's fixed local port for it.
    :param add_arguments: adds its own CLI options (prefixed with its name) to the parser.
    :param start: ``start(args, host, port)`` serves it in this process (``port=0``: any free
        port). ``args`` holds the CLI's common options (``seed``, ``hours``) and its own.
    :param connections: ``connections(url)`` -> ``{conn_id: connection dict}``: the demo's
        Airflow connections pointing at a simulator listening at ``url``.
    :param populate: optional ``populate(url, now)``: fill a running simulator with demo data
        ending at ``now`` (for simulators that are plain stores, such as S3).
    :param help: extra ``--help`` text, e.g. its own control endpoints.
    """

    name: str
    default_port: int
    add_arguments: Callable[[argparse.ArgumentParser], None]
    start: Callable[[argparse.Namespace, str, int], RunningSimulator]
    connections: Callable[[str], dict[str, dict[str, Any]]]
    populate: Callable[[str, datetime], None] | None = None
    help: str = ""
