"""AWS completeness end to end, through real Airflow (``dag.test()``) against moto in server mode, on
DuckDB and PostgreSQL: late objects are loaded by the window that finds them, a prefix that cannot
match the bucket is refused and warned about, one instance covers several regions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.dag_runner import run_window, task_states, write_instance, xcom_value

pytestmark = pytest.mark.airflow_e2e

T0 = datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
MIDNIGHT = datetime(2025, 1, 1, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 0, 30, tzinfo=UTC)


@pytest.fixture
def instances(tmp_path, monkeypatch, airflow_db, aws_conn):
    """Write an instance file (CONNECTORS_DIR is the test's own); returns ``(name, **settings) -> dag_id``."""
    monkeypatch.setenv("CONNECTORS_DIR", str(tmp_path))

    def make(name: str, **settings) -> str:
        return write_instance(
            tmp_path,
            {"name": name, "tenant": "acme", "type": "aws_cloudtrail", "conn_id": aws_conn, **settings},
        )

    return make


def _run(dag_id: str, start: datetime, end: datetime):
    run = run_window(dag_id, start, end)
    assert str(run.state) == "success", task_states(run)
    return run


def _loaded(wh, dag_id: str, table: str = "aws_events") -> dict[str, datetime]:
    instance = dag_id.split("-", 2)[2]
    rows = wh.query(f"SELECT vendor_id, event_time FROM {table} WHERE instance = ?", (instance,))
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a record was loaded twice"
    return {vid: t.astimezone(UTC) for vid, t in rows}


def _put(s3, objects) -> None:
    for bucket in sorted({o.bucket for o in objects}):
        if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=bucket)
    for o in objects:
        s3.put_object(Bucket=o.bucket, Key=o.key, Body=o.body)


# --- late objects -------------------------------------------------------------------------------


def test_late_objects_older_than_the_lookback_are_loaded_by_the_next_window(
    instances, s3, scenario, warehouse_conn, open_test_warehouse
):
    """Three 20-minute windows, a 5-minute look-back (the DAG docs warn). Two objects are delivered
    only after the first two windows ran: one keyed in the first window (two windows before the one
    that finds it), one in the second, both before the third window's look-back. The third window
    reads both, as late; the warehouse then equals the truth, with no duplicate."""
    name = "ct-us-east-1"
    stream = scenario.stream(name)
    w0, w1, w2 = (T0, T0 + timedelta(minutes=20)), (T0 + timedelta(minutes=20), MIDNIGHT + timedelta(minutes=10)), (
        MIDNIGHT + timedelta(minutes=10), T1)
    logs = sorted((o for o in scenario.stream_objects(name) if o.kind == "log"), key=lambda o: o.key_time)
    early = next(o for o in logs if w0[0] <= o.key_time < w0[1] - timedelta(minutes=10))
    later = next(o for o in logs if w1[0] <= o.key_time < w2[0] - timedelta(minutes=5))
    withheld = {early.key, later.key}
    assert early.records and later.records
    dag_id = instances(
        "late", sub_type="cloudtrail", bucket=stream.bucket, prefix=stream.prefix, interval_minutes=20,
        lookback_minutes=5,
    )
    from seccollect.config.loader import load_for_dag_id
    from seccollect.dag_factory.builder import build_dag

    assert "Warning: the look-back (5 min) is shorter" in build_dag(load_for_dag_id(dag_id)).doc_md

    _put(s3, [o for o in scenario.objects if o.bucket == stream.bucket and o.key not in withheld])
    _run(dag_id, *w0)
    _run(dag_id, *w1)
    with open_test_warehouse() as wh:
        assert not {r.vendor_id for r in early.records + later.records} & set(_loaded(wh, dag_id))
    _put(s3, [early, later])  # delivered now: after their windows ran, older than the look-back
    run = _run(dag_id, *w2)
    listing = xcom_value(run, "list_cloudtrail", "listing")
    assert listing["late"] == 2, listing

    with open_test_warehouse() as wh:
        assert _loaded(wh, dag_id) == scenario.expected(name, T0, T1)
        ledger = {
            (s.astimezone(UTC), e.astimezone(UTC)): (late, staged, inserted, duplicates, quarantined)
            for s, e, late, staged, inserted, duplicates, quarantined in wh.query(
                "SELECT window_start, window_end, late_items, staged_rows, inserted_rows, duplicate_rows, "
                "quarantined FROM collection_ledger WHERE dag_id = ?",
                (dag_id,),
            )
        }
        assert [ledger[w][0] for w in (w0, w1, w2)] == [0, 0, 2]
        for _late, staged, inserted, duplicates, quarantined in ledger.values():
            assert staged == inserted + duplicates + quarantined
        read_by = {
            key: (s.astimezone(UTC), status)
            for key, s, status in wh.query(
                "SELECT key, window_start, status FROM object_ledger WHERE dag_id = ?", (dag_id,)
            )
        }
        assert read_by[early.key] == read_by[later.key] == (w2[0], "loaded")
        # (the coverage view shows a window with late items as 'late': tested with the view itself)

    # Re-running the late window adds nothing (the object ledger holds both objects now).
    _run(dag_id, *w2)
    with open_test_warehouse() as wh:
        assert _loaded(wh, dag_id) == scenario.expected(name, T0, T1)
        assert wh.query("SELECT late_items FROM collection_ledger WHERE dag_id = ? AND window_start = ?",
                        (dag_id, w2[0]))[0][0] == 2


# --- Control Tower and organisation prefixes ------------------------------------------------------


def test_a_wrong_control_tower_prefix_is_refused_and_warned_about(
    instances, s3, scenario, warehouse_conn, open_test_warehouse, capfd
):
    """The older organisation form on a Control Tower bucket with the organisation trail layout: the
    instance test refuses it, naming what the bucket holds and the prefix that matches; a run warns
    in its task log and takes neither the organisation folder nor AWS Config's folders for accounts."""
    from seccollect.config.loader import load_for_dag_id
    from seccollect.vendors.aws.check import check_instance, main
    from seccollect_dev.simulators.aws_bucket import CT_BUCKET, ORG_ID
    from tests.e2e.dag_runner import log_output

    scenario.upload(s3, buckets=[CT_BUCKET])
    wrong = instances("ct-wrong", sub_type="cloudtrail", bucket=CT_BUCKET,
                      prefix=f"{ORG_ID}/AWSLogs/*/CloudTrail/us-east-1", interval_minutes=30)
    right_prefix = f"{ORG_ID}/AWSLogs/{ORG_ID}/*/CloudTrail/us-east-1"
    right = instances("ct-right", sub_type="cloudtrail", bucket=CT_BUCKET, prefix=right_prefix, interval_minutes=30)

    ok, message = check_instance(load_for_dag_id(wrong))
    assert not ok
    assert f"s3://{CT_BUCKET}/{ORG_ID}/AWSLogs/{ORG_ID}/ is an organisation id, never an account" in message
    assert "found: Config/" in message and message.endswith(f"use the prefix {right_prefix!r}")
    assert check_instance(load_for_dag_id(right)) == (True, f"s3://{CT_BUCKET}/{right_prefix} matches the bucket's layout")
    capfd.readouterr()
    assert main([wrong, right]) == 1
    printed = capfd.readouterr().out
    assert f"REFUSED {wrong}: " in printed and f"OK      {right}: " in printed

    with log_output() as logged:
        run = _run(wrong, T0, MIDNIGHT)
    output = logged.getvalue() + "".join(capfd.readouterr())
    assert "The prefix cannot match the bucket, so this window reads nothing" in output
    assert f"use the prefix {right_prefix!r}" in output
    listing = xcom_value(run, "list_cloudtrail", "listing")
    assert listing["layout_problems"] and listing["to_read"] == 0
    assert listing["skipped"]["organisation folder where accounts were expected"] == 1
    assert not any(f"/{ORG_ID}/CloudTrail/" in p for p in listing["prefixes"]), "an org id taken for an account"
    with open_test_warehouse() as wh:
        assert _loaded(wh, wrong) == {}


@pytest.mark.parametrize("regions", ["*", "us-east-1,eu-west-1"])
def test_one_instance_covers_several_regions(regions, instances, s3, scenario, warehouse_conn, open_test_warehouse):
    """A Control Tower instance with every account and two regions (a '*' or a list in the region
    position) loads exactly what the two one-region instances would, once, with both regions'
    corrupt object quarantined; a re-run adds nothing."""
    from seccollect_dev.simulators.aws_bucket import CT_BUCKET, ORG_ID

    scenario.upload(s3, buckets=[CT_BUCKET])
    dag_id = instances("ct-all", sub_type="cloudtrail", bucket=CT_BUCKET,
                       prefix=f"{ORG_ID}/AWSLogs/{ORG_ID}/*/CloudTrail/{regions}", interval_minutes=30,
                       lookback_minutes=60, batch_size=20)
    run = _run(dag_id, T0, MIDNIGHT)
    assert not xcom_value(run, "list_cloudtrail", "listing")["layout_problems"]
    _run(dag_id, MIDNIGHT, T1)

    streams = ("ct-us-east-1", "ct-eu-west-1")
    expected = {k: v for name in streams for k, v in scenario.expected(name, T0, T1).items()}
    with open_test_warehouse() as wh:
        loaded = _loaded(wh, dag_id)
        assert loaded == expected
        regions_loaded = {r[0] for r in wh.query("SELECT DISTINCT aws_region FROM aws_events WHERE instance = 'ct-all'")}
        assert regions_loaded == {"us-east-1", "eu-west-1"}
        quarantined = {r[0] for r in wh.query("SELECT source_ref FROM quarantine WHERE dag_id = ?", (dag_id,))}
        assert quarantined == set().union(*(scenario.quarantine_keys(name) for name in streams)) != set()
        objects = wh.query("SELECT count(*) FROM object_ledger WHERE dag_id = ?", (dag_id,))[0][0]
    _run(dag_id, MIDNIGHT, T1)
    with open_test_warehouse() as wh:
        assert _loaded(wh, dag_id) == expected
        assert wh.query("SELECT count(*) FROM object_ledger WHERE dag_id = ?", (dag_id,))[0][0] == objects


# --- bad objects (#11) ---------------------------------------------------------------------------

BAD_BUCKET = "bad-objects-111122223333"
ACCOUNT = "111122223333"
BAD_PREFIX = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1"


def _ct_key(minute: int, tag: str) -> str:
    when = MIDNIGHT + timedelta(minutes=minute)
    return f"{BAD_PREFIX}/{when:%Y/%m/%d}/{ACCOUNT}_CloudTrail_us-east-1_{when:%Y%m%dT%H%M}Z_{tag:x<16}.json.gz"


def _event(event_id: str, minute: int, name: str = "DescribeInstances") -> str:
    when = MIDNIGHT + timedelta(minutes=minute)
    return (f'{{"eventVersion":"1.09","eventID":"{event_id}","eventTime":"{when:%Y-%m-%dT%H:%M:%SZ}",'
            f'"eventSource":"ec2.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1",'
            f'"recipientAccountId":"{ACCOUNT}"}}')


def _bad_objects() -> tuple[dict[str, bytes], dict[str, str], dict[str, datetime]]:
    """``(key -> body, bad key -> what is wrong with it, good event id -> event time)``."""
    import gzip
    import random

    rng = random.Random(12)  # incompressible ids make the large object large once gzipped

    def doc(*events: str) -> bytes:
        return gzip.compress(('{"Records":[' + ",".join(events) + "]}").encode(), mtime=0)

    bodies: dict[str, bytes] = {}
    bad: dict[str, str] = {}
    good: dict[str, datetime] = {}
    for minute in (2, 12, 22):
        ids = [f"good-{minute}-{i}" for i in range(3)]
        bodies[_ct_key(minute, f"good{minute}")] = doc(*(_event(i, minute - 1) for i in ids))
        good.update(dict.fromkeys(ids, MIDNIGHT + timedelta(minutes=minute - 1)))
    # a NUL character in a field: stored the same (escaped) on both warehouses, not quarantined
    bodies[_ct_key(24, "nul")] = doc(_event("nul-1", 23, name="Describe\\u0000Instances"))
    good["nul-1"] = MIDNIGHT + timedelta(minutes=23)
    cases = {
        "surrogate": (5, doc(_event("bad-s", 4, name="\\ud800"))),
        "notutf8": (7, gzip.compress(_event("bad-u", 6).replace("DescribeInstances", "Describe\xff").encode("latin-1")
                                     .join((b'{"Records":[', b"]}")), mtime=0)),
        "truncated": (9, doc(_event("bad-t", 8))[:-12]),
        "recordsobj": (14, gzip.compress(b'{"Records":{"eventID":"bad-w"}}', mtime=0)),
        "toplist": (16, gzip.compress(b'[{"eventID":"bad-l"}]', mtime=0)),
        "recordtypes": (18, doc('"a string"', "1")),
        # large: only the hash and size of its bytes are kept
        "large": (20, doc(*(_event(f"bad-big-{rng.getrandbits(128):032x}", 19) for i in range(5000)),
                          _event("bad-big-s", 19, "\\udfff"))),
    }
    for tag, (minute, body) in cases.items():
        key = _ct_key(minute, tag)
        bodies[key] = body
        bad[key] = tag
    return bodies, bad, good


def test_bad_objects_are_quarantined_and_the_rest_of_the_window_loads(
    instances, s3, warehouse_conn, open_test_warehouse
):
    """A lone surrogate, bytes that are not UTF-8, a truncated gzip and JSON of the wrong shape: each
    such object is quarantined with its reason, hash and size (its bytes too when small), the rest of
    the window equals the truth, and later windows whose look-back lists them again do not fail."""
    import hashlib

    from seccollect.records.quarantine import MAX_RAW_BYTES

    bodies, bad, good = _bad_objects()
    s3.create_bucket(Bucket=BAD_BUCKET)
    for key, body in bodies.items():
        s3.put_object(Bucket=BAD_BUCKET, Key=key, Body=body)
    assert len(bodies[next(k for k, tag in bad.items() if tag == "large")]) > MAX_RAW_BYTES
    dag_id = instances("bad", sub_type="cloudtrail", bucket=BAD_BUCKET, prefix=BAD_PREFIX, interval_minutes=30,
                       lookback_minutes=60, batch_size=4)
    _run(dag_id, MIDNIGHT, T1)
    with open_test_warehouse() as wh:
        assert _loaded(wh, dag_id) == good
        [name] = wh.query("SELECT event_name FROM aws_events WHERE vendor_id = 'nul-1'")[0]
        assert name == "Describe\\u0000Instances"
        rows = {r[0]: r[1:] for r in wh.query(
            "SELECT source_ref, reason, raw, raw_sha256, raw_bytes FROM quarantine WHERE dag_id = ?", (dag_id,)
        )}
        assert set(rows) == set(bad)
        for key, (reason, raw, sha, size) in rows.items():
            body = bodies[key]
            assert reason and (sha, size) == (hashlib.sha256(body).hexdigest(), len(body)), key
            assert (raw is None) == (len(body) > MAX_RAW_BYTES), key
        reasons = {bad[k]: r[0] for k, r in rows.items()}
        assert "lone surrogate (\\ud800)" in reasons["surrogate"], reasons
        assert "lone surrogate (\\udfff)" in reasons["large"], reasons
        assert "not UTF-8 text" in reasons["notutf8"], reasons
        assert "truncated gzip data" in reasons["truncated"], reasons
        assert "'Records' is a dict, not a list of records" in reasons["recordsobj"], reasons
        assert "not a CloudTrail log record" in reasons["toplist"], reasons  # a bare array of non-records
        assert "record 1 is a str, not a JSON object" in reasons["recordtypes"], reasons
        ledger = dict(wh.query("SELECT key, status FROM object_ledger WHERE dag_id = ?", (dag_id,)))
        assert ledger == {k: ("quarantined" if k in bad else "loaded") for k in bodies}
        quarantined = wh.query("SELECT quarantined, staged_rows, inserted_rows, duplicate_rows FROM "
                               "collection_ledger WHERE dag_id = ?", (dag_id,))[0]
        assert quarantined[0] == len(bad)

    # The next window's look-back lists every one of them again: it succeeds, reads none of them.
    run = _run(dag_id, T1, T1 + timedelta(minutes=30))
    listing = xcom_value(run, "list_cloudtrail", "listing")
    assert listing["already_consumed"] == len(bodies) and listing["to_read"] == 0
    with open_test_warehouse() as wh:
        assert _loaded(wh, dag_id) == good
        assert wh.query("SELECT count(*) FROM quarantine WHERE dag_id = ?", (dag_id,))[0][0] == len(bad)
