"""One window per logical date: scheduled, backfilled and manual runs all collect the window that
starts at their logical date, and catch-up never goes further back than the vendor keeps data."""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction

from seccollect.dag_factory.timetable import WindowCronTimetable, WindowDeltaTimetable

UTC = "UTC"


def at(hour: int, minute: int, second: int = 0) -> pendulum.DateTime:
    return pendulum.datetime(2026, 3, 1, hour, minute, second, tz=UTC)


def test_a_manual_run_at_a_window_start_collects_the_window_that_starts_there() -> None:
    timetable = WindowCronTimetable("*/5 * * * *", UTC)
    assert timetable.infer_manual_data_interval(run_after=at(4, 35)) == DataInterval(at(4, 35), at(4, 40))


def test_so_does_a_scheduled_or_backfill_run_with_that_logical_date() -> None:
    timetable = WindowCronTimetable("*/5 * * * *", UTC)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(at(4, 30), at(4, 35)),
        restriction=TimeRestriction(earliest=at(0, 0), latest=None, catchup=True),
    )
    assert info.logical_date == at(4, 35) and info.data_interval == DataInterval(at(4, 35), at(4, 40))


def test_a_manual_run_at_no_window_start_collects_the_last_complete_window() -> None:
    # The Trigger form's default logical date is "now": a time that names no window, so it can never
    # hide a window from a "Missing Runs" backfill.
    timetable = WindowCronTimetable("*/5 * * * *", UTC)
    assert timetable.infer_manual_data_interval(run_after=at(4, 37, 13)) == DataInterval(at(4, 30), at(4, 35))


def test_a_fixed_delta_window_starts_at_the_logical_date() -> None:
    timetable = WindowDeltaTimetable(timedelta(minutes=7))
    assert timetable.infer_manual_data_interval(run_after=at(4, 37, 13)) == DataInterval(at(4, 37, 13), at(4, 44, 13))


def test_catch_up_resumes_at_the_oldest_window_the_vendor_still_serves() -> None:
    timetable = WindowCronTimetable("0 * * * *", UTC, retention=timedelta(hours=72))
    now = pendulum.now(UTC)
    ten_days_ago = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=10)
    last = DataInterval(ten_days_ago - timedelta(hours=1), ten_days_ago)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=last,
        restriction=TimeRestriction(earliest=now - timedelta(days=30), latest=None, catchup=True),
    )
    assert now - timedelta(hours=72) <= info.data_interval.start <= now - timedelta(hours=71)
    # Without a retention the missed windows are all scheduled, oldest first.
    unbounded = WindowCronTimetable("0 * * * *", UTC).next_dagrun_info(
        last_automated_data_interval=last,
        restriction=TimeRestriction(earliest=now - timedelta(days=30), latest=None, catchup=True),
    )
    assert unbounded.data_interval.start == ten_days_ago


@pytest.mark.parametrize("timetable", [
    WindowCronTimetable("*/15 * * * *", UTC, retention=timedelta(hours=72)),
    WindowDeltaTimetable(timedelta(minutes=7), retention=None),
])
def test_the_scheduler_can_serialise_them(timetable) -> None:
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("acme-x-y", schedule=timetable, start_date=at(0, 0)) as dag:
        pass
    restored = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable
    assert type(restored) is type(timetable)
    assert restored.serialize() == timetable.serialize()
    assert restored.infer_manual_data_interval(run_after=at(1, 0)) == timetable.infer_manual_data_interval(run_after=at(1, 0))


def test_the_scheduler_starts_at_the_first_window_and_never_before() -> None:
    timetable = WindowCronTimetable("*/5 * * * *", UTC, first_window=at(4, 0))
    first = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=pendulum.datetime(2000, 1, 1, tz=UTC), latest=None, catchup=True),
    )
    assert first.data_interval == DataInterval(at(4, 0), at(4, 5))
    # A manual run (a replay) of an earlier window is still its own window.
    assert timetable.infer_manual_data_interval(run_after=at(2, 0)) == DataInterval(at(2, 0), at(2, 5))
