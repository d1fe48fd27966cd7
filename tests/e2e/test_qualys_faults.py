"""Qualys errors during collection, through real Airflow: each recovers to exactly the ground truth (no
page skipped or loaded twice), or fails at once with an explanation and nothing of the window loaded.

Errors strike in the middle of pagination (after two pages of 7 hosts). Instances use ``retries: 0`` so a
failed task ends the run at once; retried pages get near-zero backoff (``fast_backoff``), while Qualys'
own waits are honoured as sent (the simulator asks for 1 s; the connection waits 0.2 s after a 1960).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest

from seccollect_dev.simulators.qualys import DETECTION_PATH
from tests.e2e.dag_runner import run_window, task_states, write_instance
from tests.e2e.test_qualys_pipeline import assert_window_is_ground_truth
from tests.seccollect.vendors.qualys.conftest import QUALYS_START

pytestmark = pytest.mark.airflow_e2e

WINDOW = (QUALYS_START, QUALYS_START + timedelta(hours=1))
PATH = "/api/5.0" + DETECTION_PATH


@dataclass
class Scenario:
    #: ("qualys", code) for a Qualys error, or a base fault kind ("truncate", "malformed", "drop").
    fault: tuple[str, int | None]
    #: None: the run must succeed after one repeated call; else a regex the failure must match.
    failure: str | None = None


SCENARIOS = {
    "409_1965_rate_limit_waits_then_continues": Scenario(("qualys", 1965)),
    "409_1960_concurrency_waits_for_a_slot": Scenario(("qualys", 1960)),
    "truncated_page_is_read_again": Scenario(("truncate", None)),
    "malformed_page_is_read_again": Scenario(("malformed", None)),
    "dropped_connection_is_retried": Scenario(("drop", None)),
    "401_2000_fails_at_once": Scenario(
        ("qualys", 2000),
        r"failed after 1 attempt\(s\) — HTTP 401 Unauthorized: invalid credential.*Expired\?.*Bad Login/Password.*"
        r"another Qualys platform.*Check the Airflow connection 'qualys_test'",
    ),
    "200_2001_expired_account_fails_at_once": Scenario(
        ("qualys", 2001), r"failed after 1 attempt\(s\) — HTTP 401 .*code 2001: This account has expired"),
    "400_1905_fails_at_once": Scenario(
        ("qualys", 1905), r"failed after 1 attempt\(s\) — HTTP 400 Bad Request.*code 1905"),
}


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_error_recovers_exactly_or_fails_at_once(
    name, tmp_path, monkeypatch, capfd, airflow_db, qualys_sim, qualys_dataset, warehouse_conn,
    open_test_warehouse, fast_backoff,
):
    scenario = SCENARIOS[name]
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))
    dag_id = write_instance(
        tmp_path,
        {"name": "faults", "tenant": "acme", "type": "qualys", "conn_id": "qualys_test",
         "content_types": ["vulnerabilities"], "interval_minutes": 60, "settle_lag_seconds": 0,
         "truncation_limit": 7, "retries": 0},
    )
    kind, code = scenario.fault
    if kind == "qualys":
        qualys_sim.inject(code, path=PATH, after=0 if scenario.failure else 2, wait=1)
    else:
        qualys_sim.faults.add(kind, path=PATH, after=2)

    run = run_window(dag_id, *WINDOW)
    out = capfd.readouterr()
    states = task_states(run)
    assert all(f["applied"] == 1 for f in qualys_sim.faults.snapshot()), "the error never struck"
    if scenario.failure is None:
        assert str(run.state) == "success", states
        with open_test_warehouse() as wh:
            assert_window_is_ground_truth(wh, qualys_dataset, hosts=False)
        hosts = {h.id for h in qualys_dataset.iter_hosts() for d in h.detections
                 if WINDOW[0].timestamp() <= d.last_processed < WINDOW[1].timestamp()}
        pages = -(-len(hosts) // 7)
        assert pages >= 4
        assert qualys_sim.stats.count(PATH) == pages + 1, "exactly the struck page is requested again"
        return

    assert str(run.state) == "failed"
    assert states["collect_vulnerabilities"] == "failed" and states["load_vulnerabilities"] == "upstream_failed"
    assert qualys_sim.stats.count(PATH) == 1, "a fatal Qualys error must not be retried"
    assert re.search(scenario.failure, out.out + out.err), "the failure does not explain itself"
    assert "test-pass-7b1d" not in out.out + out.err
    with open_test_warehouse() as wh:
        assert wh.query("SELECT count(*) FROM syslog")[0][0] == 0
        assert wh.query("SELECT count(*) FROM collection_ledger")[0][0] == 0
