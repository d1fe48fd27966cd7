"""A real dag-processor picks up a dropped instance file within one parse cycle, and drops a removed one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.airflow_e2e

INSTANCE = {
    "name": "dropin",
    "tenant": "acme",
    "type": "netskope",
    "conn_id": "netskope_x",
    "netskope_tenant": "acme",
}
DAG_ID = "acme-netskope-dropin"


def _dag_state(dag_id: str) -> str | None:
    """'active', 'stale' or None (never seen), read from the metadata database like the UI does."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        model = session.get(DagModel, dag_id)
        if model is None:
            return None
        return "stale" if model.is_stale else "active"


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_dropped_instance_file_appears_and_removed_one_disappears(tmp_path: Path, airflow_db):
    connectors = tmp_path / "connectors"
    connectors.mkdir()
    env = {
        **os.environ,
        "CONNECTORS_DIR": str(connectors),
        # One parse cycle = min_file_process_interval; short here so the test is quick.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
    }
    log = open(tmp_path / "dag-processor.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "dag-processor"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        assert _dag_state(DAG_ID) is None
        (connectors / f"{DAG_ID}.yaml").write_text(yaml.safe_dump(INSTANCE))
        assert _wait_for(lambda: _dag_state(DAG_ID) == "active", 90), (tmp_path / "dag-processor.log").read_text()[-3000:]
        (connectors / f"{DAG_ID}.yaml").unlink()
        assert _wait_for(lambda: _dag_state(DAG_ID) == "stale", 90), (tmp_path / "dag-processor.log").read_text()[-3000:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
