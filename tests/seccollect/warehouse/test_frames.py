"""The coverage view as a pandas DataFrame through the warehouse's provider hook (``get_df``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from seccollect.operators.coverage import record_schedules
from seccollect.warehouse.base import WindowKey
from seccollect.warehouse.frames import COVERAGE_COLUMNS, coverage_df, warehouse_hook

DAG_ID = "acme-netskope-frames"
STEP = timedelta(minutes=30)


def test_coverage_df_is_the_coverage_view_through_the_providers_hook(warehouse_conn, open_test_warehouse) -> None:
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    with open_test_warehouse() as wh:
        record_schedules(wh, DAG_ID, [{"content_type": "alert", "first_window": first.isoformat(),
                                       "step_seconds": 1800, "window_seconds": 1800, "grace_seconds": 2700,
                                       "retention_seconds": None}])
        wh.load_window(WindowKey(DAG_ID, "alert", first, first + STEP), [])
        expected = wh.coverage(DAG_ID)

    hook = warehouse_hook()
    # The provider's own hook, so get_df & co. behave as documented.
    assert {"DuckDBHook", "PostgresHook"} & {cls.__name__ for cls in type(hook).__mro__}
    frame = coverage_df(DAG_ID)
    assert tuple(frame.columns) == COVERAGE_COLUMNS
    assert len(frame) == len(expected) >= 8
    assert list(frame["status"]) == [row["status"] for row in expected]
    assert frame["status"].iloc[0] == "late" and (frame["status"] == "missing").sum() >= 5
    missing = coverage_df(DAG_ID, statuses=["missing"], since=first + 2 * STEP, hook=hook)
    assert set(missing["status"]) == {"missing"}
    starts = missing["window_start"]
    starts = starts.dt.tz_localize(UTC) if starts.dt.tz is None else starts.dt.tz_convert(UTC)
    assert len(starts) >= 1 and all(starts >= first + 2 * STEP)
    assert coverage_df("another-dag").empty
