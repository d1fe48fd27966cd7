"""Replay through real Airflow (dag.test): the Trigger form's empty fields collect the run's own window;
a replay the rules refuse fails the run before any vendor call and loads nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import NETSKOPE_START
from tests.e2e.dag_runner import task_states, write_instance

pytestmark = pytest.mark.airflow_e2e


@pytest.fixture
def dag(tmp_path, monkeypatch, airflow_db, netskope_sim, warehouse_conn):
    from seccollect.dag_factory.builder import register_dags

    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    dag_id = write_instance(tmp_path, {
        "name": "replay", "tenant": "acme", "type": "netskope", "conn_id": "netskope_test",
        "netskope_tenant": "acme", "content_types": ["alert"], "interval_minutes": 60, "settle_lag_seconds": 0,
    })
    namespace: dict = {}
    register_dags(namespace, dag_id=dag_id)
    return namespace[dag_id]


def _ledger(open_test_warehouse, dag_id):
    with open_test_warehouse() as wh:
        return wh.query("SELECT window_start, window_end FROM collection_ledger WHERE dag_id = ?", (dag_id,))


def test_the_forms_empty_fields_collect_the_runs_own_window(dag, netskope_sim, open_test_warehouse):
    run = dag.test(logical_date=NETSKOPE_START, run_conf={"window_start": None, "window_end": None})
    states = task_states(run)
    assert states["load_alert"] == "success", states
    assert [(s.isoformat(), e.isoformat()) for s, e in _ledger(open_test_warehouse, dag.dag_id)] == [
        (NETSKOPE_START.isoformat(), (NETSKOPE_START + timedelta(hours=1)).isoformat())]


def test_a_refused_replay_fails_the_run_before_any_vendor_call(dag, netskope_sim, open_test_warehouse):
    backwards = {"window_start": (NETSKOPE_START + timedelta(hours=1)).isoformat(),
                 "window_end": NETSKOPE_START.isoformat()}
    served = netskope_sim.stats.total
    run = dag.test(logical_date=NETSKOPE_START, run_conf=backwards)
    states = task_states(run)
    assert str(run.state) == "failed"
    assert states["collect_alert"] == "failed" and states["load_alert"] == "upstream_failed", states
    assert _ledger(open_test_warehouse, dag.dag_id) == []
    assert netskope_sim.stats.total == served, "the vendor was called for a refused replay"
