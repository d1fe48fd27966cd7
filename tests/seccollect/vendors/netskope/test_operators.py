"""Netskope collect operator outside a DAG: the daily snapshot rule, the settle lag, fatal failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from seccollect_dev.simulators.netskope import V2_DATA_PATHS, V2_POPS_PATH, V2_TUNNELS_PATH
from tests.conftest import NETSKOPE_START, NETSKOPE_V2_TOKEN

D = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (D, D + timedelta(minutes=5), True),  # starts at midnight
        (D - timedelta(minutes=5), D, False),  # ends at midnight: the next window takes it
        (D - timedelta(minutes=30), D + timedelta(minutes=30), True),
        (D + timedelta(minutes=5), D + timedelta(minutes=10), False),
        (D + timedelta(hours=1), D + timedelta(hours=23, minutes=59, seconds=59), False),
        (D + timedelta(hours=1), D + timedelta(days=1, hours=1), True),  # a window longer than a day
        (D - timedelta(seconds=1), D + timedelta(seconds=1), True),
        # Non-UTC inputs: 01:30+02:00 is 23:30 UTC, so this window holds UTC midnight...
        (datetime(2026, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))),
         datetime(2026, 3, 1, 2, 30, tzinfo=timezone(timedelta(hours=2))), True),
        # ... and local midnight of +02:00 (22:00 UTC) is not UTC midnight.
        (datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=2))),
         datetime(2026, 3, 2, 0, 30, tzinfo=timezone(timedelta(hours=2))), False),
    ],
)
def test_contains_midnight(start, end, expected) -> None:
    from seccollect.vendors.netskope.operators import contains_midnight

    assert contains_midnight(start, end) is expected


def test_consecutive_windows_take_exactly_one_snapshot_per_day() -> None:
    from seccollect.vendors.netskope.operators import contains_midnight

    for minutes in (5, 7, 60, 90):
        step = timedelta(minutes=minutes)
        first = t = D - timedelta(hours=3) + timedelta(minutes=3)
        taken = 0
        while t < D + timedelta(days=2):
            taken += contains_midnight(t, t + step)
            t += step
        # The windows tile [first, t): every UTC midnight in it is taken exactly once.
        midnights = [D + timedelta(days=n) for n in range(4) if first <= D + timedelta(days=n) < t]
        assert taken == len(midnights) >= 2, minutes


def _operator(content_type: str, start: datetime, end: datetime, **kwargs):
    from seccollect.vendors.netskope.operators import NetskopeCollectOperator, NetskopeSteeringOperator

    operator = NetskopeSteeringOperator if content_type in ("pops", "tunnels") else NetskopeCollectOperator
    return operator(
        task_id=f"collect_{content_type}",
        tenant="acme",
        instance_name="unit",
        content_type=content_type,
        netskope_conn_id=kwargs.pop("conn_id", "netskope_test"),
        netskope_tenant="acme",
        window_start=start,
        window_end=end,
        **kwargs,
    )


def _staged_rows(result, table: str = "syslog") -> list[dict]:
    from seccollect.staging.store import read_batch

    rows: list[dict] = []
    for batch in result.batches:
        if batch.table == table:
            rows.extend(read_batch(batch).to_pylist())
    return rows


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_settle_lag_shifts_the_queried_insertion_window(staging, netskope_sim, netskope_dataset, warehouse_conn) -> None:
    start, end = NETSKOPE_START + timedelta(minutes=30), NETSKOPE_START + timedelta(minutes=40)
    lag = timedelta(seconds=600)
    result = _operator("alert", start, end, settle_lag_seconds=600).execute(context={})

    (request,) = netskope_sim.stats.snapshot()["recent"]
    assert request["path"] == V2_DATA_PATHS["alert"]
    assert request["query"]["insertionstarttime"] == [str(int((start - lag).timestamp()))]
    assert request["query"]["insertionendtime"] == [str(int((end - lag).timestamp()))]

    rows = _staged_rows(result)
    served = netskope_dataset.expected_records("alert", start - lag, end - lag)
    assert sorted(r["vendor_id"] for r in rows) == sorted(r["_id"] for r in served)
    assert result.rows == len(served) and result.figures["fetched"] == len(served)
    # Beside every raw alert, in the same order, the fields the alert mapping reads.
    fields = _staged_rows(result, "alert_fields")
    assert [f["vendor_id"] for f in fields] == [r["vendor_id"] for r in rows]
    by_id = {raw["_id"]: raw for raw in served}
    for f in fields:
        raw = by_id[f["vendor_id"]]
        assert (f["raw_type"], f["raw_alert_type"], f["raw_user"]) == (raw.get("type"), raw.get("alert_type"), raw.get("user"))
    # The rows are stamped with the run's window, not the shifted query window.
    assert {(r["window_start"], r["window_end"]) for r in rows} == {(start, end)}
    assert {r["msg_class"] for r in rows} == {"netskopewsg_alert"}
    assert json.dumps(result.serialize()).find(NETSKOPE_V2_TOKEN) == -1


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_zero_settle_lag_queries_the_window_itself(staging, netskope_sim, warehouse_conn) -> None:
    start, end = NETSKOPE_START, NETSKOPE_START + timedelta(minutes=5)
    _operator("page", start, end, settle_lag_seconds=0).execute(context={})
    (request,) = netskope_sim.stats.snapshot()["recent"]
    assert request["query"]["insertionstarttime"] == [str(int(start.timestamp()))]
    assert request["query"]["insertionendtime"] == [str(int(end.timestamp()))]


@pytest.mark.parametrize("content_type", ["pops", "tunnels"])
def test_snapshots_skip_windows_without_midnight(content_type, staging, netskope_sim) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    op = _operator(content_type, NETSKOPE_START + timedelta(hours=1), NETSKOPE_START + timedelta(hours=2))
    with pytest.raises(AirflowSkipException):
        op.execute(context={})
    assert netskope_sim.stats.total == 0, "a skipped snapshot must not call the API"


@pytest.mark.parametrize(("content_type", "path"), [("pops", V2_POPS_PATH), ("tunnels", V2_TUNNELS_PATH)])
@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_snapshots_collect_in_the_midnight_window_whatever_the_lag(
    content_type, path, staging, netskope_sim, netskope_dataset, warehouse_conn
) -> None:
    start, end = NETSKOPE_START - timedelta(minutes=5), NETSKOPE_START + timedelta(minutes=5)
    result = _operator(content_type, start, end, settle_lag_seconds=900).execute(context={})
    rows = _staged_rows(result)
    truth = getattr(netskope_dataset, content_type)
    assert sorted(json.loads(r["raw"])["id"] for r in rows) == sorted(t["id"] for t in truth)
    assert len({r["record_id"] for r in rows}) == len(truth)
    assert {r["msg_class"] for r in rows} == {f"netskopewsg_{content_type}"}
    assert netskope_sim.stats.count(path) == 1


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_fatal_vendor_error_fails_the_task_without_retry(staging, netskope_sim, warehouse_conn) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    netskope_sim.expire_token(NETSKOPE_V2_TOKEN)
    op = _operator("alert", NETSKOPE_START, NETSKOPE_START + timedelta(minutes=5), settle_lag_seconds=0)
    with pytest.raises(AirflowFailException, match=r"GET /api/v2/events/data/alert .*HTTP 401"):
        op.execute(context={})
    assert netskope_sim.stats.total == 1


def test_v1_instance_refuses_v2_only_content_types() -> None:
    from seccollect.config.loader import InstanceFileInvalid, parse_instance

    with pytest.raises(InstanceFileInvalid, match="page"):
        parse_instance(
            {"name": "x", "tenant": "acme", "type": "netskope", "conn_id": "c", "netskope_tenant": "acme",
             "api_version": "v1", "content_types": ["alert", "page"]},
            Path("x.yaml"),
        )


def test_mapping_fails_without_retries_when_staged_fields_are_out_of_step(staging) -> None:
    from airflow.sdk import DAG, ObjectStoragePath
    from airflow.sdk.exceptions import AirflowFailException

    from seccollect.records.envelope import EnvelopeContext, MsgOrigin
    from seccollect.staging.handoff import StagedWindow
    from seccollect.staging.store import StagingWriter
    from seccollect.vendors.netskope.alert_mapping import alert_fields
    from seccollect.vendors.netskope.operators import NetskopeAlertMappingOperator

    start, end = NETSKOPE_START, NETSKOPE_START + timedelta(minutes=5)
    envelope = EnvelopeContext("acme", "unit", "alert", start, end, start)
    origin = MsgOrigin("netskopewsg_alert", "netskope", "netskope", "web_security")
    staged = []
    for _id in ("a1", "a2"):  # one Syslog part (and its fields) per raw alert
        writer = StagingWriter(ObjectStoragePath(f"file://{staging}/{_id}"))
        writer.derive("syslog", "alert_fields", alert_fields)
        raw = {"_id": _id, "type": "breach", "breach_id": "b-1", "user": "ana@example.org"}
        writer.add("syslog", envelope.wrap(origin, raw, vendor_id=_id, event_time=start))
        staged.append({b.table: b for b in writer.close()})
    # Each Syslog part paired with the other part's fields: the same row counts, other records.
    batches = (staged[0]["syslog"], staged[1]["alert_fields"], staged[1]["syslog"], staged[0]["alert_fields"])
    collected = StagedWindow("alert", "windowed", start, end, batches)
    with DAG("acme-netskope-unit", schedule=None):
        operator = NetskopeAlertMappingOperator(task_id="map_alerts", staged=collected)
    with pytest.raises(AirflowFailException, match="out of step"):
        operator.execute(context={})
