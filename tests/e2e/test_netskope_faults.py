"""Faults during collection, through real Airflow: recover to exactly the ground truth, or fail clearly
with nothing of the window in the warehouse — never a partial load.

Pages are made small (100 records) so a fault can strike in the middle of a window; persistent faults
get near-zero backoff so the HTTP layer's six attempts do not make the test slow. Both patches apply
because ``dag.test()`` runs tasks in this process. Instances use ``retries: 0`` so a failed task ends
the run at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from seccollect_dev.simulators.netskope import V1_ALERTS_PATH, V2_DATA_PATHS
from tests.conftest import NETSKOPE_START, NETSKOPE_V1_TOKEN, NETSKOPE_V2_TOKEN
from tests.e2e.dag_runner import run_window, task_states, write_instance

pytestmark = pytest.mark.airflow_e2e

WINDOW = (NETSKOPE_START, NETSKOPE_START + timedelta(hours=1))
PAGE = 100
ALERT = V2_DATA_PATHS["alert"]


@dataclass
class Scenario:
    faults: list[dict[str, Any]]
    #: None: the run must succeed; else a regex the failure message must match.
    failure: str | None = None
    version: str = "v2"
    expire: bool = False
    #: requests the collect task must have made (None: not checked)
    requests: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


SCENARIOS = {
    "429-burst": Scenario([{"kind": "throttle", "path": ALERT, "count": 3}]),
    "5xx-burst": Scenario([{"kind": "status", "status": 503, "path": ALERT, "count": 2}]),
    "5xx-mid-way-then-recovers": Scenario([{"kind": "status", "status": 500, "path": ALERT, "after": 2}]),
    "page-cut-mid-stream": Scenario([{"kind": "truncate", "path": ALERT, "after": 3, "fraction": 0.6}]),
    "malformed-page": Scenario([{"kind": "malformed", "path": ALERT, "after": 1}]),
    "dropped-connection": Scenario([{"kind": "drop", "path": ALERT, "after": 1, "count": 2}]),
    "v1-throttled-mid-way": Scenario([{"kind": "throttle", "path": V1_ALERTS_PATH, "after": 2}], version="v1"),
    "token-revoked-mid-way": Scenario(
        [{"kind": "status", "status": 401, "path": ALERT, "after": 2}],
        failure=r"GET /api/v2/events/data/alert failed after 1 attempt\(s\) — HTTP 401 Unauthorized: invalid credential",
        requests=3,
    ),
    "expired-token": Scenario(
        [], expire=True, requests=1,
        failure=r"GET /api/v2/events/data/alert failed after 1 attempt\(s\) — HTTP 401 .*Expired\?.*Token expired",
    ),
    "v1-error-body-mid-way": Scenario(
        [{"kind": "status", "status": 200, "path": V1_ALERTS_PATH, "after": 2,
          "body": '{"status":"error","errorCode":"Authorization Error","errors":["Invalid token"]}'}],
        version="v1", requests=3,
        failure=r"POST /api/v1/alerts failed after 1 attempt\(s\) — HTTP 401 .*Authorization Error: Invalid token",
    ),
    "persistent-5xx-mid-way": Scenario(
        [{"kind": "status", "status": 502, "path": ALERT, "after": 2, "count": 1000}],
        failure=r"GET /api/v2/events/data/alert failed after 6 attempt\(s\) — HTTP 502 Bad Gateway",
        requests=2 + 6,
    ),
}


@pytest.fixture
def small_pages_fast_backoff(monkeypatch):
    from seccollect.http.client import RetryPolicy

    monkeypatch.setattr("seccollect.vendors.netskope.hook.MAX_PAGE_SIZE", PAGE)
    real_backoff = RetryPolicy.backoff

    def quick(self, attempt, rng=None):
        return min(real_backoff(self, attempt, rng), 0.05)

    monkeypatch.setattr(RetryPolicy, "backoff", quick)


def _window_rows(wh) -> dict[str, int]:
    counts = {
        "syslog": wh.query("SELECT count(*) FROM syslog WHERE window_start = ?", (WINDOW[0],))[0][0],
        "alert_sources": wh.query("SELECT count(*) FROM alert_sources")[0][0],
        "alerts": wh.query("SELECT count(*) FROM alerts")[0][0],
        "ledger": wh.query("SELECT count(*) FROM collection_ledger WHERE window_start = ?", (WINDOW[0],))[0][0],
    }
    return counts


def _assert_ground_truth(wh, dataset) -> None:
    ids = [r[0] for r in wh.query("SELECT vendor_id FROM syslog WHERE content_type = 'alert'")]
    assert len(ids) == len(set(ids)), "a record was loaded twice"
    assert set(ids) == dataset.expected_ids("alert", *WINDOW), "gap: records missing from the warehouse"
    keys = {tuple(r) for r in wh.query("SELECT alert_kind, user_name, dedup_id FROM alerts WHERE dedup_id IS NOT NULL")}
    assert keys == dataset.alert_keys(*WINDOW)
    raw = dataset.expected_records("alert", *WINDOW, type=["breach", "connection", "malsite"])
    assert wh.query("SELECT count(*) FROM alert_sources")[0][0] == len({r["_id"] for r in raw})


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_recovers_exactly_or_fails_with_nothing_loaded(
    name, tmp_path, monkeypatch, capfd, airflow_db, netskope_sim, netskope_dataset, warehouse_conn,
    open_test_warehouse, small_pages_fast_backoff,
) -> None:
    scenario = SCENARIOS[name]
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    dag_id = write_instance(
        tmp_path,
        {
            "name": f"faults-{scenario.version}",
            "tenant": "acme",
            "type": "netskope",
            "conn_id": "netskope_test" if scenario.version == "v2" else "netskope_test_v1",
            "netskope_tenant": "acme",
            "api_version": scenario.version,
            "content_types": ["alert"],
            "interval_minutes": 60,
            "settle_lag_seconds": 0,
            "retries": 0,
        },
    )
    path = ALERT if scenario.version == "v2" else V1_ALERTS_PATH
    expected = netskope_dataset.expected_records("alert", *WINDOW)
    pages = len(expected) // PAGE + 1
    assert pages >= 4, "the window must span several pages"
    netskope_sim.faults.load(scenario.faults)
    if scenario.expire:
        netskope_sim.expire_token(NETSKOPE_V2_TOKEN)

    run = run_window(dag_id, *WINDOW)
    states = task_states(run)
    out = capfd.readouterr()
    if scenario.requests is not None:
        assert netskope_sim.stats.count(path) == scenario.requests
    for fault in netskope_sim.faults.snapshot():
        assert fault["applied"] >= 1, f"fault never fired: {fault}"

    if scenario.failure is None:
        assert str(run.state) == "success", states
        assert netskope_sim.stats.count(path) > pages, "the fault did not cost a retry"
        with open_test_warehouse() as wh:
            _assert_ground_truth(wh, netskope_dataset)
            ledger = wh.query("SELECT staged_rows, inserted_rows FROM collection_ledger")
            assert ledger == [(len(expected), len(netskope_dataset.expected_ids("alert", *WINDOW)))]
        return

    # A clear failure: the collect task failed at once (no Airflow retry), nothing was loaded.
    assert str(run.state) == "failed"
    # check_coverage runs beside the vendor tasks; the replayed window precedes the instance's start, so
    # it is no window of the instance's schedule and no gap.
    assert states == {"collect_alert": "failed", "map_alerts": "upstream_failed", "load_alert": "upstream_failed",
                      "check_coverage": "success"}
    assert re.search(scenario.failure, out.out + out.err), "the failure does not explain itself"
    with open_test_warehouse() as wh:
        assert _window_rows(wh) == {"syslog": 0, "alert_sources": 0, "alerts": 0, "ledger": 0}

    # Once the cause is fixed, a re-run of the window loads exactly the ground truth.
    netskope_sim.faults.clear()
    if scenario.expire:
        netskope_sim.add_v2_token(NETSKOPE_V2_TOKEN)
    if scenario.version == "v1":
        netskope_sim.add_v1_token(NETSKOPE_V1_TOKEN)
    rerun = run_window(dag_id, *WINDOW)
    assert str(rerun.state) == "success", task_states(rerun)
    with open_test_warehouse() as wh:
        _assert_ground_truth(wh, netskope_dataset)
