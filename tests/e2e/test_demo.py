"""`make demo` end to end: a real Airflow collects the demo's windows through the scheduler, so the runs
have task logs and true start and end times; the summary names every demo DAG; nothing is left running.

Runs the demo's own entry point in a child process with its state in a temporary folder (``DEMO_ROOT``)
and its simulators on free ports, over the last 15 minutes instead of the hour.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.scheduler]


def test_the_demo_backfills_every_demo_dag_with_true_runs_and_stops_everything(
    tmp_path: Path, postgres_server: dict[str, object]
) -> None:
    from seccollect_dev.airflow_stack import PostgresServer, free_port
    from seccollect_dev.simulators import SIMULATORS

    env = {**os.environ, "DEMO_ROOT": str(tmp_path)}
    for name in SIMULATORS:
        env[f"DEMO_{name.upper()}_PORT"] = str(free_port())
    pg = PostgresServer(host=str(postgres_server["host"]), port=int(postgres_server["port"]),
                        user=str(postgres_server["user"]))
    # The demo's metadata database on this server is the demo's own; a test must not share a developer's.
    env["SECCOLLECT_PGHOST"], env["SECCOLLECT_PGPORT"] = pg.host, str(pg.port)
    env["SECCOLLECT_DEMO_DATABASE"] = database = f"seccollect_demo_test_{os.getpid()}"
    before = {p.pid for p in psutil.process_iter()}
    began = datetime.now(UTC)
    try:
        demo = subprocess.Popen([sys.executable, "-m", "seccollect_dev.demo", "--minutes", "15"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = demo.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            # SIGTERM, as a CI timeout would: the demo stops the Airflow and simulators it started.
            demo.terminate()
            stdout, stderr = demo.communicate(timeout=60)
            pytest.fail(f"the demo did not finish in 10 minutes:\n{stdout[-4000:]}{stderr[-4000:]}")
    finally:
        pg.drop_database(database)
    assert demo.returncode == 0, stdout[-4000:] + stderr[-4000:]

    summary = stdout
    connectors = tmp_path / ".demo" / "connectors"
    assert sorted(p.stem for p in connectors.glob("*.yaml")), "the demo assembled no instance files"
    for dag_id in (p.stem for p in connectors.glob("*.yaml")):
        assert dag_id in summary, f"{dag_id} missing from the summary:\n{summary}"
    outcomes = re.findall(r"^(\S+): (\d+)/(\d+) runs succeeded, (\d+) failed$", summary, re.MULTILINE)
    assert {o[0] for o in outcomes} == {p.stem for p in connectors.glob("*.yaml")}, summary
    # Every window of the span has its run (3 for 5-minute DAGs, 1 for 15-minute ones), all succeeded.
    assert all(int(o[2]) >= 1 and o[1] == o[2] and o[3] == "0" for o in outcomes), outcomes
    assert max(int(o[2]) for o in outcomes) >= 3, outcomes

    # Runs were made by the scheduler: each task wrote its log where the UI reads it.
    logs = tmp_path / ".airflow" / "logs"
    task_logs = list(logs.glob("dag_id=*/run_id=backfill__*/task_id=collect_*/attempt=*.log"))
    assert task_logs, f"no task logs under {logs}"
    assert all(p.stat().st_size > 0 for p in task_logs)
    # True start times: the runs started during the demo, not at their logical dates.
    state = json.loads((tmp_path / ".demo" / "runs.json").read_text())
    assert state["runs"], state
    for run in state["runs"]:
        started = datetime.fromisoformat(run["start_date"].replace("Z", "+00:00"))
        assert began - timedelta(seconds=5) <= started <= datetime.now(UTC), run
    # Nothing the demo started is left running.
    leftovers = [p for p in psutil.process_iter(["pid", "cmdline"])
                 if p.pid not in before and _environ(p).get("DEMO_ROOT") == str(tmp_path)]
    assert not leftovers, [p.info["cmdline"] for p in leftovers]


def _environ(process: psutil.Process) -> dict[str, str]:
    """The process's environment (empty when it is gone): what tells the demo's processes from others'."""
    try:
        return process.environ()
    except (psutil.Error, OSError):
        return {}
