"""No ConnectSecure secret leaks: the client secret, the Client-Auth-Token built from it and every access
token the simulator issued stay out of task output, Airflow metadata, staged files and warehouse rows -
also when a token expires mid-pull and when the vendor echoes the secret in an error body."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from tests.e2e.dag_runner import run_window, task_states, write_instance
from tests.e2e.test_connectsecure_pipeline import ASSETS, window
from tests.e2e.test_secrets import _log_streams_teed, _metadata_texts, _staged_texts, _warehouse_texts
from tests.seccollect.vendors.connectsecure.conftest import (
    CS_CLIENT_ID,
    CS_CLIENT_SECRET,
    CS_CONN_ID,
    CS_TENANT,
)

pytestmark = pytest.mark.airflow_e2e


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_no_connectsecure_secret_in_logs_xcom_staging_or_warehouse(
    tmp_path, monkeypatch, capfd, airflow_db, cs_sim, warehouse_conn, open_test_warehouse, no_waits,
):
    staging = tmp_path / "staging"
    monkeypatch.setenv("SECCOLLECT_STAGING_URL", f"file://{staging}")
    instances = tmp_path / "connectors"
    instances.mkdir()
    monkeypatch.setenv("CONNECTORS_DIR", str(instances))
    dag_id = write_instance(instances, {
        "name": "secrets", "tenant": "acme", "type": "connectsecure", "conn_id": CS_CONN_ID, "interval_minutes": 60,
        "content_types": ["asset", "remediation_plan", "vulnerability_suppression"], "page_size": 25, "retries": 0,
    })
    cs_sim.expire_during_pull(ASSETS, after=2)
    cs_sim.faults.add("drop", path=ASSETS, after=3)
    # The vendor echoes the secret in a failure that fails the task for good.
    cs_sim.faults.add("status", status=200, path="/r/report_queries/get_remediation",
                      body=json.dumps({"status": False, "message": f"Failed to retrieve data for {CS_CLIENT_SECRET}"}))

    capfd.readouterr()
    with _log_streams_teed() as logged:
        run = run_window(dag_id, *window(0))
    out, err = capfd.readouterr()
    states = task_states(run)
    assert states["load_asset"] == "success" and states["collect_remediation_plan"] == "failed", states
    issued = list(cs_sim._tokens)
    assert len(issued) >= 2, "a token was renewed mid-pull"
    secrets = [CS_CLIENT_SECRET, base64.b64encode(f"{CS_TENANT}+{CS_CLIENT_ID}:{CS_CLIENT_SECRET}".encode()).decode(),
               *issued]

    def leaks(text: str) -> list[str]:
        return [s for s in secrets if s in text]

    output = logged.getvalue() + out + err
    for needle in ("Failed to retrieve data for", "attempt 1 failed", "credentials expired", "Loaded window"):
        assert needle in output, f"the captured task output lacks {needle!r}: nothing was scanned"
    assert not leaks(output), "a secret reached the task output"
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    for path in (p for p in logs.rglob("*") if p.is_file()) if logs.exists() else ():
        assert not leaks(path.read_text(errors="replace")), f"a secret is in {path}"
    for kind, items in _metadata_texts([run]).items():
        for text in items:
            assert not leaks(text), f"a secret is in {kind}"
    staged = _staged_texts(staging)
    assert any("host_name" in t for t in staged), "decoded staged records were not scanned"
    assert not any(leaks(t) for t in staged), "a secret is in a staged file"
    with open_test_warehouse() as wh:
        assert wh.query("SELECT count(*) FROM syslog")[0][0] > 100
        tables = _warehouse_texts(wh)
    for table, text in tables.items():
        assert not leaks(text), f"a secret is in warehouse table {table}"
