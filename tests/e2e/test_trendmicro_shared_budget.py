"""Two instances on one API key backfilling at once, in separate processes, through real Airflow
(dag.test in each): zero 429s, all data collected, and the simulator never sees more requests than the
budget in any rate window. The rate window is sped up (a 2-second "minute") so the test takes about a
minute; the client's budget period is shortened to match (connection extra ``rate_period_seconds``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from seccollect_dev.simulators.trendmicro import max_in_window
from tests.e2e.dag_runner import write_instance

pytestmark = pytest.mark.airflow_e2e

REPO = Path(__file__).resolve().parents[2]
#: 4 requests per 4-second "minute" (sped up ×15). The margin the budget keeps per period is 1 s: on
#: a shared 2-core machine a request can take a few hundred ms from leaving its budget to reaching the
#: simulator, which at this speed is a large part of a minute (at 60 s the default 1.2 s is plenty).
LIMIT, PERIOD, MARGIN = 4, 4.0, 1.0
EVENTS = ("dlp", "ransomware", "securityrisk", "virtualanalyzer")

_BACKFILL = """
import sys
from datetime import datetime
from tests.e2e.dag_runner import run_window, task_states
dag_id, *bounds = sys.argv[1:]
for start, end in zip(bounds[::2], bounds[1::2]):
    run = run_window(dag_id, datetime.fromisoformat(start), datetime.fromisoformat(end))
    if str(run.state) != "success":
        print("FAILED", start, task_states(run), flush=True)
        sys.exit(1)
"""


def test_two_instances_on_one_key_in_two_processes_stay_inside_the_budget(
    tmp_path, monkeypatch, airflow_db, cas_dataset, cas_now, warehouse_conn, open_test_warehouse, budget_file
):
    from seccollect_dev.simulators.base import SimulatorServer
    from seccollect_dev.simulators.trendmicro import CasOptions, CasSimulator

    token = f"shared-key-{uuid.uuid4().hex[:8]}"
    app = CasSimulator(cas_dataset, [token], CasOptions(rate_limit=LIMIT, rate_period=PERIOD))
    windows = [(cas_now - timedelta(hours=h), cas_now - timedelta(hours=h - 1)) for h in (12, 11)]
    connectors = tmp_path / "connectors"
    connectors.mkdir()
    monkeypatch.setenv("CONNECTORS_DIR", str(connectors))
    with SimulatorServer(app) as server:
        conn = {"conn_type": "trendmicro_cas", "host": server.url, "password": token,
                "extra": {"requests_per_minute": LIMIT, "rate_period_seconds": PERIOD,
                          "rate_margin_seconds": MARGIN}}
        monkeypatch.setenv("AIRFLOW_CONN_TRENDMICRO_SHARED", json.dumps(conn))
        dag_ids = [
            write_instance(connectors, {
                "name": name, "tenant": tenant, "type": "trendmicro_cas", "conn_id": "trendmicro_shared",
                "content_types": ["sharepoint"], "interval_minutes": 60, "settle_lag_seconds": 0, "page_size": 10,
                "start_date": windows[0][0].isoformat(),
            })
            # Two tenants' instances (record ids derive from the tenant) whose one API key is shared.
            for name, tenant in (("first", "acme"), ("second", "globex"))
        ]
        procs = []
        for number, dag_id in enumerate(dag_ids):
            home = tmp_path / f"airflow-{number}"
            home.mkdir()
            shutil.copy(Path(airflow_db) / "airflow.db", home / "airflow.db")
            env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                   "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
            args = [b.isoformat() for window in windows for b in window]
            procs.append(subprocess.Popen([sys.executable, "-c", _BACKFILL, dag_id, *args], cwd=REPO, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = []
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            outputs.append(out)
        for proc, out in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, out[-3000:]

    log = app.request_log
    statuses = [r.status for r in log]
    assert statuses.count(429) == 0 and set(statuses) == {200}
    assert max_in_window([r.at for r in log], PERIOD) <= LIMIT
    # The budget was the bottleneck (not Airflow): some window was used to the full.
    assert max_in_window([r.at for r in log], PERIOD) == LIMIT
    expected = set().union(*(cas_dataset.expected_ids("sharepoint", e, windows[0][0], windows[-1][1]) for e in EVENTS))
    with open_test_warehouse() as wh:
        for name in ("first", "second"):
            ids = [r[0] for r in wh.query("SELECT vendor_id FROM syslog WHERE instance = ?", (name,))]
            assert len(ids) == len(set(ids)) and set(ids) == expected
