"""End to end through real Airflow: every Netskope content type, both API versions, against ground truth.

One DAG collects several content types per run to keep the number of (slow) DAG runs small. The
simulator's clock is one day after the data, so every record is queryable; ``settle_lag_seconds: 0``
makes the queried insertion window equal the run's window.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest

from tests.conftest import NETSKOPE_START
from tests.e2e.dag_runner import run_window, task_states, write_instance

pytestmark = pytest.mark.airflow_e2e

#: content type -> (dataset endpoint of its ground truth, msg_class)
WINDOWED = {
    "alert": ("alert", "netskopewsg_alert"),
    "event": ("application", "netskopewsg_event"),
    "page": ("page", "netskopewsg_page"),
}
SNAPSHOTS = {"pops": "netskopewsg_pops", "tunnels": "netskopewsg_tunnels"}
DAY1 = (NETSKOPE_START, NETSKOPE_START + timedelta(hours=1))  # holds 00:00 UTC
HOUR2 = (NETSKOPE_START + timedelta(hours=1), NETSKOPE_START + timedelta(hours=2))  # no midnight
DAY2 = (NETSKOPE_START + timedelta(days=1), NETSKOPE_START + timedelta(days=1, hours=1))  # next midnight


def _instance(tmp_path, monkeypatch, name: str, conn_id: str, version: str, content_types: list[str]) -> str:
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    return write_instance(
        tmp_path,
        {
            "name": name,
            "tenant": "acme",
            "type": "netskope",
            "conn_id": conn_id,
            "netskope_tenant": "acme",
            "api_version": version,
            "content_types": content_types,
            "interval_minutes": 60,
            "settle_lag_seconds": 0,
            "retries": 0,
        },
    )


def _run(dag_id, window) -> dict[str, str]:
    run = run_window(dag_id, *window)
    states = task_states(run)
    assert str(run.state) == "success", states
    return states


def _vendor_ids(wh, content_type: str) -> list[str]:
    return [r[0] for r in wh.query("SELECT vendor_id FROM syslog WHERE content_type = ?", (content_type,))]


def _raw(value):
    return value if isinstance(value, dict) else json.loads(value)


def _snapshot_items(wh, content_type: str) -> list[dict]:
    return [_raw(r[0]) for r in wh.query("SELECT raw FROM syslog WHERE content_type = ?", (content_type,))]


def _ledger(wh, dag_id: str, window) -> dict[str, tuple[int, int]]:
    return {
        ct: (staged, inserted)
        for ct, staged, inserted in wh.query(
            "SELECT content_type, staged_rows, inserted_rows FROM collection_ledger "
            "WHERE dag_id = ? AND window_start = ? AND window_end = ?",
            (dag_id, *window),
        )
    }


def _check_windowed(wh, dataset, content_type: str, windows) -> None:
    endpoint, msg_class = WINDOWED[content_type]
    expected: set[str] = set()
    for window in windows:
        expected |= dataset.expected_ids(endpoint, *window)
    ids = _vendor_ids(wh, content_type)
    assert len(ids) == len(set(ids)), f"{content_type}: a record was loaded twice"
    assert set(ids) == expected, f"{content_type}: warehouse differs from ground truth"
    envelope = wh.query(
        "SELECT DISTINCT tenant, instance, msg_class, msg_origin_vendor, msg_origin_category FROM syslog "
        "WHERE content_type = ?",
        (content_type,),
    )
    assert envelope == [("acme", envelope[0][1], msg_class, "netskope", "web_security")]


def _table_counts(wh) -> tuple[int, int, int]:
    return (
        wh.query("SELECT count(*) FROM syslog")[0][0],
        wh.query("SELECT count(*) FROM alerts")[0][0],
        wh.query("SELECT coalesce(sum(raw_count), 0) FROM alerts")[0][0],
    )


def test_v2_every_content_type_equals_ground_truth(
    tmp_path, monkeypatch, airflow_db, netskope_sim, netskope_dataset, warehouse_conn, open_test_warehouse
) -> None:
    content_types = ["alert", "event", "page", "pops", "tunnels"]
    dag_id = _instance(tmp_path, monkeypatch, "v2all", "netskope_test", "v2", content_types)

    # 1. The window holding midnight: event-like content for the hour, pops and tunnels snapshots.
    _run(dag_id, DAY1)
    with open_test_warehouse() as wh:
        for ct in WINDOWED:
            _check_windowed(wh, netskope_dataset, ct, [DAY1])
        for ct, msg_class in SNAPSHOTS.items():
            items = _snapshot_items(wh, ct)
            truth = getattr(netskope_dataset, ct)
            assert sorted(i["id"] for i in items) == sorted(t["id"] for t in truth), ct
            assert {r[0] for r in wh.query("SELECT msg_class FROM syslog WHERE content_type = ?", (ct,))} == {msg_class}
        assert {(k, u, d) for k, u, d in wh.query(
            "SELECT alert_kind, user_name, dedup_id FROM alerts WHERE dedup_id IS NOT NULL")} == (
            netskope_dataset.alert_keys(*DAY1))
        ledger = _ledger(wh, dag_id, DAY1)
        assert set(ledger) == set(content_types)
        assert ledger["pops"] == (len(netskope_dataset.pops),) * 2
        assert ledger["tunnels"] == (len(netskope_dataset.tunnels),) * 2
        first = _table_counts(wh)

    # 2. A re-run of the same window adds nothing anywhere.
    _run(dag_id, DAY1)
    with open_test_warehouse() as wh:
        assert _table_counts(wh) == first
        assert {ct: inserted for ct, (_, inserted) in _ledger(wh, dag_id, DAY1).items()} == {
            ct: inserted for ct, (_, inserted) in ledger.items()
        }

    # 3. A window without midnight: snapshots are skipped (not failed), the rest is collected.
    states = _run(dag_id, HOUR2)
    assert {t: s for t, s in states.items() if t.endswith(("pops", "tunnels"))} == {
        "collect_pops": "skipped", "load_pops": "skipped", "collect_tunnels": "skipped", "load_tunnels": "skipped"
    }
    with open_test_warehouse() as wh:
        for ct in WINDOWED:
            _check_windowed(wh, netskope_dataset, ct, [DAY1, HOUR2])
        assert set(_ledger(wh, dag_id, HOUR2)) == set(WINDOWED)
        assert len(_snapshot_items(wh, "pops")) == len(netskope_dataset.pops)

    # 4. The next day's midnight run: pops unchanged -> 0 inserted; one tunnel went down -> 1 inserted.
    tunnels = copy.deepcopy(netskope_dataset.tunnels)
    tunnels[2]["pops"][0]["status"] = "down" if tunnels[2]["pops"][0]["status"] == "up" else "up"
    monkeypatch.setattr(netskope_dataset, "tunnels", tunnels)
    _run(dag_id, DAY2)
    with open_test_warehouse() as wh:
        ledger = _ledger(wh, dag_id, DAY2)
        assert ledger["pops"] == (len(netskope_dataset.pops), 0)
        assert ledger["tunnels"] == (len(tunnels), 1)
        assert ledger["alert"] == ledger["event"] == ledger["page"] == (0, 0)
        changed = [i for i in _snapshot_items(wh, "tunnels") if i["id"] == tunnels[2]["id"]]
        assert len(changed) == 2 and tunnels[2] in changed
        assert len(_snapshot_items(wh, "pops")) == len(netskope_dataset.pops)


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_v1_alert_and_event_equal_ground_truth_and_rerun_adds_nothing(
    tmp_path, monkeypatch, airflow_db, netskope_sim, netskope_dataset, warehouse_conn, open_test_warehouse
) -> None:
    dag_id = _instance(tmp_path, monkeypatch, "v1all", "netskope_test_v1", "v1", ["alert", "event"])
    _run(dag_id, DAY1)
    with open_test_warehouse() as wh:
        for ct in ("alert", "event"):
            _check_windowed(wh, netskope_dataset, ct, [DAY1])
        assert {(k, u, d) for k, u, d in wh.query(
            "SELECT alert_kind, user_name, dedup_id FROM alerts WHERE dedup_id IS NOT NULL")} == (
            netskope_dataset.alert_keys(*DAY1))
        first = _table_counts(wh)
    assert {r["method"] for r in netskope_sim.stats.snapshot()["recent"]} == {"POST"}

    _run(dag_id, DAY1)
    with open_test_warehouse() as wh:
        assert _table_counts(wh) == first
        ledger = _ledger(wh, dag_id, DAY1)
        assert ledger["alert"][1] == len(netskope_dataset.expected_ids("alert", *DAY1))
        assert ledger["event"][1] == len(netskope_dataset.expected_ids("application", *DAY1))


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_tunnel_reverting_to_an_earlier_state_is_loaded_again(
    tmp_path, monkeypatch, airflow_db, netskope_sim, netskope_dataset, warehouse_conn, open_test_warehouse
) -> None:
    dag_id = _instance(tmp_path, monkeypatch, "flap", "netskope_test", "v2", ["tunnels"])
    original = netskope_dataset.tunnels
    flapped = copy.deepcopy(original)
    flapped[0]["pops"][0]["status"] = "down" if original[0]["pops"][0]["status"] == "up" else "up"
    day3 = (NETSKOPE_START + timedelta(days=2), NETSKOPE_START + timedelta(days=2, hours=1))

    _run(dag_id, DAY1)
    monkeypatch.setattr(netskope_dataset, "tunnels", flapped)
    _run(dag_id, DAY2)
    monkeypatch.setattr(netskope_dataset, "tunnels", original)
    _run(dag_id, day3)
    with open_test_warehouse() as wh:
        assert _ledger(wh, dag_id, DAY2)["tunnels"] == (len(original), 1)
        # Day 3 differs from the last loaded state (day 2) in one tunnel: that tunnel must be loaded.
        assert _ledger(wh, dag_id, day3)["tunnels"] == (len(original), 1)
        versions = sorted(
            (event_time, _raw(raw))
            for event_time, raw in wh.query("SELECT event_time, raw FROM syslog WHERE content_type = 'tunnels'")
            if _raw(raw)["id"] == original[0]["id"]
        )
        assert versions[-1][1] == original[0], "the latest loaded state of the tunnel is not its current state"
