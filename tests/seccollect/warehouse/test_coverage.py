"""The coverage view: every expected window of an instance, from its first window to now, with what
became of it - on both warehouses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from seccollect.operators.coverage import record_schedules
from seccollect.warehouse.base import Warehouse

DAG = "acme-acme-covered"
STEP = timedelta(minutes=30)


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)


def _schedule(wh: Warehouse, first: datetime, *, retention: timedelta | None = None, every: timedelta = STEP,
              content_type: str = "event") -> None:
    record_schedules(wh, DAG, [{
        "content_type": content_type, "first_window": first.isoformat(), "step_seconds": int(every.total_seconds()),
        "window_seconds": int(STEP.total_seconds()), "grace_seconds": int(timedelta(minutes=45).total_seconds()),
        "retention_seconds": int(retention.total_seconds()) if retention else None,
    }])


def _statuses(wh: Warehouse, content_type: str = "event") -> dict[datetime, str]:
    return {r["window_start"]: r["status"] for r in wh.coverage(DAG) if r["content_type"] == content_type}


def test_every_window_from_the_first_to_now_has_a_status(wh: Warehouse) -> None:
    now = _now()
    first = now - 8 * STEP
    _schedule(wh, first)
    windows = [first + n * STEP for n in range(9)]
    # Collected on time, collected late (a catch-up long after the window), failed, never collected.
    with wh.transaction():
        for window, loaded in ((windows[0], windows[0] + STEP + timedelta(minutes=2)), (windows[1], now)):
            wh.execute(
                "INSERT INTO collection_ledger (dag_id, content_type, window_start, window_end, staged_rows, "
                "inserted_rows, duplicate_rows, quarantined, loaded_at, first_loaded_at) "
                "VALUES (?, ?, ?, ?, 5, 5, 0, 0, ?, ?)",
                (DAG, "event", window, window + STEP, loaded, loaded),
            )
        wh.execute(
            "INSERT INTO window_failures (dag_id, content_type, window_start, window_end, task_id, reason, failed_at) "
            "VALUES (?, ?, ?, ?, 'collect_event', 'HTTP 401', ?)",
            (DAG, "event", windows[2], windows[2] + STEP, now),
        )
    clock = datetime.now(UTC)
    statuses = _statuses(wh)
    assert [statuses[w] for w in windows[:4]] == ["collected", "late", "failed", "missing"]
    # A window is pending until its grace period (45 min here) after its end has passed; which of the
    # last windows that is depends on the time of day, so the expectation is computed from the clock.
    due = {w for w in windows[3:] if w + STEP + timedelta(minutes=45) <= clock}
    assert statuses[windows[-1]] == "pending"
    assert {w for w in windows[3:] if statuses[w] == "pending"} == set(windows[3:]) - due
    failed = next(r for r in wh.coverage(DAG) if r["window_start"] == windows[2])
    assert (failed["failed_task"], failed["failure"]) == ("collect_event", "HTTP 401")
    late = next(r for r in wh.coverage(DAG) if r["window_start"] == windows[1])
    assert (late["rows_inserted"], late["window_end"]) == (5, windows[1] + STEP)
    assert {r["window_start"] for r in wh.coverage(DAG, statuses=("missing",))} == due


def test_windows_older_than_the_vendor_keeps_are_lost_to_retention_not_missing(wh: Warehouse) -> None:
    now = _now()
    _schedule(wh, now - 10 * STEP, retention=3 * STEP)
    statuses = _statuses(wh)
    assert statuses[now - 10 * STEP] == "lost_to_retention"
    assert statuses[now - 3 * STEP] == "missing"


def test_a_daily_content_type_expects_one_window_a_day(wh: Warehouse) -> None:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    _schedule(wh, midnight, every=timedelta(days=1), content_type="pops")
    assert sorted(_statuses(wh, "pops")) == [midnight + timedelta(days=n) for n in range(3)]
