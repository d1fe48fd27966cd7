"""Through real Airflow (``dag.test()``, deferral included): a vendor clock behind ours and a settle lag
changed between runs never lose a record.

Before the cursor, the query range was recomputed every run from the window and the *current* settle
lag, and nothing looked at the vendor's clock: with Netskope's clock 10 minutes behind, the records of
those 10 minutes were never collected, and lowering the lag from 900 to 300 s between two runs skipped
what fell between the two ranges. Both runs succeeded.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NETSKOPE_START, NETSKOPE_V2_TOKEN
from tests.e2e.dag_runner import run_window, task_states, write_instance

pytestmark = pytest.mark.airflow_e2e

STEP = timedelta(minutes=5)


@pytest.fixture
def clocked_sim(netskope_dataset, monkeypatch: pytest.MonkeyPatch):
    """A Netskope simulator whose clock the test sets, and the connection ``netskope_test`` to it."""
    from seccollect_dev.simulators.base import SimClock, SimulatorServer
    from seccollect_dev.simulators.netskope import ALL_V2_SCOPES, NetskopeSimulator

    clock = SimClock(now=(NETSKOPE_START + timedelta(days=1)).timestamp())
    app = NetskopeSimulator(netskope_dataset, v2_tokens={NETSKOPE_V2_TOKEN: ALL_V2_SCOPES}, clock=clock)
    with SimulatorServer(app) as server:
        monkeypatch.setenv("AIRFLOW_CONN_NETSKOPE_TEST", json.dumps(
            {"conn_type": "netskope", "password": NETSKOPE_V2_TOKEN, "extra": {"base_url": server.url, "api_version": "v2"}}
        ))
        yield clock, app


def _instance(tmp_path: Path, settle_lag_seconds: int) -> str:
    return write_instance(tmp_path, {
        "name": "complete", "tenant": "acme", "type": "netskope", "conn_id": "netskope_test",
        "netskope_tenant": "acme", "content_types": ["alert"], "settle_lag_seconds": settle_lag_seconds,
        "start_date": NETSKOPE_START.isoformat(),
    })


def _ranges(wh: Any, dag_id: str) -> list[tuple[datetime, datetime, datetime]]:
    ranges = []
    for window_start, cursor in wh.query(
        "SELECT window_start, cursor FROM collection_ledger WHERE dag_id = ? ORDER BY window_start", (dag_id,)
    ):
        cursor = json.loads(cursor) if isinstance(cursor, str) else cursor
        ranges.append((window_start, datetime.fromisoformat(cursor["query_start"]),
                       datetime.fromisoformat(cursor["query_end"])))
    return ranges


def _assert_ids_equal_truth_of_the_tiled_ranges(open_test_warehouse, dag_id: str, dataset, windows: int) -> None:
    with open_test_warehouse() as wh:
        ranges = _ranges(wh, dag_id)
        ids = [r[0] for r in wh.query("SELECT vendor_id FROM syslog WHERE content_type = 'alert'")]
    assert len(ranges) == windows
    # The stored ranges tile the vendor's insertion-time axis: no gap, no overlap.
    assert all(a[2] == b[1] for a, b in zip(ranges, ranges[1:], strict=False)), ranges
    assert len(ids) == len(set(ids))
    assert set(ids) == dataset.expected_ids("alert", ranges[0][1], ranges[-1][2])


@pytest.mark.parametrize(("first_lag", "second_lag"), [(900, 300), (300, 900)])
def test_a_settle_lag_changed_between_runs_loses_nothing(
    first_lag, second_lag, tmp_path, monkeypatch, airflow_db, clocked_sim, warehouse_conn, open_test_warehouse,
    netskope_dataset,
):
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    start = NETSKOPE_START + timedelta(minutes=30)
    windows = [start + n * STEP for n in range(6)]
    for n, window in enumerate(windows):
        dag_id = _instance(tmp_path, first_lag if n < 3 else second_lag)
        run = run_window(dag_id, window, window + STEP)
        assert str(run.state) == "success", task_states(run)
    _assert_ids_equal_truth_of_the_tiled_ranges(open_test_warehouse, dag_id, netskope_dataset, len(windows))
    with open_test_warehouse() as wh:
        ranges = _ranges(wh, dag_id)
    # The first window's range is computed with the lag it ran with; the last ones with the new lag.
    assert ranges[0][1] == windows[0] - timedelta(seconds=first_lag)
    assert ranges[-1][2] == windows[-1] + STEP - timedelta(seconds=second_lag)


def test_a_vendor_clock_10_minutes_behind_makes_the_run_wait_not_lose_records(
    tmp_path, monkeypatch, airflow_db, clocked_sim, warehouse_conn, open_test_warehouse, netskope_dataset,
):
    from seccollect.operators.collect import BaseCollectOperator

    clock, app = clocked_sim
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    # Look again every second instead of every minute; the wait itself is a real deferral.
    monkeypatch.setattr(BaseCollectOperator, "clock_poll", timedelta(seconds=1))
    dag_id = _instance(tmp_path, settle_lag_seconds=300)
    window = NETSKOPE_START + timedelta(minutes=40)
    query_end = window + STEP - timedelta(seconds=300)
    # The vendor's clock is 10 minutes behind the moment our worker would query the range's end.
    clock.set((query_end - timedelta(minutes=10)).timestamp())
    behind_records = netskope_dataset.expected_ids("alert", query_end - STEP, query_end)  # the whole range
    assert behind_records, "the scenario needs records in the 10 minutes the vendor has not reached"

    waited = threading.Event()

    def catch_up() -> None:
        # While the collect waits, Netskope's clock moves on, past the end of the range.
        time.sleep(4)
        clock.set((query_end + timedelta(seconds=30)).timestamp())
        waited.set()

    threading.Thread(target=catch_up, daemon=True).start()
    began = time.monotonic()
    run = run_window(dag_id, window, window + STEP)
    assert str(run.state) == "success", task_states(run)
    assert waited.is_set() and time.monotonic() - began >= 4, "the collect did not wait for the vendor's clock"
    _assert_ids_equal_truth_of_the_tiled_ranges(open_test_warehouse, dag_id, netskope_dataset, 1)
    with open_test_warehouse() as wh:
        ids = {r[0] for r in wh.query("SELECT vendor_id FROM syslog WHERE content_type = 'alert'")}
    assert behind_records <= ids


def test_three_runs_of_one_window_keep_a_consistent_ledger_row_listing_every_run(
    tmp_path, monkeypatch, airflow_db, clocked_sim, warehouse_conn, open_test_warehouse, netskope_dataset,
):
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    dag_id = _instance(tmp_path, settle_lag_seconds=0)
    window = NETSKOPE_START + timedelta(minutes=10)
    run_ids = []
    for _ in range(3):
        run = run_window(dag_id, window, window + STEP)
        assert str(run.state) == "success", task_states(run)
        run_ids.append(run.run_id)
    served = len(netskope_dataset.expected_records("alert", window, window + STEP))
    distinct = len(netskope_dataset.expected_ids("alert", window, window + STEP))
    with open_test_warehouse() as wh:
        (staged, inserted, duplicates, quarantined, loads, ids), = wh.query(
            "SELECT staged_rows, inserted_rows, duplicate_rows, quarantined, loads, run_ids FROM collection_ledger "
            "WHERE dag_id = ?", (dag_id,)
        )
        per_load = wh.query(
            "SELECT staged_rows, inserted_rows, duplicate_rows, quarantined FROM collection_loads WHERE dag_id = ? "
            "ORDER BY loaded_at", (dag_id,)
        )
    # Cumulative over the three loads, and the identity holds for the row as for each load.
    assert (staged, inserted, loads) == (3 * served, distinct, 3)
    assert staged == inserted + duplicates + quarantined
    assert len(per_load) == 3 and all(s == i + d + q for s, i, d, q in per_load)
    assert [p[1] for p in per_load] == [distinct, 0, 0]
    assert (json.loads(ids) if isinstance(ids, str) else ids) == run_ids


def test_a_run_dated_at_its_window_collects_it_without_any_run_conf(
    tmp_path, monkeypatch, airflow_db, clocked_sim, warehouse_conn, open_test_warehouse, netskope_dataset,
):
    """As the scheduler makes runs: no conf, the window comes from the run's logical date (Airflow's
    pendulum context values, the settle lag subtracted from them)."""
    from seccollect.dag_factory.builder import register_dags

    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    dag_id = _instance(tmp_path, settle_lag_seconds=120)
    namespace: dict[str, Any] = {}
    register_dags(namespace, dag_id=dag_id)
    window = NETSKOPE_START + timedelta(minutes=15)
    run = namespace[dag_id].test(logical_date=window)
    assert str(run.state) == "success", task_states(run)
    with open_test_warehouse() as wh:
        (_, query_start, query_end), = _ranges(wh, dag_id)
        ids = {r[0] for r in wh.query("SELECT vendor_id FROM syslog WHERE content_type = 'alert'")}
    assert (query_start, query_end) == (window - timedelta(seconds=120), window + STEP - timedelta(seconds=120))
    assert ids == netskope_dataset.expected_ids("alert", query_start, query_end)
