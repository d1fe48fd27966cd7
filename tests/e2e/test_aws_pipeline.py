"""End to end through real Airflow: moto S3 (simulator buckets) -> wait -> list -> mapped collect -> load.

The buckets are the AWS simulator's scenario (2024-12-31 23:30 .. 2025-01-01 00:30, so windows cross a
day, month and year boundary), uploaded in steps as AWS would deliver them.  The warehouse must equal
the scenario's ground truth exactly - vendor ids and event times - and re-runs and overlapping
backfills must add nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.dag_runner import run_window, task_states, write_instance

pytestmark = pytest.mark.airflow_e2e

T0 = datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
MIDNIGHT = datetime(2025, 1, 1, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 0, 30, tzinfo=UTC)


@pytest.fixture
def aws_dag(tmp_path, monkeypatch, airflow_db, aws_conn, scenario):
    """Write an instance file reading one simulator stream; returns a factory ``(stream, **extra) -> dag_id``."""
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))

    def make(stream_name: str, name: str, **extra) -> str:
        stream = scenario.stream(stream_name)
        return write_instance(
            tmp_path,
            {
                "name": name,
                "tenant": "acme",
                "type": "aws_cloudtrail",
                "conn_id": aws_conn,
                "sub_type": stream.sub_type,
                "bucket": stream.bucket,
                "prefix": stream.prefix,
                "file_type": stream.file_type,
                "interval_minutes": 30,
                "lookback_minutes": 60,
                "batch_size": 10,
                **extra,
            },
        )

    return make


def _run(dag_id: str, start: datetime, end: datetime) -> int:
    """Run one window; return how many mapped collect tasks it had."""
    run = run_window(dag_id, start, end)
    assert str(run.state) == "success", task_states(run)
    return sum(1 for ti in run.get_task_instances() if ti.task_id.startswith("collect_"))


def _loaded(wh, table: str, dag_id: str) -> dict[str, datetime]:
    instance = dag_id.split("-", 2)[2]
    rows = wh.query(f"SELECT vendor_id, event_time FROM {table} WHERE instance = ?", (instance,))
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a record was loaded twice"
    return {vid: t.astimezone(UTC) for vid, t in rows}


def _counts(wh, dag_id: str) -> tuple[int, ...]:
    return (
        wh.query("SELECT count(*) FROM aws_events")[0][0],
        wh.query("SELECT count(*) FROM traffic")[0][0],
        wh.query("SELECT count(*) FROM object_ledger WHERE dag_id = ?", (dag_id,))[0][0],
        wh.query("SELECT count(*) FROM quarantine WHERE dag_id = ?", (dag_id,))[0][0],
    )


def _ledger(wh, dag_id: str) -> dict[tuple[datetime, datetime], int]:
    rows = wh.query(
        "SELECT window_start, window_end, inserted_rows FROM collection_ledger WHERE dag_id = ?", (dag_id,)
    )
    return {(s.astimezone(UTC), e.astimezone(UTC)): n for s, e, n in rows}


def _assert_reruns_add_nothing(dag_id: str, open_test_warehouse, windows) -> None:
    with open_test_warehouse() as wh:
        before, ledger_before = _counts(wh, dag_id), _ledger(wh, dag_id)
    for start, end in windows:
        _run(dag_id, start, end)
    with open_test_warehouse() as wh:
        assert _counts(wh, dag_id) == before
        ledger_after = _ledger(wh, dag_id)
    for window in windows:
        assert ledger_after[window] == ledger_before.get(window, 0), window


@pytest.mark.parametrize("stream", ["ct-eu-west-1", "ct-us-east-1"])
def test_cloudtrail_control_tower_bucket(stream, aws_dag, s3, scenario, warehouse_conn, open_test_warehouse):
    """Several accounts (Control Tower '*'), a day boundary, digests/Insights/Config objects beside the
    logs, a retried old event, a duplicate eventID, an empty and (eu-west-1) a corrupt object."""
    dag_id = aws_dag(stream, f"ct-{stream[3:]}")
    # As delivered by the end of the first window's sensor wait, then everything.
    scenario.upload(s3, until=MIDNIGHT + timedelta(minutes=5), buckets=[scenario.stream(stream).bucket])
    assert _run(dag_id, T0, MIDNIGHT) >= 2, "batch_size 10 must map several collect tasks"
    scenario.upload(s3, buckets=[scenario.stream(stream).bucket])
    _run(dag_id, MIDNIGHT, T1)

    expected = scenario.expected(stream, T0, T1)
    assert len(expected) > 50
    with open_test_warehouse() as wh:
        assert _loaded(wh, "aws_events", dag_id) == expected
        quarantined = {
            r[0] for r in wh.query("SELECT source_ref FROM quarantine WHERE dag_id = ?", (dag_id,))
        }
        assert quarantined == scenario.quarantine_keys(stream)
        ledger = {
            k: s for k, s in wh.query("SELECT key, status FROM object_ledger WHERE dag_id = ?", (dag_id,))
        }
        good = {o.key for o in scenario.stream_objects(stream) if o.kind == "log"}
        assert ledger == {**{k: "loaded" for k in good}, **{k: "quarantined" for k in quarantined}}
        row = wh.query(
            "SELECT msg_class, msg_origin_source, msg_origin_vendor, msg_origin_category, account_id, aws_region, "
            "event_name, s3_key FROM aws_events WHERE instance = ? LIMIT 1",
            (dag_id.split("-", 2)[2],),
        )[0]
        assert row[:4] == ("cloudtrail", "cloudtrail", "aws", "paas")
        assert row[4] and row[5] == stream[3:] and row[6] and row[7] in good
    if stream == "ct-eu-west-1":
        assert quarantined, "the eu-west-1 stream holds the corrupt object"
    else:
        # The retried file carries an event from hours before the scenario: stamped with its own time.
        assert min(expected.values()) < T0 - timedelta(hours=2)

    # A re-run of a window and an overlapping backfill window add nothing.
    _assert_reruns_add_nothing(
        dag_id, open_test_warehouse, [(MIDNIGHT, T1), (T0 + timedelta(minutes=15), T1)]
    )


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_vpcflow_late_file_in_an_earlier_date_folder(
    aws_dag, s3, scenario, warehouse_conn, open_test_warehouse
):
    """The 23:55 flow log lands 45 minutes late in the 2024/12/31 folder: the next run finds it."""
    stream = "vpc-default"
    dag_id = aws_dag(stream, "vpc")
    bucket = scenario.stream(stream).bucket
    late = [
        o for o in scenario.stream_objects(stream) if o.key_time == datetime(2024, 12, 31, 23, 55, tzinfo=UTC)
    ]
    assert late and "/2024/12/31/" in late[0].key and late[0].available_at > MIDNIGHT + timedelta(minutes=30)

    scenario.upload(s3, until=MIDNIGHT + timedelta(minutes=15), buckets=[bucket])
    _run(dag_id, T0, MIDNIGHT)
    with open_test_warehouse() as wh:
        first = _loaded(wh, "traffic", dag_id)
    assert not set(first) & {r.vendor_id for r in late[0].records}, "not delivered yet"

    scenario.upload(s3, buckets=[bucket])
    _run(dag_id, MIDNIGHT, T1)
    with open_test_warehouse() as wh:
        assert _loaded(wh, "traffic", dag_id) == scenario.expected(stream, T0, T1)
        statuses = {r[0] for r in wh.query("SELECT log_status FROM traffic")}
        assert {"OK"} < statuses, "NODATA/SKIPDATA rows are kept"
        row = wh.query(
            "SELECT msg_class, msg_origin_category, account_id, interface_id, s3_key FROM traffic "
            "WHERE log_status = 'OK' LIMIT 1"
        )[0]
        assert row[:2] == ("vpcflow", "paas") and row[2] == "111122223333" and row[3].startswith("eni-")
    _assert_reruns_add_nothing(dag_id, open_test_warehouse, [(MIDNIGHT, T1)])


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_waf_logs(aws_dag, s3, scenario, warehouse_conn, open_test_warehouse):
    stream = "waf-std"
    dag_id = aws_dag(stream, "waf", interval_minutes=60, lookback_minutes=15)
    scenario.upload(s3, buckets=[scenario.stream(stream).bucket])
    _run(dag_id, T0, T1)
    with open_test_warehouse() as wh:
        loaded = _loaded(wh, "aws_events", dag_id)
        assert loaded == scenario.expected(stream, T0, T1)
        assert any(t.microsecond for t in loaded.values()), "millisecond timestamps are kept"
        row = wh.query("SELECT msg_class, msg_origin_category, action, source_ip FROM aws_events LIMIT 1")[0]
        assert row[:2] == ("aws_waf", "waf") and row[2] in ("ALLOW", "BLOCK") and row[3]
    _assert_reruns_add_nothing(dag_id, open_test_warehouse, [(T0 + timedelta(minutes=20), T1)])
