"""End to end through real Airflow (``dag.test()``): ConnectSecure simulator -> full pull -> change
detection in the load -> warehouse, on DuckDB and PostgreSQL, against the simulator's ground truth.

Every run pulls the whole tenant; the warehouse must show exactly the adds, changes and removals made
between pulls, nothing for a pull without change, re-runs and backfills, and nothing at all from a pull
that failed. Instances use ``retries: 0`` so a failed task ends its run at once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from seccollect.vendors.connectsecure.hook import endpoint_for, identity
from tests.e2e.dag_runner import run_window, task_states, write_instance
from tests.seccollect.vendors.connectsecure.conftest import CS_CONN_ID

pytestmark = pytest.mark.airflow_e2e

ASSETS = "/r/asset/assets"
START = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
#: content type -> the simulator collection it reads.
COLLECTION = {"asset": "asset", "remediation_plan": "remediation", "vulnerability_suppression": "suppression"}


def window(n: int) -> tuple[datetime, datetime]:
    return START + n * HOUR, START + (n + 1) * HOUR


def _instance(tmp_path, monkeypatch, content_types: list[str]) -> str:
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    return write_instance(tmp_path, {
        "name": "e2e", "tenant": "acme", "type": "connectsecure", "conn_id": CS_CONN_ID,
        "content_types": content_types, "interval_minutes": 60, "page_size": 25, "retries": 0,
        "start_date": START.isoformat(),
    })


def _truth(dataset, content_type: str) -> dict[str, dict]:
    endpoint = endpoint_for(content_type)
    return {identity(endpoint, row): row for row in dataset.rows(COLLECTION[content_type])}


def _ids(dataset, content_type: str, keys) -> set[str]:
    endpoint = endpoint_for(content_type)
    return {identity(endpoint, dataset.row(COLLECTION[content_type], key)) for key in keys}


def _current_state(wh, dag_id: str, content_type: str) -> dict[str, str]:
    return dict(wh.query(
        "SELECT identity, content_hash FROM snapshot_state WHERE dag_id = ? AND content_type = ? "
        "AND removed_window_start IS NULL", (dag_id, content_type)))


def _changes(wh, content_type: str, start: datetime) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"added": set(), "changed": set(), "removed": set()}
    for change, item in wh.query(
        "SELECT change, identity FROM snapshot_changes WHERE content_type = ? AND window_start = ?", (content_type, start)
    ):
        found[change].add(item)
    return found


def _inserted(wh, content_type: str, start: datetime) -> int | None:
    rows = wh.query("SELECT inserted_rows FROM collection_ledger WHERE content_type = ? AND window_start = ?",
                    (content_type, start))
    return rows[0][0] if rows else None


def _latest_rows(wh, content_type: str) -> dict[str, dict]:
    """Per identity, the raw row of its newest loaded version (by window)."""
    latest: dict[str, tuple[datetime, dict]] = {}
    for vendor_id, end, raw in wh.query(
        "SELECT vendor_id, window_end, CAST(raw AS TEXT) FROM syslog WHERE content_type = ?", (content_type,)
    ):
        if vendor_id not in latest or latest[vendor_id][0] < end:
            latest[vendor_id] = (end, json.loads(raw))
    return {k: v[1] for k, v in latest.items()}


def _assert_matches_truth(wh, dag_id: str, dataset) -> None:
    for content_type in COLLECTION:
        truth = _truth(dataset, content_type)
        assert set(_current_state(wh, dag_id, content_type)) == set(truth), content_type
        latest = _latest_rows(wh, content_type)
        assert {k: latest[k] for k in truth} == truth, f"{content_type}: the current version differs"
    current = wh.query("SELECT asset_id, hostname, CAST(raw AS TEXT) FROM current_assets WHERE dag_id = ?", (dag_id,))
    assert len(current) == len({r[0] for r in current}), "an asset is listed twice in current_assets"
    assert {r[0]: json.loads(r[2]) for r in current} == _truth(dataset, "asset")
    assert all(r[1] == json.loads(r[2])["host_name"] for r in current)


def test_pulls_with_changes_load_exactly_the_adds_changes_and_removals(
    tmp_path, monkeypatch, airflow_db, cs_sim, cs_dataset, warehouse_conn, open_test_warehouse,
):
    dag_id = _instance(tmp_path, monkeypatch, ["asset", "remediation_plan", "vulnerability_suppression"])

    # Pull 1: everything is new.
    run = run_window(dag_id, *window(0))
    assert str(run.state) == "success", task_states(run)
    with open_test_warehouse() as wh:
        for content_type in COLLECTION:
            assert _inserted(wh, content_type, window(0)[0]) == len(_truth(cs_dataset, content_type))
            assert _changes(wh, content_type, window(0)[0])["added"] == set(_truth(cs_dataset, content_type))
        assert wh.query("SELECT count(*) FROM assets")[0][0] == 120
        assert wh.query("SELECT count(*) FROM scans")[0][0] == 30
        _assert_matches_truth(wh, dag_id, cs_dataset)

    # Pulls 2 and 3: adds, changes and removals between pulls; exactly those load.
    for n, sizes in ((1, {"adds": 4, "changes": 3, "removes": 2}), (2, {"adds": 1, "changes": 5, "removes": 3})):
        made = {ct: cs_dataset.mutate(COLLECTION[ct], **sizes) for ct in COLLECTION}
        run = run_window(dag_id, *window(n))
        assert str(run.state) == "success", task_states(run)
        with open_test_warehouse() as wh:
            for content_type, keys in made.items():
                found = _changes(wh, content_type, window(n)[0])
                assert found == {change: _ids(cs_dataset, content_type, keys[change])
                                 for change in ("added", "changed", "removed")}, content_type
                assert _inserted(wh, content_type, window(n)[0]) == sizes["adds"] + sizes["changes"]
            _assert_matches_truth(wh, dag_id, cs_dataset)
            removed = wh.query("SELECT count(*) FROM snapshot_state WHERE dag_id = ? AND content_type = 'asset' "
                               "AND removed_window_start = ?", (dag_id, window(n)[0]))[0][0]
            assert removed == sizes["removes"]

    # Pull 4: nothing changed, nothing loads.
    with open_test_warehouse() as wh:
        before = wh.query("SELECT count(*) FROM syslog")[0][0]
    run = run_window(dag_id, *window(3))
    assert str(run.state) == "success", task_states(run)
    with open_test_warehouse() as wh:
        assert wh.query("SELECT count(*) FROM syslog")[0][0] == before
        for content_type in COLLECTION:
            assert _inserted(wh, content_type, window(3)[0]) == 0
            assert _changes(wh, content_type, window(3)[0]) == {"added": set(), "changed": set(), "removed": set()}

    # Re-running a window and backfilling one before all of them add nothing.
    for n in (2, -5):
        run = run_window(dag_id, *window(n))
        assert str(run.state) == "success", task_states(run)
    with open_test_warehouse() as wh:
        assert wh.query("SELECT count(*) FROM syslog")[0][0] == before
        counts = wh.query("SELECT vendor_id, window_start, count(*) FROM syslog GROUP BY vendor_id, window_start "
                          "HAVING count(*) > 1")
        assert counts == []
        _assert_matches_truth(wh, dag_id, cs_dataset)


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_token_expiry_and_rows_shifting_mid_pull_lose_and_repeat_nothing(
    tmp_path, monkeypatch, airflow_db, cs_sim, cs_dataset, warehouse_conn, open_test_warehouse,
):
    dag_id = _instance(tmp_path, monkeypatch, ["asset"])
    before = set(_truth(cs_dataset, "asset"))
    cs_sim.expire_during_pull(ASSETS, after=2)
    shift = cs_sim.shift_during_pull(ASSETS, after=3, removes=6, adds=2)
    run = run_window(dag_id, *window(0))
    assert str(run.state) == "success", task_states(run)
    assert cs_sim.authorizations == 2, "the expired token was renewed once"
    removed = _ids(cs_dataset, "asset", shift.applied["removed"])
    added = _ids(cs_dataset, "asset", shift.applied["added"])
    with open_test_warehouse() as wh:
        loaded = [r[0] for r in wh.query("SELECT vendor_id FROM syslog WHERE content_type = 'asset'")]
        assert len(loaded) == len(set(loaded)), "a row was loaded twice"
        assert before - removed <= set(loaded), "a row that existed for the whole pull was lost"
        assert set(loaded) <= before | added
        (cursor,) = wh.query("SELECT cursor FROM collection_ledger WHERE window_start = ?", (window(0)[0],))[0]
        assert json.loads(cursor)["pull"] == "full"
    # The next pull settles what changed during the first: the state equals the tenant exactly.
    run = run_window(dag_id, *window(1))
    assert str(run.state) == "success", task_states(run)
    with open_test_warehouse() as wh:
        assert set(_current_state(wh, dag_id, "asset")) == set(_truth(cs_dataset, "asset"))


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
@pytest.mark.parametrize(("fault", "explains"), [
    ({"kind": "status", "status": 200, "after": 2, "count": 1,
      "body": json.dumps({"status": False, "message": "Failed to retrieve data"})}, "Failed to retrieve data"),
    ({"kind": "status", "status": 502, "after": 2, "count": 6}, "HTTP 502"),
])
def test_a_pull_that_fails_half_way_changes_nothing_and_its_retry_is_exact(
    tmp_path, monkeypatch, capfd, airflow_db, cs_sim, cs_dataset, warehouse_conn, open_test_warehouse, no_waits,
    fault, explains,
):
    dag_id = _instance(tmp_path, monkeypatch, ["asset"])
    assert str(run_window(dag_id, *window(0)).state) == "success"
    with open_test_warehouse() as wh:
        state = _current_state(wh, dag_id, "asset")
        rows = wh.query("SELECT count(*) FROM syslog")[0][0]
    made = cs_dataset.mutate("asset", adds=3, changes=3, removes=3)
    cs_sim.faults.load({**fault, "path": ASSETS})

    run = run_window(dag_id, *window(1))
    assert str(run.state) == "failed"
    assert task_states(run)["collect_asset"] == "failed"
    out = capfd.readouterr()
    assert explains in out.out + out.err
    with open_test_warehouse() as wh:
        assert _current_state(wh, dag_id, "asset") == state, "a failed pull changed the state"
        assert wh.query("SELECT count(*) FROM syslog")[0][0] == rows
        assert _inserted(wh, "asset", window(1)[0]) is None

    cs_sim.faults.clear()
    run = run_window(dag_id, *window(1))
    assert str(run.state) == "success", task_states(run)
    with open_test_warehouse() as wh:
        assert _changes(wh, "asset", window(1)[0]) == {c: _ids(cs_dataset, "asset", made[c])
                                                       for c in ("added", "changed", "removed")}
        assert set(_current_state(wh, dag_id, "asset")) == set(_truth(cs_dataset, "asset"))


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_asset_is_collected_even_when_the_instance_leaves_it_out(
    tmp_path, monkeypatch, airflow_db, cs_sim, cs_dataset, warehouse_conn, open_test_warehouse,
):
    dag_id = _instance(tmp_path, monkeypatch, ["vulnerability_suppression"])
    run = run_window(dag_id, *window(0))
    assert str(run.state) == "success", task_states(run)
    assert set(task_states(run)) >= {"collect_asset", "load_asset", "collect_vulnerability_suppression"}
    with open_test_warehouse() as wh:
        assert set(_current_state(wh, dag_id, "asset")) == set(_truth(cs_dataset, "asset"))
        assert wh.query("SELECT count(*) FROM scans")[0][0] == 30


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_rows_that_cannot_be_handled_are_quarantined_and_the_rest_loads(
    tmp_path, monkeypatch, airflow_db, cs_sim, cs_dataset, warehouse_conn, open_test_warehouse,
):
    dag_id = _instance(tmp_path, monkeypatch, ["asset"])
    assert str(run_window(dag_id, *window(0)).state) == "success"
    bad_time, no_id, not_object = cs_dataset.live("asset")[5:8]
    cs_dataset.corrupt["asset"] = {bad_time: "bad_time", no_id: "no_id", not_object: "not_object"}
    cs_dataset.mutate("asset", changes=4)
    run = run_window(dag_id, *window(1))
    assert str(run.state) == "success", task_states(run)
    with open_test_warehouse() as wh:
        reasons = dict(wh.query("SELECT source_ref, reason FROM quarantine WHERE window_start = ?", (window(1)[0],)))
        assert len(reasons) == 3
        assert "not an ISO 8601 time" in reasons[f"asset:{90_210_000 + bad_time}"]
        assert any("has no 'id'" in r for r in reasons.values())
        assert any("not a JSON object" in r for r in reasons.values())
        # The row with a bad time was seen (its id is known): it still exists, it is not recorded removed.
        live = _current_state(wh, dag_id, "asset")
        assert str(90_210_000 + bad_time) in live
        assert str(90_210_000 + bad_time) not in _changes(wh, "asset", window(1)[0])["removed"]
        # Everything readable loaded.
        readable = {str(90_210_000 + k) for k in cs_dataset.live("asset") if k not in (bad_time, no_id, not_object)}
        assert readable <= set(live)
