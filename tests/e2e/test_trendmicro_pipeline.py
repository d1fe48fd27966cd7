"""End to end through real Airflow (dag.test): Trend Micro CAS simulator -> one collect task per event
type -> load -> warehouse, on DuckDB and PostgreSQL, compared with the simulator's ground truth."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.dag_runner import run_window, task_states, write_instance

pytestmark = pytest.mark.airflow_e2e

EVENTS = ("dlp", "ransomware", "securityrisk", "virtualanalyzer")


def _instance(tmp_path, monkeypatch, first_window, **overrides):
    """An instance whose first window is ``first_window`` (the coverage check judges the windows before
    the run's own, so none may lie before the test's first)."""
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    settings = {
        "name": "e2e",
        "tenant": "acme",
        "type": "trendmicro_cas",
        "conn_id": "trendmicro_test",
        "content_types": ["sharepoint"],
        "interval_minutes": 60,
        "settle_lag_seconds": 0,
        "page_size": 25,
        "start_date": first_window.isoformat(),
        **overrides,
    }
    return write_instance(tmp_path, settings)


@pytest.fixture
def cas_dag(tmp_path, monkeypatch, airflow_db, cas_sim, warehouse_conn, cas_now):
    def make(first_window, **overrides):
        return _instance(tmp_path, monkeypatch, first_window, **overrides)

    return make


def _loaded(wh, content_type="sharepoint"):
    return [r[0] for r in wh.query("SELECT vendor_id FROM syslog WHERE content_type = ?", (content_type,))]


def _expected(dataset, start, end, events=EVENTS, service="sharepoint"):
    return {event: dataset.expected_ids(service, event, start, end) for event in events}


def test_every_event_type_equals_ground_truth_and_rerun_adds_nothing(cas_dag, cas_dataset, cas_now, open_test_warehouse, cas_sim):
    start, end = cas_now - timedelta(hours=6), cas_now - timedelta(hours=5)
    cas_dag = cas_dag(start)
    run = run_window(cas_dag, start, end)
    assert str(run.state) == "success", task_states(run)
    assert set(task_states(run)) >= {f"collect_sharepoint_{e}" for e in EVENTS} | {"load_sharepoint"}

    expected = _expected(cas_dataset, start, end)
    assert all(expected.values()), "every event type needs records in the window"
    with open_test_warehouse() as wh:
        ids = _loaded(wh)
        assert len(ids) == len(set(ids)), "a record was loaded twice"
        assert set(ids) == set().union(*expected.values())
        # Each record kept its event type and its envelope.
        rows = wh.query("SELECT msg_class, msg_origin_source, msg_origin_vendor, msg_origin_category FROM syslog")
        assert set(rows) == {("trendmicro_cas_sharepoint", "trendmicro_cas", "trendmicro", "cloud_security")}
        before = wh.query("SELECT count(*) FROM syslog")[0][0]
    # Every request sent both bounds and the documented format.
    first = [r.params for r in cas_sim.request_log if "page_token" not in r.params]
    assert sorted(p["event"] for p in first) == sorted(EVENTS)
    assert {(p["start"], p["end"]) for p in first} == {(start.strftime("%Y-%m-%dT%H:%M:%S.000Z"), end.strftime("%Y-%m-%dT%H:%M:%S.000Z"))}

    rerun = run_window(cas_dag, start, end)
    assert str(rerun.state) == "success", task_states(rerun)
    with open_test_warehouse() as wh:
        assert wh.query("SELECT count(*) FROM syslog")[0][0] == before


def test_a_record_on_a_window_boundary_is_collected_once(cas_dag, cas_dataset, cas_now, open_test_warehouse):
    t0 = cas_now - timedelta(hours=10)
    windows = [(t0, t0 + timedelta(hours=1)), (t0 + timedelta(hours=1), t0 + timedelta(hours=2))]
    cas_dag = cas_dag(t0)
    for window in windows:
        run = run_window(cas_dag, *window)
        assert str(run.state) == "success", task_states(run)
    on_boundary = {
        r.log_item_id
        for event in EVENTS
        for r in cas_dataset.records("sharepoint", event)
        if r.generated == windows[0][1].timestamp()
    }
    assert len(on_boundary) == len(EVENTS), "the dataset holds a record exactly on the shared boundary"
    expected = set().union(*_expected(cas_dataset, t0, windows[1][1]).values())
    with open_test_warehouse() as wh:
        ids = _loaded(wh)
        assert len(ids) == len(set(ids)) and set(ids) == expected
        assert on_boundary <= set(ids)


def test_a_window_older_than_72_hours_is_refused_up_front_and_shown_lost_to_retention(
    cas_dag, cas_now, open_test_warehouse, cas_sim
):
    start = cas_now - timedelta(hours=75)
    cas_dag = cas_dag(start)
    run = run_window(cas_dag, start, start + timedelta(hours=1))
    assert str(run.state) == "failed"
    states = task_states(run)
    assert {states[f"collect_sharepoint_{e}"] for e in EVENTS} == {"failed"}
    assert cas_sim.request_log == [], "nothing is asked of the API for a window it no longer serves"
    with open_test_warehouse() as wh:
        assert wh.query("SELECT count(*) FROM collection_ledger")[0][0] == 0
        statuses = {r["window_start"]: r["status"] for r in wh.coverage(cas_dag)}
        if statuses:  # the coverage check ran: the refused window is lost to retention, not missing
            assert statuses[start] == "lost_to_retention"


def test_horizon_message_names_the_connection(cas_now):
    from airflow.sdk.exceptions import AirflowFailException

    from seccollect.vendors.trendmicro.operators import TrendMicroCasCollectOperator

    op = TrendMicroCasCollectOperator(task_id="t", tenant="t", instance_name="i", content_type="sharepoint",
                                      event_type="dlp", trendmicro_cas_conn_id="cas_conn_x")
    with pytest.raises(AirflowFailException) as refused:
        op.check_horizon(cas_now - timedelta(hours=73), cas_now - timedelta(hours=72), now=cas_now)
    assert "cas_conn_x" in str(refused.value) and "72 hours" in str(refused.value)
    op.check_horizon(cas_now - timedelta(hours=71), cas_now - timedelta(hours=70), now=cas_now)


def test_bad_key_fails_the_run_without_retries(tmp_path, monkeypatch, airflow_db, cas_sim, warehouse_conn, cas_now):
    import json

    monkeypatch.setenv("AIRFLOW_CONN_CAS_BADKEY", json.dumps(
        {"conn_type": "trendmicro_cas", "host": cas_sim.url, "password": "wrong-key"}))
    dag_id = _instance(tmp_path, monkeypatch, cas_now - timedelta(hours=3), conn_id="cas_badkey", event_types=["dlp"])
    run = run_window(dag_id, cas_now - timedelta(hours=3), cas_now - timedelta(hours=2))
    assert str(run.state) == "failed"
    assert task_states(run)["collect_sharepoint_dlp"] == "failed"
    assert [r.status for r in cas_sim.request_log] == [401]  # failed for good at once: no retry


def test_bad_base_url_fails_naming_the_connection(tmp_path, monkeypatch, airflow_db, cas_sim, warehouse_conn, cas_now):
    import json

    from airflow.sdk.exceptions import AirflowFailException  # noqa: F401

    from seccollect.vendors.trendmicro.hook import TrendMicroCasHook

    monkeypatch.setenv("AIRFLOW_CONN_CAS_HTTP", json.dumps(
        {"conn_type": "trendmicro_cas", "host": "http://api.tmcas.trendmicro.com", "password": "k"}))
    with pytest.raises(ValueError) as refused:
        TrendMicroCasHook("cas_http").get_conn()
    assert "cas_http" in str(refused.value) and "plain http" in str(refused.value)
    dag_id = _instance(tmp_path, monkeypatch, cas_now - timedelta(hours=3), conn_id="cas_http", event_types=["dlp"])
    run = run_window(dag_id, cas_now - timedelta(hours=3), cas_now - timedelta(hours=2))
    assert str(run.state) == "failed"
