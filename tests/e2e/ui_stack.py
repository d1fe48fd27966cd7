"""A whole Airflow with a Netskope simulator (real clock) and a DuckDB warehouse, for the tests that use
the UI's views as a person does (REST like the Trigger form, the Coverage page, a browser)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

TOKEN = "ui-v2-token-7d21"
STEP = timedelta(minutes=5)


def deploy_instance(stack: Any, api: Any, connectors: Path, settings: dict[str, Any]) -> str:
    """Write an instance file into ``connectors``; wait until the running Airflow has parsed its DAG;
    return the dag_id."""
    from seccollect.config.loader import parse_instance

    instance = parse_instance(settings, connectors / "x.yaml")
    (connectors / f"{instance.dag_id}.yaml").write_text(yaml.safe_dump(settings))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stack.check_alive()
        try:
            api.get(f"dags/{instance.dag_id}")
            return instance.dag_id
        except RuntimeError:
            time.sleep(1)
    raise TimeoutError(f"{instance.dag_id} was not parsed within 120 s")


@dataclass
class Ui:
    stack: Any
    api: Any
    connectors: Path

    def deploy(self, settings: dict[str, Any]) -> str:
        return deploy_instance(self.stack, self.api, self.connectors, settings)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        """What the Trigger form posts: a logical date (now) and the Params as conf."""
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return self.api.request("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": now, "conf": conf})

    def wait(self, dag_id: str, run_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            self.stack.check_alive()
            run = self.api.get(f"dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(2)

    def page(self, dag_id: str, *, login: bool = True) -> requests.Response:
        headers = self.api._headers() if login else {}
        return requests.get(f"{self.stack.url}/seccollect/coverage", params={"dag_id": dag_id, "hours": 3},
                            headers=headers, timeout=120)


@contextmanager
def running_ui(root: Path, postgres_server: dict[str, Any]) -> Iterator[Ui]:
    """The stack, started in ``root`` (logs, home, warehouse) and stopped afterwards."""
    from seccollect_dev.airflow_stack import AirflowStack, PostgresServer
    from seccollect_dev.simulators.base import SimulatorServer
    from seccollect_dev.simulators.netskope import ALL_V2_SCOPES, NetskopeDataset, NetskopeSimulator

    now = datetime.now(UTC)
    dataset = NetskopeDataset(seed=31, start=now - timedelta(hours=3), end=now + timedelta(hours=1),
                              rates={"alert": 300.0, "application": 1.0, "page": 1.0})
    app = NetskopeSimulator(dataset, v2_tokens={TOKEN: ALL_V2_SCOPES}, clock=time.time)
    connectors = root / "connectors"
    connectors.mkdir()
    pg = PostgresServer(host=str(postgres_server["host"]), port=int(postgres_server["port"]),
                        user=str(postgres_server["user"]))
    dbname = f"seccollect_ui_{uuid.uuid4().hex[:10]}"
    pg.ensure_database(dbname)
    with SimulatorServer(app) as server:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(root / "home"),
            "CONNECTORS_DIR": str(connectors),
            "SECCOLLECT_STAGING_URL": "file://" + str(root / "staging"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW_CONN_NETSKOPE_UI": json.dumps(
                {"conn_type": "netskope", "password": TOKEN, "extra": {"base_url": server.url, "api_version": "v2"}}
            ),
            "AIRFLOW_CONN_SECCOLLECT_WAREHOUSE": json.dumps({"conn_type": "duckdb", "host": str(root / "wh.duckdb")}),
        }
        stack = AirflowStack(env, pg.sqlalchemy_url(dbname), root / "logs", extra_env={
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3",
        })
        try:
            stack.start()
            stack.airflow("pools", "set", "warehouse_loads", "1", "DuckDB single writer")
            yield Ui(stack, stack.api(), connectors)
        finally:
            stack.stop()
            pg.drop_database(dbname)


def instance_with_a_gap(ui: Ui) -> tuple[str, datetime, datetime]:
    """Deploy and unpause (catch-up off) an instance whose first two windows are past their grace
    (40 min for 5-minute windows) and uncollected: ``(dag_id, first, second)``."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first = now - timedelta(minutes=50)
    first -= timedelta(minutes=first.minute % 5)
    dag_id = ui.deploy({"name": "ui", "tenant": "acme", "type": "netskope", "conn_id": "netskope_ui",
                        "netskope_tenant": "acme", "content_types": ["alert"], "settle_lag_seconds": 60,
                        "start_date": first.isoformat(), "catchup": False})
    ui.api.set_paused(dag_id, False)  # as the Trigger dialog offers; catch-up off: only the latest window runs
    return dag_id, first, first + STEP


def gaps(text: str) -> dict[str, str]:
    """The Coverage page's listed gaps: window start (ISO) -> status."""
    import re

    return {start: status for status, start in
            re.findall(r'<li class="gap" data-status="(\w+)" data-window-start="([^"]+)"', text)}
