"""The windowed collect pattern: ranges stitched to the neighbouring windows' stored ranges (so a changed
settle lag or any collection order leaves no gap or overlap), a replay re-reading its own range, and a
wait (deferral) while the vendor's clock has not reached the end of the range."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG

from seccollect.operators.windowed import WindowedCollectOperator
from seccollect.records.envelope import MsgOrigin
from seccollect.records.intake import RecordFields
from seccollect.staging.handoff import StagedWindow
from seccollect.warehouse import open_warehouse
from seccollect.warehouse.base import WindowKey

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
DAG_ID = "acme-acme-lagged"

pytestmark = pytest.mark.usefixtures("staging")


class Lagged(WindowedCollectOperator):
    """A vendor whose range trails the window by ``lag``; it serves one record per queried minute."""

    def __init__(self, *, lag: timedelta, vendor_now: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lag = lag
        self.now = vendor_now
        self.queried: list[tuple[datetime, datetime]] = []

    def origin(self) -> MsgOrigin:
        return MsgOrigin("acme_event", "acme", "acme", "testing")

    def query_range(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        return start - self.lag, end - self.lag

    def pages(self, query_start: datetime, query_end: datetime, context: Any) -> Iterator[Sequence[Any]]:
        self.queried.append((query_start, query_end))
        minute = query_start
        while minute < query_end:
            yield [{"id": minute.isoformat(), "t": int(minute.timestamp())}]
            minute += MIN

    def extract(self, raw: dict[str, Any]) -> RecordFields:
        return RecordFields(raw["id"], datetime.fromtimestamp(raw["t"], UTC))

    def vendor_clock(self) -> datetime | None:
        return self.now


def collect(n: int, lag_minutes: int, **kwargs: Any) -> tuple[StagedWindow, Lagged]:
    """Collect the n-th 5-minute window (and load it, so its range is in the ledger)."""
    start = T0 + 5 * MIN * n
    with DAG(DAG_ID, schedule=None):
        operator = Lagged(task_id="collect_event", tenant="acme", instance_name="lagged", content_type="event",
                          lag=timedelta(minutes=lag_minutes), window_start=start, window_end=start + 5 * MIN, **kwargs)
    staged = operator.execute(context={})
    with open_warehouse("seccollect_warehouse") as wh:
        wh.ensure_schema()
        wh.load_window(WindowKey(DAG_ID, "event", start, start + 5 * MIN), staged.batches,
                       cursor=json.dumps(staged.cursor))
    return staged, operator


def ranges(*staged: StagedWindow) -> list[tuple[datetime, datetime]]:
    return [(datetime.fromisoformat(s.cursor["query_start"]), datetime.fromisoformat(s.cursor["query_end"])) for s in staged]


def collected_minutes() -> list[str]:
    with open_warehouse("seccollect_warehouse") as wh:
        return sorted(r[0] for r in wh.query("SELECT vendor_id FROM syslog"))


def test_consecutive_windows_tile_the_vendor_axis_when_the_lag_shrinks_and_grows(warehouse_conn) -> None:
    first, _ = collect(0, 15)
    second, _ = collect(1, 5)  # lag 15 -> 5 min: the gap of 10 minutes is read by this window
    third, _ = collect(2, 15)  # lag 5 -> 15 min: nothing new yet, an empty range (no overlap)
    fourth, _ = collect(3, 15)
    fifth, _ = collect(4, 15)
    spans = ranges(first, second, third, fourth, fifth)
    assert spans[0] == (T0 - 15 * MIN, T0 - 10 * MIN)
    assert spans[1] == (T0 - 10 * MIN, T0 + 5 * MIN)
    assert spans[2] == (T0 + 5 * MIN, T0 + 5 * MIN)
    assert spans[3] == (T0 + 5 * MIN, T0 + 5 * MIN)
    assert spans[4] == (T0 + 5 * MIN, T0 + 10 * MIN)
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert end == next_start, "ranges must tile the vendor's time axis"
    minutes = collected_minutes()
    assert len(minutes) == len(set(minutes)) == 25  # T0-15 .. T0+10, each minute once


def test_windows_collected_out_of_order_stitch_to_each_other(warehouse_conn) -> None:
    third, _ = collect(2, 5)
    first, _ = collect(0, 5)
    second, _ = collect(1, 10)  # its lag differs, yet both of its ends come from its neighbours
    assert ranges(first, second, third) == [
        (T0 - 5 * MIN, T0), (T0, T0 + 5 * MIN), (T0 + 5 * MIN, T0 + 10 * MIN)
    ]
    assert len(collected_minutes()) == 15


def test_a_replay_re_reads_its_own_stored_range(warehouse_conn) -> None:
    collect(0, 10)
    replay, operator = collect(0, 2)  # the lag changed since: the stored range wins
    assert ranges(replay) == [(T0 - 10 * MIN, T0 - 5 * MIN)]
    assert operator.queried == [(T0 - 10 * MIN, T0 - 5 * MIN)]


def test_a_vendor_clock_behind_the_range_end_defers_instead_of_succeeding(warehouse_conn) -> None:
    from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
    from airflow.sdk.exceptions import TaskDeferred

    behind = T0 - 10 * MIN  # the range ends at T0 - 5 min
    with pytest.raises(TaskDeferred) as deferred:
        collect(0, 10, vendor_now=behind)
    assert isinstance(deferred.value.trigger, TimeDeltaTrigger)
    assert deferred.value.method_name == "resume_after_vendor_clock"
    assert collected_minutes() == []
    staged, _ = collect(0, 10, vendor_now=T0)  # caught up
    assert staged.figures["staged"] == 5
