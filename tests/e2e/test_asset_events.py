"""Loads emit an Airflow asset event per warehouse table they write (dag.test through real Airflow):
downstream DAGs can be scheduled on the data."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import NETSKOPE_START
from tests.e2e.dag_runner import run_window, task_states, write_instance

pytestmark = pytest.mark.airflow_e2e


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_a_load_emits_one_asset_event_per_table_with_its_window_and_rows(
    tmp_path, monkeypatch, airflow_db, netskope_sim, warehouse_conn, open_test_warehouse
):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    dag_id = write_instance(tmp_path, {
        "name": "assets", "tenant": "acme", "type": "netskope", "conn_id": "netskope_test",
        "netskope_tenant": "acme", "content_types": ["alert", "page"], "interval_minutes": 60,
        "settle_lag_seconds": 0,
    })
    start, end = NETSKOPE_START, NETSKOPE_START + timedelta(hours=1)
    run = run_window(dag_id, start, end)
    assert str(run.state) == "success", task_states(run)

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.source_task_id, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run.run_id)
        ).all()
    events = {(uri, task): extra for uri, task, extra in rows}
    with open_test_warehouse() as wh:
        inserted = dict(wh.query(
            "SELECT content_type, inserted_rows FROM collection_ledger WHERE dag_id = ?", (dag_id,)))
    # Alerts write the Syslog index and the Alerts table; pages the Syslog index: one event per load and table.
    from seccollect import registry

    spec = registry.get("netskope")
    expected = {(f"warehouse://seccollect_warehouse/{t}", f"load_{ct}")
                for ct in ("alert", "page") for t in spec.content_types[ct].tables}
    assert set(events) == expected
    syslog = events[("warehouse://seccollect_warehouse/syslog", "load_alert")]
    assert syslog["window_start"] == start.isoformat() and syslog["window_end"] == end.isoformat()
    assert syslog["rows_inserted"] == inserted["alert"] > 0
