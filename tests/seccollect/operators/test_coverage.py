"""The coverage check: it fails naming the windows no run collected (with the command that fills them),
ignores windows whose run is still queued or running, and failed tasks mark their window 'failed'."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from seccollect.operators.coverage import CoverageCheckOperator, describe_gaps, record_window_failure
from seccollect.warehouse import open_warehouse
from seccollect.warehouse.base import WindowKey

DAG_ID = "acme-acme-checked"
STEP = timedelta(minutes=30)


def _first() -> datetime:
    now = datetime.now(UTC)
    # Four hours back: every window up to the 5th ends over an hour before now, so loading it now is late
    # (past its 45-minute grace) whatever the time of day.
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)


def _check() -> CoverageCheckOperator:
    with DAG(DAG_ID, schedule=None):
        return CoverageCheckOperator(task_id="check_coverage", schedules=[{
            "content_type": "event", "first_window": _first().isoformat(), "step_seconds": 1800,
            "window_seconds": 1800, "grace_seconds": 2700, "retention_seconds": None,
        }])


class _TaskInstance:
    """The Task SDK call the check makes: how many runs of these logical dates are queued or running."""

    def __init__(self, running: set[datetime]) -> None:
        self.running = running

    def get_dr_count(self, dag_id: str, logical_dates: list[datetime], states: list[str]) -> int:
        assert dag_id == DAG_ID and states == ["queued", "running"]
        return sum(1 for d in logical_dates if d in self.running)


def _context(running: set[datetime], own: int = 6) -> dict[str, Any]:
    """The check's context in the run of window ``own`` (by default the one due now)."""
    start = _first() + own * STEP
    return {"ti": _TaskInstance(running), "data_interval_start": start, "data_interval_end": start + STEP}


def _load(start: datetime) -> None:
    with open_warehouse("seccollect_warehouse") as wh:
        wh.ensure_schema()
        wh.load_window(WindowKey(DAG_ID, "event", start, start + STEP), [])


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_gaps_fail_the_check_naming_them_and_how_to_fill_them(warehouse_conn) -> None:
    first = _first()
    for n in (0, 1, 4):  # windows 2 and 3 never collected; 5 is running (a catch-up), the rest pending
        _load(first + n * STEP)
    with pytest.raises(AirflowFailException) as failed:
        _check().execute(_context({first + 5 * STEP}))
    message = str(failed.value)
    assert f"2 window(s) of {DAG_ID} were never collected" in message
    assert f"event {first + 2 * STEP:%Y-%m-%d %H:%M} .. {first + 4 * STEP:%Y-%m-%d %H:%M} UTC: 2 window(s) missing" in message
    assert f"airflow backfill create --dag-id {DAG_ID} --from-date {(first + 2 * STEP).isoformat()}" in message
    for n in (2, 3):
        _load(first + n * STEP)
    result = _check().execute(_context({first + 5 * STEP}))
    # Loaded long after their end (here, now): late, not missing (window 5 may be past its grace by
    # the clock, but its run is still going: no gap).
    assert result["windows"]["late"] == 5


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_a_task_that_failed_for_good_marks_its_window_failed_with_the_reason(warehouse_conn) -> None:
    first = _first()

    class _Task:
        dag_id, task_id, content_type = DAG_ID, "collect_event", "event"
        warehouse_conn_id = "seccollect_warehouse"
        window_start, window_end = (first + STEP).isoformat(), (first + 2 * STEP).isoformat()

    record_window_failure({"task": _Task(), "exception": RuntimeError("Netskope said: Token expired"), "run_id": "r1"})
    with pytest.raises(AirflowFailException, match=r"1 window\(s\) failed \(collect_event: Netskope said: Token expired\)"):
        _check().execute(_context(set()))


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_windows_from_the_runs_own_on_are_not_judged(warehouse_conn) -> None:
    """A catch-up run (the scheduler creates missed runs a few at a time) does not call the windows
    after its own missing: they are the scheduler's work still to do."""
    first = _first()
    _load(first)
    assert _check().execute(_context(set(), own=1))["windows"]["missing"] >= 3  # 1-3, and 4 past its grace
    with pytest.raises(AirflowFailException, match=r"1 window\(s\) of"):
        _check().execute(_context(set(), own=2))


def test_a_callback_problem_never_raises() -> None:
    import logging

    class _Task:
        dag_id, task_id, content_type, warehouse_conn_id = DAG_ID, "load_event", "event", "no_such_connection"
        window_start = window_end = None

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("seccollect.operators.coverage")
    logger.addHandler(handler)
    try:
        context: dict[str, Any] = {"task": _Task(), "data_interval_start": _first(), "data_interval_end": _first() + STEP}
        record_window_failure(context)  # no exception
    finally:
        logger.removeHandler(handler)
    assert any("Could not record the window's failure" in r.getMessage() for r in records)


def test_consecutive_gaps_are_joined_and_long_lists_cut() -> None:
    t = _first()
    gaps = [{"content_type": "event", "window_start": t + n * STEP, "window_end": t + (n + 1) * STEP,
             "status": "missing", "failed_task": None, "failure": None} for n in range(0, 60, 2)]
    message = describe_gaps(DAG_ID, gaps)
    assert "30 window(s)" in message and "… and 10 more gap(s)" in message
