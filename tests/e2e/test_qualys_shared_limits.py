"""Two instances on one Qualys account backfilling at once, each in its own Airflow process (its own
``dag.test()`` runs, metadata database and warehouse), never exceed the account's concurrency limit:
every call holds one of the account's shared slots, so the simulator - which counts concurrent calls
and refuses the one too many with 409/1960 - never sees more than the limit and never has to refuse.

Twice: with the slots in lock files both processes share (one machine), and with the slots in Redis
(``SECCOLLECT_LIMITS_URL``) while each process has lock files of its own, as workers on two machines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.e2e.dag_runner import write_instance
from tests.seccollect.vendors.qualys.conftest import QUALYS_PASSWORD, QUALYS_START, QUALYS_USER

pytestmark = pytest.mark.airflow_e2e

BACKFILL = """
import sys
from datetime import datetime, timedelta
from tests.e2e.dag_runner import run_window, task_states
dag_id, start, windows = sys.argv[1], datetime.fromisoformat(sys.argv[2]), int(sys.argv[3])
for number in range(windows):
    window_start = start + timedelta(minutes=20 * number)
    run = run_window(dag_id, window_start, window_start + timedelta(minutes=20))
    assert str(run.state) == "success", task_states(run)
print("BACKFILLED", dag_id)
"""


@pytest.mark.parametrize("store", ["lock files", "redis"])
def test_two_instances_on_one_account_never_exceed_its_concurrency_limit(tmp_path, monkeypatch, airflow_db, qualys_sim,
                                                                         store):
    limits_env = {}
    if store == "redis":
        limits_env = {"SECCOLLECT_LIMITS_URL": _redis_url()}
    qualys_sim.options.concurrency_limit = 1
    qualys_sim.options.response_delay = 0.2  # each call takes a while: overlapping calls would be seen
    dag_ids = []
    for name, conn_id in (("a", "qualys_test"), ("b", "qualys_test_b")):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps({"conn_type": "qualys", "host": qualys_sim.url + "/", "login": QUALYS_USER,
                        "password": QUALYS_PASSWORD, "extra": {"concurrency_limit": 1, "concurrency_wait_seconds": 0.2}}),
        )
        connectors = tmp_path / f"connectors-{name}"
        connectors.mkdir()
        dag_ids.append(write_instance(connectors, {
            "name": name, "tenant": "acme", "type": "qualys", "conn_id": conn_id, "interval_minutes": 20,
            "settle_lag_seconds": 0, "truncation_limit": 5, "retries": 0}))
    processes = []
    for dag_id in dag_ids:
        home = tmp_path / f"home-{dag_id}"
        shutil.copytree(airflow_db, home, ignore=shutil.ignore_patterns("staging", "logs", "connectors"))
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "CONNECTORS_DIR": str(tmp_path / f"connectors-{dag_id.rsplit('-', 1)[1]}"),
            "SECCOLLECT_STAGING_URL": "file://" + str(home / "staging"),
            "AIRFLOW_CONN_SECCOLLECT_WAREHOUSE": json.dumps({"conn_type": "duckdb", "host": str(home / "wh.duckdb")}),
            **limits_env,
        }
        if store == "redis":  # nothing on disk in common: only Redis can keep the two apart
            env["SECCOLLECT_SLOTS_DIR"] = str(home / "slots")
        processes.append(subprocess.Popen(
            [sys.executable, "-c", BACKFILL, dag_id, QUALYS_START.isoformat(), "3"], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=540)[0] for p in processes]
    finally:
        if store == "redis":  # the account's call budgets (the slots leave nothing once released)
            import redis

            client = redis.Redis.from_url(limits_env["SECCOLLECT_LIMITS_URL"])
            for key in client.scan_iter(f"seccollect:budget:qualys:{qualys_sim.url}|*"):
                client.delete(key)
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
        assert "BACKFILLED" in output
    # Both backfills called the API (6 collect tasks each, several pages per window) ...
    assert qualys_sim.stats.count() >= 2 * 6 * 2
    # ... one call at a time, as the account allows, and none had to be refused.
    assert qualys_sim.max_running == 1
    assert qualys_sim.concurrency_rejections == 0


def _redis_url() -> str:
    import redis

    url = os.environ.get("SECCOLLECT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis at {url} does not answer: {exc} (REQUIRE_SERVICES=1)")
        pytest.skip(f"Redis at {url} does not answer")
    return url
