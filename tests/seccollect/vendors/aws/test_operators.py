"""S3LogListOperator and S3LogBatchOperator against moto and a DuckDB warehouse (no scheduler)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from seccollect.vendors.aws.operators import (
    _TYPED,
    S3LogBatchOperator,
    S3LogListOperator,
    split_batches,
)
from seccollect_dev.simulators.aws_bucket import (
    ACCOUNTS,
    CORRUPT,
    CT_BUCKET,
    LOG,
    ORG_ID,
    VPC_BUCKET,
    WAF_BUCKET,
)

DAG_ID = "acme-aws_cloudtrail-unit"
MIDNIGHT = datetime(2025, 1, 1, tzinfo=UTC)


class FakeTI:
    """The two things the operators use of a task instance."""

    def __init__(self, map_index: int = -1) -> None:
        self.map_index = map_index
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _in_dag(factory):
    from airflow.sdk import DAG

    with DAG(DAG_ID, schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC)):
        return factory()


def list_op(conn: str, stream, start: datetime, end: datetime, **kwargs) -> S3LogListOperator:
    return _in_dag(
        lambda: S3LogListOperator(
            task_id=f"list_{stream.sub_type}",
            aws_conn_id=conn,
            bucket=stream.bucket,
            prefix=stream.prefix,
            sub_type=stream.sub_type,
            window_start=start.isoformat(),
            window_end=end.isoformat(),
            **kwargs,
        )
    )


def run_list(op: S3LogListOperator) -> tuple[list[list[dict[str, Any]]], dict[str, Any]]:
    ti = FakeTI()
    batches = op.execute({"ti": ti})
    return batches, ti.pushed["listing"]


def keys_in(scenario, stream: str, lo: datetime, hi: datetime, kinds=(LOG, CORRUPT)) -> list[str]:
    return [
        o.key
        for o in sorted(scenario.stream_objects(stream), key=lambda o: (o.key_time, o.key))
        if o.kind in kinds and o.key_time and lo <= o.key_time < hi
    ]


# --- listing ------------------------------------------------------------------------------------


def test_list_exact_prefixes_and_keys_of_a_control_tower_window(aws_conn, s3, scenario, duckdb_warehouse):
    scenario.upload(s3, buckets=[CT_BUCKET])
    stream = scenario.stream("ct-us-east-1")
    op = list_op(aws_conn, stream, MIDNIGHT, MIDNIGHT + timedelta(minutes=5), lookback_minutes=10)
    batches, listing = run_list(op)

    base = f"{ORG_ID}/AWSLogs/{ORG_ID}"
    assert listing["prefixes"] == [
        f"{base}/{account}/CloudTrail/us-east-1/{day}/"
        for account in ACCOUNTS
        for day in ("2024/12/31", "2025/01/01")
    ]
    assert listing["list_requests"] == 1 + 6  # account discovery + accounts x day folders
    expected = keys_in(
        scenario, "ct-us-east-1", MIDNIGHT - timedelta(minutes=10), MIDNIGHT + timedelta(minutes=5)
    )
    assert [o["key"] for batch in batches for o in batch] == expected
    assert all(o["etag"] and o["size"] > 0 for batch in batches for o in batch)
    # The empty log-named object and the console folder marker are listed but not read.
    assert listing["skipped"]["empty object"] == 1
    assert listing["skipped"]["not a log file"] == 1
    assert listing["skipped"]["key time outside the window"] > 0


def test_list_cost_does_not_grow_with_bucket_history(aws_conn, s3, scenario, duckdb_warehouse):
    scenario.upload(s3, buckets=[CT_BUCKET])
    stream = scenario.stream("ct-us-east-1")
    window = (MIDNIGHT, MIDNIGHT + timedelta(minutes=5))
    _, before = run_list(list_op(aws_conn, stream, *window, lookback_minutes=10))
    # A month of older logs (and other regions' folders) in the same bucket.
    for days in range(2, 32):
        day = MIDNIGHT - timedelta(days=days)
        for account in ACCOUNTS:
            key = (
                f"{ORG_ID}/AWSLogs/{ORG_ID}/{account}/CloudTrail/us-east-1/{day:%Y/%m/%d}/"
                f"{account}_CloudTrail_us-east-1_{day:%Y%m%dT%H%MZ}_OldOldOldOldOld0.json.gz"
            )
            s3.put_object(Bucket=CT_BUCKET, Key=key, Body=b"{}")
    _, after = run_list(list_op(aws_conn, stream, *window, lookback_minutes=10))
    assert after["list_requests"] == before["list_requests"] == 7
    assert after["candidates"] == before["candidates"]


def test_list_skips_objects_in_the_ledger_unless_rewritten(aws_conn, s3, scenario, duckdb_warehouse):
    from seccollect.staging.store import StagingWriter, window_folder
    from seccollect.warehouse import open_warehouse
    from seccollect.warehouse.base import WindowKey

    scenario.upload(s3, buckets=[VPC_BUCKET])
    stream = scenario.stream("vpc-default")
    window = (MIDNIGHT, MIDNIGHT + timedelta(minutes=30))
    first, listing = run_list(list_op(aws_conn, stream, *window, lookback_minutes=0, batch_size=100))
    objects = first[0]
    assert listing["to_read"] == len(objects) >= 4 and listing["already_consumed"] == 0

    done, rewritten = objects[:2], objects[2]
    with open_warehouse("seccollect_warehouse") as wh:
        wh.ensure_schema()
        writer = StagingWriter(window_folder(DAG_ID, *window, "collect_vpcflow"))
        for key, etag in [*((o["key"], o["etag"]) for o in done), (rewritten["key"], "an-older-etag")]:
            writer.add("object_ledger", {"dag_id": DAG_ID, "bucket": stream.bucket, "key": key, "etag": etag,
                                         "records": 1, "status": "loaded", "window_start": window[0],
                                         "window_end": window[1], "loaded_at": window[1]})
        wh.load_window(WindowKey(DAG_ID, "vpcflow", *window), writer.close())
    second, listing = run_list(list_op(aws_conn, stream, *window, lookback_minutes=0, batch_size=100))
    assert [o["key"] for o in second[0]] == [o["key"] for o in objects[2:]]
    assert listing["already_consumed"] == 2


def test_older_objects_are_read_as_late_only_when_their_own_window_was_loaded(
    aws_conn, s3, scenario, duckdb_warehouse
):
    """A window lists the previous window's date folders too. An unread object keyed before its
    look-back is read (as late) when its own window is in the collection ledger - it ran without it -
    and left to its own window otherwise (running at the same time, or never run: not this one's)."""
    from seccollect.staging.store import StagingWriter, window_folder
    from seccollect.warehouse import open_warehouse
    from seccollect.warehouse.base import WindowKey

    scenario.upload(s3, buckets=[CT_BUCKET])
    stream = scenario.stream("ct-us-east-1")
    window = (MIDNIGHT + timedelta(minutes=10), MIDNIGHT + timedelta(minutes=30))
    earlier = (MIDNIGHT - timedelta(minutes=30), MIDNIGHT)
    lookback = 5
    in_lookback = keys_in(scenario, "ct-us-east-1", window[0] - timedelta(minutes=lookback), window[1], kinds=(LOG,))
    older = keys_in(scenario, "ct-us-east-1", *earlier, kinds=(LOG,))
    assert older and in_lookback

    def listed() -> tuple[list[str], dict[str, Any]]:
        batches, listing = run_list(list_op(aws_conn, stream, *window, lookback_minutes=lookback, batch_size=1000))
        return [o["key"] for b in batches for o in b], listing

    keys, listing = listed()
    assert keys == in_lookback and listing["late"] == sum(
        1 for k in in_lookback if k in keys_in(scenario, "ct-us-east-1", window[0] - timedelta(minutes=lookback), window[0])
    )
    assert listing["skipped"]["key time before the look-back, left to its own window (not collected yet)"] >= len(older)

    with open_warehouse("seccollect_warehouse") as wh:  # the earlier window ran (and read nothing)
        wh.ensure_schema()
        wh.load_window(WindowKey(DAG_ID, "cloudtrail", *earlier),
                       StagingWriter(window_folder(DAG_ID, *earlier, "collect_cloudtrail")).close())
    keys, listing = listed()
    assert set(keys) == set(in_lookback) | set(older)
    late = [o for o in keys if o in older]
    assert late == older and listing["late"] >= len(older)


def test_list_batches_and_an_empty_window(aws_conn, s3, scenario, duckdb_warehouse):
    scenario.upload(s3, buckets=[WAF_BUCKET])
    stream = scenario.stream("waf-std")
    batches, listing = run_list(
        list_op(
            aws_conn,
            stream,
            MIDNIGHT - timedelta(minutes=30),
            MIDNIGHT + timedelta(minutes=30),
            batch_size=4,
            lookback_minutes=0,
        )
    )
    keys = keys_in(scenario, "waf-std", MIDNIGHT - timedelta(minutes=30), MIDNIGHT + timedelta(minutes=30))
    assert [len(b) for b in batches] == [4, 4, 4, 1] and len(keys) == 13
    assert [o["key"] for b in batches for o in b] == keys  # in key-time order
    assert listing["batches"] == 4

    later = MIDNIGHT + timedelta(hours=3)
    empty, listing = run_list(
        list_op(aws_conn, stream, later, later + timedelta(minutes=5), lookback_minutes=0)
    )
    assert empty == [[]] and listing["batches"] == 0  # one empty mapped task: the window still loads


def test_split_batches():
    assert split_batches([], 5) == [[]]
    assert split_batches(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    # More batches than Airflow may map: the batch size grows instead of the run failing.
    grown = split_batches(list(range(10)), 2, max_batches=3)
    assert len(grown) == 3 and sum(grown, []) == list(range(10))
    with pytest.raises(ValueError):
        split_batches([1], 0)


# --- processing ---------------------------------------------------------------------------------


def batch_op(conn: str, stream, objects: list[dict[str, Any]], **kwargs) -> S3LogBatchOperator:
    return _in_dag(
        lambda: S3LogBatchOperator(
            task_id=f"collect_{stream.sub_type}",
            aws_conn_id=conn,
            bucket=stream.bucket,
            sub_type=stream.sub_type,
            objects=objects,
            tenant="acme",
            instance_name="unit",
            window_start=MIDNIGHT.isoformat(),
            window_end=(MIDNIGHT + timedelta(minutes=30)).isoformat(),
            **kwargs,
        )
    )


def staged_rows(result: dict[str, Any], table: str) -> list[dict[str, Any]]:
    from seccollect.staging.store import StagedBatch, read_batch

    batches = [StagedBatch.from_xcom(b) for b in result["batches"]]
    return [row for b in batches if b.table == table for row in read_batch(b).to_pylist()]


def outcome(staged: Any) -> dict[str, Any]:
    """A batch task's staged window as a dict: its parts, figures, and the quarantine entries and
    object-ledger rows it staged beside the records."""
    result: dict[str, Any] = {"batches": [b.to_xcom() for b in staged.batches], **staged.figures}
    result["quarantine"] = staged_rows(result, "quarantine_entries")
    result["consumed"] = staged_rows(result, "object_ledger")
    return result


def listed(s3, bucket: str, keys: list[str]) -> list[dict[str, Any]]:
    from seccollect.vendors.aws.hook import normalize_etag

    return [
        {"key": k, "etag": normalize_etag(s3.head_object(Bucket=bucket, Key=k)["ETag"]), "size": 1}
        for k in keys
    ]


@pytest.mark.parametrize("max_buffered_records", [100_000, 1])
def test_corrupt_object_is_quarantined_while_the_rest_loads(
    max_buffered_records, aws_conn, s3, scenario, tmp_path
):
    scenario.upload(s3, buckets=[CT_BUCKET])
    stream = scenario.stream("ct-eu-west-1")
    objs = [o for o in sorted(scenario.stream_objects(stream.name), key=lambda o: o.key_time)]
    corrupt = next(o for o in objs if o.kind == CORRUPT)
    good = [o for o in objs if o.kind == LOG][:3]
    keys = [good[0].key, corrupt.key, good[1].key, good[2].key]
    op = batch_op(aws_conn, stream, listed(s3, CT_BUCKET, keys), max_buffered_records=max_buffered_records)

    result = outcome(op.execute({"ti": FakeTI(map_index=3)}))

    assert [q["source_ref"] for q in result["quarantine"]] == [corrupt.key]
    assert "corrupt object" in result["quarantine"][0]["reason"]
    assert {c["key"]: (c["status"], c["records"]) for c in result["consumed"]} == {
        **{o.key: ("loaded", len(o.records)) for o in good},
        corrupt.key: ("quarantined", 0),
    }
    assert all(c["etag"] for c in result["consumed"])
    rows = staged_rows(result, "aws_events")
    assert {r["vendor_id"]: r["event_time"] for r in rows} == {
        rec.vendor_id: rec.event_time for o in good for rec in o.records
    }
    assert result["records"] == len(rows) == sum(len(o.records) for o in good)
    assert all("/collect_cloudtrail/3/" in b["path"] for b in result["batches"])  # own folder per map index
    # one GET per object, however many records it has; one more for the corrupt one (its hash and size)
    assert result["get_requests"] == len(keys) + 1

    row = next(r for r in rows if r["s3_key"] == good[0].key)
    raw = good[0].records[0]
    assert (
        row["msg_class"],
        row["msg_origin_source"],
        row["msg_origin_vendor"],
        row["msg_origin_category"],
    ) == (
        "cloudtrail",
        "cloudtrail",
        "aws",
        "paas",
    )
    assert row["tenant"] == "acme" and row["instance"] == "unit" and row["content_type"] == "cloudtrail"
    assert row["account_id"] in ACCOUNTS and row["aws_region"] == "eu-west-1"
    assert row["event_source"].endswith(".amazonaws.com") and row["event_name"] and row["source_ip"]
    assert row["user_arn"].startswith("arn:aws:") and raw.vendor_id in {r["vendor_id"] for r in rows}


def test_large_objects_stream_into_parts_and_a_corrupt_ones_parts_are_deleted(aws_conn, s3, monkeypatch):
    import gzip
    import json
    from pathlib import Path

    from seccollect.staging.store import StagingWriter

    monkeypatch.setitem(StagingWriter.__init__.__kwdefaults__, "part_rows", 4)
    s3.create_bucket(Bucket="big-objects")
    folder = f"{ORG_ID}/AWSLogs/{ORG_ID}/{ACCOUNTS[0]}/CloudTrail/us-east-1/2025/01/01"
    texts: dict[str, list[str]] = {}
    for name, n in (("a", 11), ("b", 25), ("c", 6)):
        records = [
            {"eventVersion": "1.09", "eventTime": f"2025-01-01T00:0{i % 10}:00Z", "eventID": f"{name}-{i}",
             "recipientAccountId": ACCOUNTS[0], "resources": [{"ARN": "x"}, {"ARN": "y"}], "n": i}
            for i in range(n)
        ]
        texts[name] = [json.dumps(r, separators=(",", ":")) for r in records]
        end = ',{"eventTime":' if name == "b" else "]}"  # b breaks off after all its records
        body = gzip.compress(('{"Records":[' + ",".join(texts[name]) + end).encode())
        s3.put_object(Bucket="big-objects", Key=f"{folder}/{name}.json.gz", Body=body)
    stream = type("S", (), {"bucket": "big-objects", "sub_type": "cloudtrail"})
    objects = listed(s3, "big-objects", [f"{folder}/{name}.json.gz" for name in "abc"])
    result = outcome(batch_op(aws_conn, stream, objects, max_buffered_records=3).execute({"ti": FakeTI(0)}))

    assert [q["source_ref"] for q in result["quarantine"]] == [f"{folder}/b.json.gz"]
    assert result["records"] == 17 and result["get_requests"] == 3 + 1  # + 1: b again, to hash it
    rows = staged_rows(result, "aws_events")
    assert [r["vendor_id"] for r in rows] == [f"a-{i}" for i in range(11)] + [f"c-{i}" for i in range(6)]
    # CloudTrail rows keep the record's exact text from the object
    assert [r["raw"] for r in rows] == texts["a"] + texts["c"]
    # a: two full parts while it is read; before b's first part, a's last 3 rows go out (order kept);
    # b's six full parts are deleted when it turns out truncated; c: one full part, 2 rows at close.
    events = [b for b in result["batches"] if b["table"] == "aws_events"]
    assert [b["rows"] for b in events] == [4, 4, 3, 4, 2]
    paths = [Path(b["path"].removeprefix("file://")) for b in events]
    assert sorted(p.name for p in paths[0].parent.glob("aws_events-*.parquet")) == sorted(p.name for p in paths)
    assert [p.name for p in paths] == [f"aws_events-{i:05d}.parquet" for i in (0, 1, 2, 9, 10)]


def test_vpcflow_custom_columns_and_waf_text_objects(aws_conn, s3, scenario):
    scenario.upload(s3, buckets=[VPC_BUCKET, WAF_BUCKET])
    for name, table in (("vpc-hive", "traffic"), ("waf-custom-text", "aws_events")):
        stream = scenario.stream(name)
        objs = [o for o in scenario.stream_objects(name) if o.kind == LOG][:2]
        result = outcome(batch_op(aws_conn, stream, listed(s3, stream.bucket, [o.key for o in objs])).execute(
            {"ti": FakeTI(0)}
        ))
        rows = staged_rows(result, table)
        assert {r["vendor_id"]: r["event_time"] for r in rows} == {
            rec.vendor_id: rec.event_time for o in objs for rec in o.records
        }
        assert not result["quarantine"]
        if name == "vpc-hive":
            ok = [r for r in rows if r["log_status"] == "OK"]
            assert ok and all(
                isinstance(r["dst_port"], int) and r["src_addr"] and r["interface_id"] for r in ok
            )
            assert {r["msg_class"] for r in rows} == {"vpcflow"} and rows[0]["account_id"] == ACCOUNTS[1]
        else:
            assert {r["msg_class"] for r in rows} == {"aws_waf"} and {
                r["msg_origin_category"] for r in rows
            } == {"waf"}
            assert all(
                r["action"] in ("ALLOW", "BLOCK") and r["source_ip"] and r["account_id"] == ACCOUNTS[0]
                for r in rows
            )
            assert {r["aws_region"] for r in rows} == {"us-east-1"}


def typed_columns(sub_type: str, raw: dict[str, Any]) -> dict[str, Any]:
    names, values = _TYPED[sub_type]
    return dict(zip(names, values(raw), strict=True))


def test_typed_columns_tolerate_missing_fields():
    assert typed_columns("cloudtrail", {"eventTime": "x"})["account_id"] is None
    insight = {"eventTime": "x", "recipientAccountId": "123", "awsRegion": "eu-west-1", "userIdentity": None}
    assert typed_columns("cloudtrail", insight)["account_id"] == "123"
    nodata = {
        "account-id": "1",
        "interface-id": "eni-1",
        "srcaddr": None,
        "srcport": None,
        "log-status": "NODATA",
    }
    cols = typed_columns("vpcflow", nodata)
    assert cols["src_addr"] is None and cols["src_port"] is None and cols["log_status"] == "NODATA"
    assert typed_columns("waf", {"webaclId": "not-an-arn", "httpRequest": "?"})["account_id"] is None


def test_missing_bucket_fails_the_listing_at_once(aws_conn, s3, scenario, duckdb_warehouse):
    from airflow.sdk.exceptions import AirflowFailException

    stream = scenario.stream("waf-std")
    with pytest.raises(AirflowFailException, match="NoSuchBucket"):
        run_list(list_op(aws_conn, stream, MIDNIGHT, MIDNIGHT + timedelta(minutes=5)))


def test_object_deleted_after_listing_is_skipped_not_consumed(aws_conn, s3, scenario):
    scenario.upload(s3, buckets=[WAF_BUCKET])
    stream = scenario.stream("waf-std")
    keys = [o.key for o in scenario.stream_objects("waf-std")][:2]
    objects = listed(s3, WAF_BUCKET, keys)
    s3.delete_object(Bucket=WAF_BUCKET, Key=keys[0])
    result = outcome(batch_op(aws_conn, stream, objects).execute({"ti": FakeTI(0)}))
    assert result["vanished"] == 1 and keys[0] not in {c["key"] for c in result["consumed"]}
    assert [c["key"] for c in result["consumed"]] == [keys[1]]
