"""End to end through real Airflow: Netskope simulator -> collect -> map -> load -> warehouse.

Runs on both warehouse backends (DuckDB file, PostgreSQL) and compares the warehouse with the
simulator's ground truth.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import NETSKOPE_START
from tests.e2e.dag_runner import run_window, task_states, write_instance

pytestmark = pytest.mark.airflow_e2e


@pytest.fixture
def alert_dag(tmp_path, monkeypatch, airflow_db, netskope_sim, warehouse_conn):
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    return write_instance(
        tmp_path,
        {
            "name": "e2e",
            "tenant": "acme",
            "type": "netskope",
            "conn_id": "netskope_test",
            "netskope_tenant": "acme",
            "api_version": "v2",
            "content_types": ["alert"],
            "interval_minutes": 60,
            "settle_lag_seconds": 0,
        },
    )


def _syslog_ids(wh, content_type="alert"):
    return [r[0] for r in wh.query("SELECT vendor_id FROM syslog WHERE content_type = ?", (content_type,))]


def _alert_rows(wh):
    return {
        (kind, user, dedup): count
        for kind, user, dedup, count in wh.query(
            "SELECT alert_kind, user_name, dedup_id, raw_count FROM alerts WHERE dedup_id IS NOT NULL"
        )
    }


def test_v2_alert_window_equals_ground_truth_and_rerun_adds_nothing(alert_dag, netskope_dataset, open_test_warehouse):
    start, end = NETSKOPE_START, NETSKOPE_START + timedelta(hours=1)
    run = run_window(alert_dag, start, end)
    assert str(run.state) == "success", task_states(run)

    expected = netskope_dataset.expected_ids("alert", start, end)
    with open_test_warehouse() as wh:
        ids = _syslog_ids(wh)
        assert len(ids) == len(set(ids)), "a record was loaded twice"
        assert set(ids) == expected
        # Every mapped key of the window has exactly one Alerts row.
        keys = netskope_dataset.alert_keys(start, end)
        assert set(_alert_rows(wh)) == {(k, u, i) for k, u, i in keys}
        (ledger_inserted,) = wh.query(
            "SELECT inserted_rows FROM collection_ledger WHERE dag_id = ? AND content_type = 'alert'", (alert_dag,)
        )[0]
        assert ledger_inserted == len(expected)
        before = wh.query("SELECT count(*) FROM syslog")[0][0], wh.query("SELECT sum(raw_count) FROM alerts")[0][0]

    rerun = run_window(alert_dag, start, end)
    assert str(rerun.state) == "success", task_states(rerun)
    with open_test_warehouse() as wh:
        after = wh.query("SELECT count(*) FROM syslog")[0][0], wh.query("SELECT sum(raw_count) FROM alerts")[0][0]
        assert after == before
        # The re-run staged every record again (same-_id re-deliveries included) and inserted none.
        served = len(netskope_dataset.expected_records("alert", start, end))
        assert served > len(expected), "the window should hold a re-delivered _id"
        ledger = wh.query(
            "SELECT staged_rows, duplicate_rows, inserted_rows FROM collection_ledger WHERE dag_id = ?", (alert_dag,)
        )
        # The ledger sums both loads: every record staged twice, inserted once; staged = inserted +
        # duplicates (+ quarantined, none here) for the row as for each load.
        assert ledger == [(2 * served, 2 * served - len(expected), len(expected))]


def test_overlapping_windows_add_no_duplicates(alert_dag, netskope_dataset, open_test_warehouse):
    first = (NETSKOPE_START, NETSKOPE_START + timedelta(minutes=40))
    second = (NETSKOPE_START + timedelta(minutes=20), NETSKOPE_START + timedelta(minutes=60))
    for window in (first, second):
        run = run_window(alert_dag, *window)
        assert str(run.state) == "success", task_states(run)

    expected = netskope_dataset.expected_ids("alert", first[0], second[1])
    overlap = netskope_dataset.expected_ids("alert", second[0], first[1])
    assert overlap, "the scenario needs records in the overlap"
    with open_test_warehouse() as wh:
        ids = _syslog_ids(wh)
        assert len(ids) == len(set(ids))
        assert set(ids) == expected
        skipped = wh.query(
            "SELECT duplicate_rows FROM collection_ledger WHERE dag_id = ? AND window_start = ?", (alert_dag, second[0])
        )[0][0]
        assert skipped >= len(overlap)
        # Alert counts equal the number of distinct raw alerts per key, whatever the overlap.
        keys = netskope_dataset.alert_keys(first[0], second[1])
        rows = _alert_rows(wh)
        assert set(rows) == keys
        raw = netskope_dataset.expected_records("alert", first[0], second[1], type=["breach", "connection", "malsite"])
        for kind, user, dedup in keys:
            field = {"breach": "breach_id", "connection": "connection_id", "malsite": "malsite_id"}[kind]
            distinct = {r["_id"] for r in raw if r["type"] == kind and r["user"] == user and str(r.get(field)) == dedup}
            assert rows[(kind, user, dedup)] == len(distinct)
