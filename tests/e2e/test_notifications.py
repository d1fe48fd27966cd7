"""A task that fails for good, through real Airflow (``dag.test()``), reaches a person: a mail and a
webhook post name the DAG, the window and the reason (and the connection to fix)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.conftest import NETSKOPE_START
from tests.e2e.dag_runner import run_window, task_states, write_instance
from tests.notify_sinks import smtp_sink, webhook_sink

pytestmark = pytest.mark.airflow_e2e

WINDOW = (NETSKOPE_START, NETSKOPE_START + timedelta(minutes=30))

GAPCHECK_DAG = """
from datetime import datetime, timedelta

from airflow.sdk import DAG

from seccollect.operators.coverage import CoverageCheckOperator

FIRST = datetime.fromisoformat("{first}")
with DAG("{dag_id}", schedule=None, start_date=FIRST - timedelta(days=1)) as dag:
    CoverageCheckOperator(task_id="check_coverage", notify={{"http_conn_id": "notify_hook"}}, schedules=[{{
        "content_type": "event", "first_window": FIRST.isoformat(), "step_seconds": 1800,
        "window_seconds": 1800, "grace_seconds": 2700, "retention_seconds": None}}])
"""


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_a_collect_task_failing_for_good_is_mailed_and_posted(
    tmp_path, monkeypatch, airflow_db, netskope_sim, warehouse_conn, staging
) -> None:
    from seccollect_dev.simulators.netskope import V2_DATA_PATHS

    base_url = json.loads(__import__("os").environ["AIRFLOW_CONN_NETSKOPE_TEST"])["extra"]["base_url"]
    monkeypatch.setenv("AIRFLOW_CONN_NETSKOPE_REVOKED", json.dumps(
        {"conn_type": "netskope", "password": "a-revoked-key-7777", "extra": {"base_url": base_url}}))
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    with smtp_sink() as mail, webhook_sink() as hook:
        monkeypatch.setenv("AIRFLOW_CONN_NOTIFY_MAIL", json.dumps(mail.connection()))
        monkeypatch.setenv("AIRFLOW_CONN_NOTIFY_HOOK", json.dumps(hook.connection()))
        dag_id = write_instance(tmp_path, {
            "name": "notified", "tenant": "acme", "type": "netskope", "conn_id": "netskope_revoked",
            "netskope_tenant": "acme", "content_types": ["alert"], "interval_minutes": 30, "retries": 0,
            "settle_lag_seconds": 0,
            "notify": {"smtp_conn_id": "notify_mail", "to": "oncall@example.org", "http_conn_id": "notify_hook"},
        })
        run = run_window(dag_id, *WINDOW)
    states = task_states(run)
    assert states["collect_alert"] == "failed", states
    assert netskope_sim.stats.count(V2_DATA_PATHS["alert"]) == 1, "a 401 is not retried"
    # One notice per task that failed for good: the collect task (its downstream tasks never ran).
    assert len(mail.mails) == 1 and len(hook.posts) == 1, (mail.mails, hook.posts)
    post = hook.posts[0]
    text = mail.text(mail.mails[0][2])
    for body in (text, post["text"]):
        assert dag_id in body
        assert "2026-03-01 00:00 .. 00:30 UTC" in body
        assert "collect_alert" in body
        assert "HTTP 401 Unauthorized" in body
        assert "Check the Airflow connection 'netskope_revoked': its credentials" in body
        assert "a-revoked-key-7777" not in body
    assert post["kind"] == "failure" and post["dag_id"] == dag_id and post["task_id"] == "collect_alert"


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_a_gap_is_told_once_across_real_runs_of_the_coverage_check(tmp_path, monkeypatch, airflow_db,
                                                                    warehouse_conn) -> None:
    """What the check told is remembered in Airflow's own XCom from one run to the next."""
    from datetime import UTC, datetime

    from seccollect.warehouse import open_warehouse
    from seccollect.warehouse.base import WindowKey

    step = timedelta(minutes=30)
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    dag_id = "acme-acme-gapcheck"

    def load(n: int) -> None:
        with open_warehouse("seccollect_warehouse") as wh:
            wh.ensure_schema()
            wh.load_window(WindowKey(dag_id, "event", first + n * step, first + (n + 1) * step), [])

    for n in (0, 1, 4, 5):  # windows 2 and 3 were never collected
        load(n)
    with webhook_sink() as hook:
        monkeypatch.setenv("AIRFLOW_CONN_NOTIFY_HOOK", json.dumps(hook.connection()))
        # dag.test() parses the DAG bundle that holds the DAG: a DAG folder of its own.
        dag_file = tmp_path / "dags" / "gapcheck.py"
        dag_file.parent.mkdir()
        dag_file.write_text(GAPCHECK_DAG.format(dag_id=dag_id, first=first.isoformat()))
        monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dag_file.parent))
        monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{
            "name": "gapcheck", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(dag_file.parent)}}]))
        namespace: dict[str, object] = {"__file__": str(dag_file)}
        exec(compile(dag_file.read_text(), str(dag_file), "exec"), namespace)  # noqa: S102 - our own file
        dag = namespace["dag"]

        def run(n: int) -> str:
            start = first + n * step
            done = dag.test(logical_date=start, run_conf={"window_start": start.isoformat(),
                                                          "window_end": (start + step).isoformat()})
            return str(done.state)

        assert run(6) == "failed"
        assert len(hook.posts) == 1 and hook.posts[0]["kind"] == "gap" and dag_id in hook.posts[0]["text"]
        load(6)
        assert run(7) == "failed"  # the gap is still there ...
        assert len(hook.posts) == 1, "... but it was told already"
