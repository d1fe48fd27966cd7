"""End to end through real Airflow: Qualys simulator -> collect -> load -> warehouse (DuckDB, PostgreSQL).

Windows span several pages (``truncation_limit`` 7 hosts), and the warehouse is compared with the
simulator's ground truth; a re-run adds nothing; a detection whose state changed between two windows
has both versions in Scans and its newer one in ``qualys_finding_status``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.dag_runner import run_window, task_states, write_instance
from tests.seccollect.vendors.qualys.conftest import QUALYS_START

pytestmark = pytest.mark.airflow_e2e

WINDOW = (QUALYS_START, QUALYS_START + timedelta(hours=1))
PAGE_HOSTS = 7


@pytest.fixture
def qualys_dag(tmp_path, monkeypatch, airflow_db, qualys_sim, warehouse_conn):
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    return write_instance(
        tmp_path,
        {"name": "e2e", "tenant": "acme", "type": "qualys", "conn_id": "qualys_test",
         "content_types": ["hosts", "vulnerabilities"], "interval_minutes": 60, "settle_lag_seconds": 0,
         "truncation_limit": PAGE_HOSTS, "retries": 0},
    )


def _rows(wh, content_type: str) -> list[tuple[str, str]]:
    return wh.query("SELECT vendor_id, raw FROM syslog WHERE content_type = ?", (content_type,))


def assert_window_is_ground_truth(wh, dataset, window=WINDOW, *, hosts: bool = True) -> None:
    """Syslog, Scans and Assets hold exactly the window's hosts and detections, each once."""
    detections = wh.query(
        "SELECT s.vendor_id, s.event_time, s.status, s.vulnerability_id, s.asset_id FROM scans s WHERE window_start = ?",
        (window[0],),
    )
    ids = [r[0] for r in detections]
    assert len(ids) == len(set(ids)), "a detection was loaded twice"
    expected = dataset.expected_detections(*window)
    assert {r[0]: r[1].strftime("%Y-%m-%dT%H:%M:%SZ") for r in detections} == expected
    syslog = [r[0] for r in wh.query("SELECT vendor_id FROM syslog WHERE content_type = 'vulnerabilities' "
                                    "AND window_start = ?", (window[0],))]
    assert sorted(syslog) == sorted(ids)
    if hosts:
        found = [r[0] for r in wh.query("SELECT asset_id FROM assets WHERE window_start = ?", (window[0],))]
        assert len(found) == len(set(found)) and set(found) == dataset.expected_hosts(*window)


def test_hosts_and_vulnerabilities_equal_ground_truth_and_rerun_adds_nothing(
    qualys_dag, qualys_sim, qualys_dataset, open_test_warehouse
):
    run = run_window(qualys_dag, *WINDOW)
    assert str(run.state) == "success", task_states(run)
    hosts_in_window = len(qualys_dataset.expected_hosts(*WINDOW))
    assert hosts_in_window > 3 * PAGE_HOSTS, "the window must span several pages"
    with open_test_warehouse() as wh:
        assert_window_is_ground_truth(wh, qualys_dataset)
        # Every detection is joined with its host's identity; Fixed findings are collected too.
        statuses = {r[0] for r in wh.query("SELECT DISTINCT status FROM scans")}
        assert "Fixed" in statuses
        assert wh.query("SELECT count(*) FROM syslog WHERE CAST(raw AS TEXT) LIKE '%\"HOST\"%' AND content_type = 'vulnerabilities'"
                        )[0][0] == wh.query("SELECT count(*) FROM scans")[0][0]
        before = {t: wh.query(f"SELECT count(*) FROM {t}")[0][0] for t in ("syslog", "scans", "assets")}
    served = qualys_sim.stats.count()
    rerun = run_window(qualys_dag, *WINDOW)
    assert str(rerun.state) == "success", task_states(rerun)
    assert qualys_sim.stats.count() > served, "the re-run did not read the API again"
    with open_test_warehouse() as wh:
        assert {t: wh.query(f"SELECT count(*) FROM {t}")[0][0] for t in ("syslog", "scans", "assets")} == before
        inserted = wh.query("SELECT content_type, inserted_rows FROM collection_ledger ORDER BY content_type")
        assert {ct: n for ct, n in inserted} == {"hosts": hosts_in_window,
                                                "vulnerabilities": len(qualys_dataset.expected_detections(*WINDOW))}


def test_changed_detection_has_both_versions_and_the_status_view_shows_the_newer(
    qualys_dag, qualys_sim, qualys_dataset, open_test_warehouse
):
    first = run_window(qualys_dag, *WINDOW)
    assert str(first.state) == "success", task_states(first)
    # A detection collected in the first window is found fixed in the second.
    host, index = next(
        (h, d.index) for h in qualys_dataset.iter_hosts() for d in h.detections
        if WINDOW[0].timestamp() <= d.last_processed < WINDOW[1].timestamp() and d.status == "Active"
    )
    identity = host.detections[index].identity(host.id)
    qualys_dataset.change(host.index, index, "Fixed", WINDOW[1] + timedelta(minutes=20))
    second_window = (WINDOW[1], WINDOW[1] + timedelta(hours=1))
    second = run_window(qualys_dag, *second_window)
    assert str(second.state) == "success", task_states(second)
    with open_test_warehouse() as wh:
        versions = wh.query("SELECT status, event_time FROM scans WHERE vendor_id = ? ORDER BY event_time", (identity,))
        assert [v[0] for v in versions] == ["Active", "Fixed"]
        current = wh.query("SELECT status, last_update FROM qualys_finding_status WHERE finding_id = ?", (identity,))
        assert [c[0] for c in current] == ["Fixed"]
        # One row per finding in the view, however many versions Scans holds.
        assert wh.query("SELECT count(*) FROM qualys_finding_status")[0][0] == wh.query(
            "SELECT count(DISTINCT vendor_id) FROM scans")[0][0]
