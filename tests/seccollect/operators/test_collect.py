"""BaseCollectOperator: the window it collects, when it refuses or skips, what it returns, how it fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from seccollect.http.errors import VendorApiError
from seccollect.operators.collect import BaseCollectOperator, Collected, parse_window_bound
from seccollect.records.envelope import MsgOrigin
from seccollect.staging.store import read_batch

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 0, 5, tzinfo=UTC)
ORIGIN = MsgOrigin("netskopewsg_event", "netskope", "netskope", "web_security")


pytestmark = pytest.mark.usefixtures("staging")  # every test stages into its own local folder


class _Collect(BaseCollectOperator):
    """Stages ``records`` Syslog rows (and a side table the load never loads), or raises ``error``."""

    def __init__(self, *, records: int = 3, error: Exception | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.records = records
        self.error = error

    def collect(self, writer, envelope, context) -> Collected:
        if self.error is not None:
            raise self.error
        for i in range(self.records):
            writer.add("syslog", envelope.wrap(ORIGIN, {"id": i}, vendor_id=str(i), event_time=None))
        writer.add("alert_latest", {"alert_key": "0" * 32, "event_time": START, "record_id": "1" * 32, "raw": "{}"})
        return Collected(figures={"fetched": self.records})


class _TaskInstance:
    def __init__(self, map_index: int) -> None:
        self.map_index = map_index


def _operator(start: Any = START, end: Any = END, **kwargs: Any) -> _Collect:
    with DAG("acme-netskope-x", schedule=None):
        return _Collect(
            task_id="collect_event", tenant="acme", instance_name="x", content_type="event",
            window_start=start, window_end=end, **kwargs,
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01T00:00:00+00:00", START),
        ("2026-03-01T01:00:00+01:00", START),  # another offset: the same instant, in UTC
        ("2026-03-01T00:00:00", START),  # naive text is UTC
        (datetime(2026, 3, 1, 2, tzinfo=timezone(timedelta(hours=2))), START),
    ],
)
def test_window_bounds_are_parsed_as_utc(value, expected) -> None:
    bound = parse_window_bound(value)
    assert bound == expected and bound.tzinfo == UTC


def test_it_stages_the_window_and_returns_paths_and_record_counts(staging: Path) -> None:
    result = _operator().execute(context={})
    assert (result.window_start, result.window_end) == (START, END)
    assert result.figures["fetched"] == 3
    assert result.rows == 3, "records of indices only, not side tables"
    batches = list(result.batches)
    assert {b.table for b in batches} == {"syslog", "alert_latest"}
    rows = read_batch(next(b for b in batches if b.table == "syslog")).to_pylist()
    assert {(r["tenant"], r["instance"], r["content_type"]) for r in rows} == {("acme", "x", "event")}
    assert {(r["window_start"], r["window_end"]) for r in rows} == {(START, END)}
    assert all(b.path.startswith("file://" + str(staging)) for b in batches)


def test_a_mapped_task_instance_stages_in_its_own_folder() -> None:
    first = _operator().execute(context={"ti": _TaskInstance(0)})
    second = _operator().execute(context={"ti": _TaskInstance(1)})
    # Each writer empties its own folder before its first part: siblings must not share one.
    assert "/collect_event/0/" in first.batches[0].path
    assert "/collect_event/1/" in second.batches[0].path
    assert read_batch(first.batches[0]).num_rows == 3


def test_an_empty_or_reversed_window_fails_without_retries() -> None:
    # A bare cron schedule gives data_interval_start == data_interval_end: refusing beats reading nothing.
    with pytest.raises(AirflowFailException, match="Empty collection window"):
        _operator(START, START).execute(context={})
    with pytest.raises(AirflowFailException, match="Empty collection window"):
        _operator(END, START).execute(context={})


def test_a_window_the_subclass_does_not_collect_is_skipped() -> None:
    operator = _operator()
    operator.should_collect = lambda start, end: False  # type: ignore[method-assign]
    with pytest.raises(AirflowSkipException):
        operator.execute(context={})


@pytest.mark.parametrize(("status", "fatal"), [(401, True), (403, True), (404, True), (429, False), (503, False)])
def test_fatal_vendor_errors_fail_without_retries_others_are_retried(status: int, fatal: bool) -> None:
    error = VendorApiError(vendor="Netskope", endpoint="GET /api/v2/events/data/page", status=status)
    with pytest.raises(AirflowFailException if fatal else VendorApiError) as raised:
        _operator(error=error).execute(context={})
    assert "GET /api/v2/events/data/page" in str(raised.value)
    assert isinstance(raised.value, AirflowFailException) is fatal


def test_the_staged_window_round_trips_through_airflows_xcom_serialisation() -> None:
    from airflow.sdk import serde

    result = _operator().execute(context={})
    assert serde.deserialize(serde.serialize(result)) == result


def test_a_run_without_a_logical_date_collects_the_last_complete_window_before_it_was_made() -> None:
    """``POST .../dagRuns`` with ``"logical_date": null`` makes a run with no data interval; its tasks
    collect what a manual run made at that moment would (the last complete window), not fail."""
    from types import SimpleNamespace

    from seccollect.dag_factory.timetable import WindowCronTimetable
    from seccollect.operators.collect import run_window

    with DAG("acme-x-nolog", schedule=WindowCronTimetable("*/5 * * * *")):
        task = _Collect(task_id="collect_event", tenant="acme", instance_name="x", content_type="event")
    made = datetime(2026, 3, 1, 10, 7, 30, tzinfo=UTC)
    context = {"dag_run": SimpleNamespace(conf={}, run_after=made)}
    assert run_window(task, context) == (datetime(2026, 3, 1, 10, 0, tzinfo=UTC), datetime(2026, 3, 1, 10, 5, tzinfo=UTC))
    # A replay's conf wins over everything; a data interval over the timetable.
    replay = {"dag_run": SimpleNamespace(conf={"window_start": START.isoformat(), "window_end": END.isoformat()},
                                         run_after=made)}
    assert run_window(task, replay) == (START, END)
    scheduled = {"dag_run": SimpleNamespace(conf={}, run_after=made), "data_interval_start": START,
                 "data_interval_end": END, "logical_date": START}
    assert run_window(task, scheduled) == (START, END)
    # `airflow dags trigger --logical-date 09:55` at 10:07:30: Airflow infers the data interval from the
    # time of the call; the run still collects the window its logical date names.
    cli = {"dag_run": SimpleNamespace(conf={}, run_after=made), "logical_date": datetime(2026, 3, 1, 9, 55, tzinfo=UTC),
           "data_interval_start": datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
           "data_interval_end": datetime(2026, 3, 1, 10, 5, tzinfo=UTC)}
    assert run_window(task, cli) == (datetime(2026, 3, 1, 9, 55, tzinfo=UTC), datetime(2026, 3, 1, 10, 0, tzinfo=UTC))


def test_window_bounds_are_plain_aware_datetimes_even_from_pendulum() -> None:
    """Airflow's context holds pendulum DateTimes; one with a ``datetime.timezone`` loses its zone in
    arithmetic, which made a settle-lag subtraction naive and the vendor clock check crash."""
    import pendulum

    bound = parse_window_bound(pendulum.instance(datetime(2026, 3, 1, 0, 5, tzinfo=UTC)).astimezone(UTC))
    assert type(bound) is datetime
    assert (bound - timedelta(seconds=300)).tzinfo is not None
