"""Completeness with the real scheduler: runs made every way, backfills, a stopped scheduler, a first
deployment.

One Airflow (api-server, scheduler, dag-processor, triggerer, LocalExecutor) on a PostgreSQL metadata
database serves the module, with a Netskope simulator whose clock is the real one (records become
queryable at their insertion time) and a DuckDB warehouse. What is checked is what a data engineer
relies on: after any mix of manual runs, "Missing Runs" and "All Runs" backfills, the coverage view
shows every window of the hour collected and the warehouse holds exactly the vendor's records of the
ranges queried; after the scheduler was down, the missed windows ran by themselves; a new instance is
never scheduled before its start.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.scheduler]

TOKEN = "sched-v2-token-41c9"
TERMINAL = {"success", "failed"}


@dataclass
class Scheduled:
    """The module's running Airflow and what it talks to."""

    stack: Any
    api: Any
    dataset: Any
    connectors: Path
    warehouse: Path
    now: datetime

    def deploy(self, settings: dict[str, Any]) -> str:
        """Write an instance file; wait until its DAG is parsed; return the dag_id."""
        from tests.e2e.ui_stack import deploy_instance

        return deploy_instance(self.stack, self.api, self.connectors, settings)

    def wait_for_runs(self, dag_id: str, predicate: Any, timeout: float = 420, what: str = "") -> list[dict[str, Any]]:
        """Poll the DAG's runs until ``predicate(runs)`` holds and every run has ended."""
        deadline = time.monotonic() + timeout
        while True:
            self.stack.check_alive()
            runs = self.api.dag_runs(dag_id)
            if predicate(runs) and all(r["state"] in TERMINAL for r in runs):
                return runs
            if time.monotonic() > deadline:
                states = [(r["logical_date"], r["run_type"], r["state"]) for r in runs]
                raise TimeoutError(f"{dag_id}: {what} not reached in {timeout:.0f}s; runs: {states}")
            time.sleep(2)

    def wait_for_backfill(self, backfill_id: int, timeout: float = 420) -> None:
        deadline = time.monotonic() + timeout
        while self.api.get(f"backfills/{backfill_id}")["completed_at"] is None:
            self.stack.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"backfill {backfill_id} did not complete in {timeout:.0f}s")
            time.sleep(2)

    def open_warehouse(self) -> Any:
        """The DuckDB warehouse, read-only (loads wait out the short lock; see its lock wait)."""
        from seccollect.warehouse.duckdb import DuckDBWarehouse, connect_with_lock_wait

        return DuckDBWarehouse(
            str(self.warehouse), connection=connect_with_lock_wait(str(self.warehouse), read_only=True, lock_timeout=120)
        )

    def backfill(self, dag_id: str, start: datetime, end: datetime, behavior: str) -> int:
        """``airflow backfill create`` (the CLI) over [start, end]; the backfill's id."""
        before = {b["id"] for b in self.api.get("backfills", dag_id=dag_id)["backfills"]}
        self.stack.airflow(
            "backfill", "create", "--dag-id", dag_id, "--from-date", start.isoformat(), "--to-date",
            end.isoformat(), "--reprocess-behavior", behavior,
        )
        created = [b["id"] for b in self.api.get("backfills", dag_id=dag_id)["backfills"] if b["id"] not in before]
        assert len(created) == 1, created
        return created[0]


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory: pytest.TempPathFactory, postgres_server: dict[str, Any]) -> Iterator[Scheduled]:
    from seccollect_dev.airflow_stack import AirflowApi, AirflowStack, PostgresServer
    from seccollect_dev.simulators.base import SimulatorServer
    from seccollect_dev.simulators.netskope import ALL_V2_SCOPES, NetskopeDataset, NetskopeSimulator

    root = tmp_path_factory.mktemp("scheduler")
    now = datetime.now(UTC)
    dataset = NetskopeDataset(seed=23, start=now - timedelta(hours=3), end=now + timedelta(hours=1),
                              rates={"alert": 600.0, "application": 1.0, "page": 1.0})
    app = NetskopeSimulator(dataset, v2_tokens={TOKEN: ALL_V2_SCOPES}, clock=time.time)
    connectors = root / "connectors"
    connectors.mkdir()
    warehouse = root / "warehouse.duckdb"
    pg = PostgresServer(host=str(postgres_server["host"]), port=int(postgres_server["port"]),
                        user=str(postgres_server["user"]))
    dbname = f"seccollect_sched_{uuid.uuid4().hex[:10]}"
    pg.ensure_database(dbname)
    with SimulatorServer(app) as server:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(root / "home"),
            "CONNECTORS_DIR": str(connectors),
            "SECCOLLECT_STAGING_URL": "file://" + str(root / "staging"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW_CONN_NETSKOPE_SCHED": json.dumps(
                {"conn_type": "netskope", "password": TOKEN, "extra": {"base_url": server.url, "api_version": "v2"}}
            ),
            "AIRFLOW_CONN_SECCOLLECT_WAREHOUSE": json.dumps({"conn_type": "duckdb", "host": str(warehouse)}),
        }
        stack = AirflowStack(
            env, pg.sqlalchemy_url(dbname), root / "logs",
            extra_env={
                # New instance files are picked up within seconds instead of minutes.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3",
            },
        )
        try:
            stack.start()
            stack.airflow("pools", "set", "warehouse_loads", "1", "DuckDB single writer")
            api: AirflowApi = stack.api()
            yield Scheduled(stack, api, dataset, connectors, warehouse, now)
        finally:
            stack.stop()
            pg.drop_database(dbname)


def _instance(name: str, **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "tenant": "acme",
        "type": "netskope",
        "conn_id": "netskope_sched",
        "netskope_tenant": "acme",
        "content_types": ["alert"],
        "settle_lag_seconds": 60,
        **settings,
    }


def _at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _ledger_ranges(wh: Any, dag_id: str) -> list[tuple[datetime, datetime, datetime]]:
    """(window_start, query_start, query_end) of every loaded window."""
    rows = wh.query(
        "SELECT window_start, cursor FROM collection_ledger WHERE dag_id = ? AND content_type = 'alert' "
        "ORDER BY window_start",
        (dag_id,),
    )
    ranges = []
    for window_start, cursor in rows:
        cursor = json.loads(cursor) if isinstance(cursor, str) else cursor
        ranges.append((window_start, datetime.fromisoformat(cursor["query_start"]),
                       datetime.fromisoformat(cursor["query_end"])))
    return ranges


def _assert_warehouse_equals_truth(scheduled: Scheduled, dag_id: str) -> None:
    with scheduled.open_warehouse() as wh:
        ranges = _ledger_ranges(wh, dag_id)
        ids = [r[0] for r in wh.query("SELECT vendor_id FROM syslog WHERE content_type = 'alert'")]
    expected: set[str] = set()
    for _, query_start, query_end in ranges:
        expected |= scheduled.dataset.expected_ids("alert", query_start, query_end)
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicate record(s) loaded"
    assert set(ids) == expected


def _statuses(coverage: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f"{r['window_start']:%H:%M}-{r['window_end']:%H:%M}", r["status"]) for r in coverage]


def _task_states(api: Any, dag_id: str, run_id: str) -> dict[str, str]:
    tis = api.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {ti["task_id"]: ti["state"] for ti in tis}


def test_manual_runs_then_missing_runs_then_all_runs_backfill_leave_no_window_uncollected(
    scheduled: Scheduled,
) -> None:
    """Runs made every way over the last hour, then `backfill create --reprocess-behavior none` and
    `completed`: every window of the hour is collected, none skipped, nothing duplicated."""
    step = timedelta(minutes=5)
    hour_end = datetime.now(UTC).replace(second=0, microsecond=0)
    hour_end -= timedelta(minutes=hour_end.minute % 5)
    hour = hour_end - timedelta(hours=1)
    windows = [hour + n * step for n in range(12)]
    # catchup off: the scheduler runs only the latest window, so the hour is left to people and backfills.
    dag_id = scheduled.deploy(_instance("sched", start_date=hour.isoformat(), catchup=False))
    scheduled.api.set_paused(dag_id, False)
    api = scheduled.api

    # The ways a person makes a run: the CLI's `dags test` (what `make demo` used to do; the run fails
    # only by its coverage check, as the hour still has gaps) ...
    scheduled.stack.airflow("dags", "test", dag_id, _at(hour + 2 * step), check=False, timeout=600)
    # ... the REST API / the UI's Trigger form with a window start, with an arbitrary time, and without
    # a logical date (the form's "now") ...
    for logical_date in (hour + 4 * step, hour + 6 * step + step / 2, None):
        api.request("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": _at(logical_date) if logical_date else None})
    # ... and `airflow dags trigger` with a window's end, as the old demo dated its runs.
    scheduled.stack.airflow("dags", "trigger", dag_id, "--logical-date", _at(hour + 10 * step))
    manual = scheduled.wait_for_runs(dag_id, lambda runs: sum(r["run_type"] == "manual" for r in runs) >= 5,
                                     what="the manual runs")
    for run in manual:
        states = _task_states(api, dag_id, run["dag_run_id"])
        assert {t: s for t, s in states.items() if t != "check_coverage"} == dict.fromkeys(
            set(states) - {"check_coverage"}, "success"), (run["logical_date"], states)

    # "Missing Runs" over the hour: a run for exactly the windows no run is dated at.
    dated = {r["logical_date"] for r in api.dag_runs(dag_id)}
    missing = scheduled.backfill(dag_id, windows[0], windows[-1], "none")
    scheduled.wait_for_backfill(missing)
    backfilled = {r["logical_date"] for r in api.dag_runs(dag_id) if r["run_type"] == "backfill"}
    assert backfilled == {_at(w) for w in windows} - dated
    assert {_at(hour + n * step) for n in (2, 4, 10)} <= dated

    with scheduled.open_warehouse() as wh:
        in_hour = [r for r in wh.coverage(dag_id, since=hour) if r["window_start"] < hour_end]
    assert [r["window_start"] for r in in_hour] == windows
    assert {r["status"] for r in in_hour} <= {"collected", "late"}, _statuses(in_hour)
    _assert_warehouse_equals_truth(scheduled, dag_id)

    # "All Runs": every window again; nothing changes in the warehouse, every window's run succeeds.
    everything = scheduled.backfill(dag_id, windows[0], windows[-1], "completed")
    scheduled.wait_for_backfill(everything)
    runs = {r["logical_date"]: r for r in api.dag_runs(dag_id)}
    not_success = {w: runs[_at(w)]["state"] for w in windows if runs[_at(w)]["state"] != "success"}
    assert not not_success, not_success
    with scheduled.open_warehouse() as wh:
        in_hour = [r for r in wh.coverage(dag_id, since=hour) if r["window_start"] < hour_end]
        assert {r["status"] for r in in_hour} <= {"collected", "late"}, _statuses(in_hour)
        # Consecutive windows tile the vendor's axis: each range starts where the previous one ended.
        hour_ranges = [r for r in _ledger_ranges(wh, dag_id) if hour <= r[0] < hour_end]
    assert [r[0] for r in hour_ranges] == windows
    assert all(a[2] == b[1] for a, b in zip(hour_ranges, hour_ranges[1:], strict=False)), hour_ranges
    _assert_warehouse_equals_truth(scheduled, dag_id)


def test_windows_missed_while_the_scheduler_was_down_run_by_themselves_from_the_documented_start(
    scheduled: Scheduled,
) -> None:
    """A new instance starts at its start_date (never before); with the scheduler stopped for two
    intervals, the missed windows run once it is back, without anyone acting."""
    now = datetime.now(UTC)
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=3)
    dag_id = scheduled.deploy(_instance("outage", start_date=start.isoformat(), interval_minutes=1,
                                        settle_lag_seconds=0))
    scheduled.api.set_paused(dag_id, False)

    def through(end: datetime):
        return lambda runs: any(r["logical_date"] == _at(end - timedelta(minutes=1)) for r in runs)

    first_due = datetime.now(UTC).replace(second=0, microsecond=0)
    runs = scheduled.wait_for_runs(dag_id, through(first_due), timeout=240, what="the first windows")
    # The first deployment schedules from its start, not before it.
    assert min(r["logical_date"] for r in runs) == _at(start)

    command = scheduled.stack.stop_component("scheduler")
    stopped_at = datetime.now(UTC)
    time.sleep(130)  # two 1-minute intervals pass with no scheduler
    scheduled.stack.start_component("scheduler", command)
    back_at = datetime.now(UTC).replace(second=0, microsecond=0)
    runs = scheduled.wait_for_runs(dag_id, through(back_at), timeout=300, what="the missed windows")

    dates = sorted(datetime.fromisoformat(r["logical_date"].replace("Z", "+00:00")) for r in runs)
    # One run per window from the start to the last complete one: no gap where the scheduler was down.
    assert dates == [start + timedelta(minutes=i) for i in range(len(dates))]
    assert dates[-1] >= back_at - timedelta(minutes=1)
    assert any(stopped_at <= d + timedelta(minutes=1) < back_at for d in dates), "no window fell in the outage"
    assert all(r["state"] == "success" for r in runs), runs
    assert {r["run_type"] for r in runs} == {"scheduled"}
    with scheduled.open_warehouse() as wh:
        statuses = {r["window_start"]: r["status"] for r in wh.coverage(dag_id) if r["window_start"] <= dates[-1]}
    assert set(statuses) == set(dates)
    assert set(statuses.values()) <= {"collected", "late"}, statuses
