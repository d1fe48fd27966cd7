"""The connector DAGs' timetables: one window per logical date, however a run was made.

Airflow's data-interval timetables give a *scheduled* or *backfill* run the window that starts at its
logical date, but a *manual* run (the UI's Trigger, ``POST /api/v2/dags/{id}/dagRuns``, ``dag.test()``)
the window that *ends* at its logical date. Backfill decides which windows are missing by logical date,
so after manual runs a "Missing Runs" backfill skips windows nobody collected. Here every run follows
one convention:

* **a run collects the window that starts at its logical date**, whether the scheduler, a backfill or
  a person made it;
* a manual run whose logical date is not a window start (the Trigger form's default, "now") collects
  the last complete window before it. Its logical date then names no window, so it never hides one
  from a backfill.

Catch-up never goes further back than the vendor keeps data (``retention``): after a long outage the
scheduler resumes from the oldest window the vendor can still serve, and the coverage view shows the
older ones as lost to retention rather than missing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow._shared.timezones.timezone import coerce_datetime, parse_timezone, utcnow
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable
from pendulum import DateTime


class _WindowRules:
    """What both timetables add to Airflow's data-interval timetables (see the module docstring)."""

    retention: timedelta | None
    first_window: DateTime | None

    def _window_starting_at(self, moment: DateTime) -> DataInterval | None:
        raise NotImplementedError

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        window = self._window_starting_at(run_after)
        if window is not None:
            return window
        return super().infer_manual_data_interval(run_after=run_after)  # type: ignore[misc]

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        if self.first_window is not None and (restriction.earliest is None or restriction.earliest < self.first_window):
            # The scheduler starts at the instance's first window. This is the timetable's job and not the
            # DAG's start_date: Airflow creates no task for a run dated before a task's start date (it
            # would succeed empty), so replays and backfills of older windows must stay possible.
            restriction = TimeRestriction(self.first_window, restriction.latest, restriction.catchup)
        info = super().next_dagrun_info(  # type: ignore[misc]
            last_automated_data_interval=last_automated_data_interval, restriction=restriction
        )
        if info is None or self.retention is None or not restriction.catchup:
            return info
        oldest = coerce_datetime(utcnow()) - self.retention
        if info.data_interval.start >= oldest:
            return info
        # Catching up past what the vendor keeps: resume at the oldest window it still serves.
        earliest = max(oldest, restriction.earliest) if restriction.earliest else oldest
        return super().next_dagrun_info(  # type: ignore[misc]
            last_automated_data_interval=None,
            restriction=TimeRestriction(earliest=earliest, latest=restriction.latest, catchup=True),
        )

    def _rules_data(self) -> dict[str, Any]:
        return {
            "retention_seconds": self.retention.total_seconds() if self.retention else None,
            "first_window": self.first_window.isoformat() if self.first_window else None,
        }

    @staticmethod
    def _rules_of(data: dict[str, Any]) -> dict[str, Any]:
        seconds, first = data.get("retention_seconds"), data.get("first_window")
        return {
            "retention": timedelta(seconds=seconds) if seconds else None,
            "first_window": coerce_datetime(datetime.fromisoformat(first)) if first else None,
        }


class WindowCronTimetable(_WindowRules, CronDataIntervalTimetable):
    """Clock-aligned windows (``*/5 * * * *``), each collected by the run whose logical date is its start.

    :param cron: the cron expression of the window starts.
    :param timezone: the timezone of the expression (UTC for every connector DAG).
    :param retention: how far back the vendor serves data; catch-up never schedules older windows.
    :param first_window: the scheduler schedules no window that starts before it (the instance's start).
    """

    def __init__(
        self,
        cron: str,
        timezone: Any = "UTC",
        *,
        retention: timedelta | None = None,
        first_window: datetime | None = None,
    ) -> None:
        super().__init__(cron, timezone)
        self.retention = retention
        self.first_window = coerce_datetime(first_window) if first_window else None

    def _window_starting_at(self, moment: DateTime) -> DataInterval | None:
        if self._align_to_prev(moment) != moment:
            return None
        return DataInterval(start=moment, end=self._get_next(moment))

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> WindowCronTimetable:
        return cls(data["expression"], parse_timezone(data["timezone"]), **cls._rules_of(data))

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), **self._rules_data()}

    @property
    def expression(self) -> str:
        return self._expression

    @property
    def timezone(self) -> str:
        return str(self._timezone.name)


class WindowDeltaTimetable(_WindowRules, DeltaDataIntervalTimetable):
    """Windows of a fixed length from the start date (intervals that do not divide an hour or a day).

    A run's window starts at its logical date; with no clock alignment to fall back on, a manual run's
    window starts at its logical date too (the collect waits until that window is complete).

    :param delta: the window length.
    :param retention: how far back the vendor serves data; catch-up never schedules older windows.
    :param first_window: the scheduler schedules no window that starts before it (the instance's start).
    """

    def __init__(
        self, delta: timedelta, *, retention: timedelta | None = None, first_window: datetime | None = None
    ) -> None:
        super().__init__(delta)
        self.retention = retention
        self.first_window = coerce_datetime(first_window) if first_window else None

    @property
    def delta(self) -> timedelta:
        return self._delta

    def _window_starting_at(self, moment: DateTime) -> DataInterval | None:
        return DataInterval(start=moment, end=moment + self._delta)

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> WindowDeltaTimetable:
        return cls(timedelta(seconds=data["delta"]), **cls._rules_of(data))

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), **self._rules_data()}
