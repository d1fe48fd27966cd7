"""The record envelope: deterministic ids that survive re-runs, renames and key order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seccollect.records.envelope import (
    EnvelopeContext,
    MsgOrigin,
    canonical_json,
    content_hash,
    make_record_id,
)
from seccollect.records.indices import INDICES

START = datetime(2026, 3, 1, tzinfo=UTC)
ORIGIN = MsgOrigin("netskopewsg_alert", "netskope", "netskope", "web_security")


def context(
    instance: str = "main", tenant: str = "acme", start: datetime = START, **kwargs
) -> EnvelopeContext:
    defaults = {
        "content_type": "alert",
        "window_start": start,
        "window_end": start + timedelta(minutes=5),
        "ingest_time": datetime(2026, 3, 2, tzinfo=UTC),
    }
    return EnvelopeContext(tenant=tenant, instance=instance, **{**defaults, **kwargs})


def test_record_id_is_deterministic() -> None:
    first = make_record_id("acme", "netskopewsg_alert", "abc123")
    assert first == make_record_id("acme", "netskopewsg_alert", "abc123")
    # Pinned: a changed id scheme would make every re-run after an upgrade load each record again.
    assert first == "5edd5e924bbf4ae81648687e0242f94d"
    assert content_hash({"b": 1, "a": [1, 2]}) == "f587f5091b5841a33f9e6dafdf1f5e45"


@pytest.mark.parametrize(
    "other",
    [
        ("other", "netskopewsg_alert", "abc123"),
        ("acme", "netskopewsg_event", "abc123"),
        ("acme", "netskopewsg_alert", "abc124"),
    ],
)
def test_record_id_depends_on_tenant_class_and_vendor_id(other: tuple[str, str, str]) -> None:
    assert make_record_id(*other) != make_record_id("acme", "netskopewsg_alert", "abc123")


def test_record_id_fields_cannot_run_into_each_other() -> None:
    assert make_record_id("ab", "c", "d") != make_record_id("a", "bc", "d")
    assert make_record_id("a", "b", "cd") != make_record_id("a", "bc", "d")


def test_record_id_independent_of_instance_window_and_ingest_time() -> None:
    raw = {"_id": "abc123", "user": "alice"}
    a = context("main").wrap(ORIGIN, raw, vendor_id="abc123", event_time=START)
    b = context(
        "renamed", start=START + timedelta(hours=1), ingest_time=datetime(2027, 1, 1, tzinfo=UTC)
    ).wrap(ORIGIN, raw, vendor_id="abc123", event_time=START)
    assert a["record_id"] == b["record_id"] == make_record_id("acme", "netskopewsg_alert", "abc123")
    assert (a["instance"], b["instance"]) == ("main", "renamed")
    assert (
        context(tenant="other").wrap(ORIGIN, raw, vendor_id="abc123", event_time=None)["record_id"]
        != a["record_id"]
    )


def test_content_hash_stable_across_key_order() -> None:
    one = {"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": "é"}}
    two = {"a": {"x": "é", "y": [1, {"p": 3, "q": 2}]}, "b": 1}
    assert content_hash(one) == content_hash(two)
    assert canonical_json(one) == canonical_json(two) == '{"a":{"x":"é","y":[1,{"p":3,"q":2}]},"b":1}'
    # List order is content, not presentation.
    assert content_hash({"l": [1, 2]}) != content_hash({"l": [2, 1]})
    assert content_hash({"a": 1}) != content_hash({"a": "1"})


def test_canonical_json_handles_non_json_types() -> None:
    assert canonical_json({"t": START}) == '{"t":"2026-03-01 00:00:00+00:00"}'


def test_record_without_vendor_id_is_identified_by_its_content() -> None:
    one = {"src": "10.0.0.1", "dst": "10.0.0.2", "bytes": 10}
    two = {"bytes": 10, "dst": "10.0.0.2", "src": "10.0.0.1"}
    a = context().wrap(ORIGIN, one, vendor_id=None, event_time=None)
    b = context("other").wrap(ORIGIN, two, vendor_id="", event_time=None)
    c = context().wrap(ORIGIN, {**one, "bytes": 11}, vendor_id=None, event_time=None)
    assert a["record_id"] == b["record_id"] == make_record_id("acme", ORIGIN.msg_class, content_hash(one))
    assert c["record_id"] != a["record_id"]
    assert a["vendor_id"] is None and b["vendor_id"] == ""


def test_wrap_builds_a_full_envelope_row() -> None:
    ctx = context()
    raw = {"z": 1, "a": "x"}
    row = ctx.wrap(ORIGIN, raw, vendor_id="v1", event_time=START + timedelta(seconds=5))
    assert set(row) == set(INDICES["syslog"].column_names)
    assert row["tenant"] == "acme" and row["content_type"] == "alert"
    assert (
        row["msg_class"],
        row["msg_origin_source"],
        row["msg_origin_vendor"],
        row["msg_origin_category"],
    ) == ("netskopewsg_alert", "netskope", "netskope", "web_security")
    assert row["raw"] == '{"a":"x","z":1}'
    assert (row["window_start"], row["window_end"]) == (ctx.window_start, ctx.window_end)
    assert row["event_time"] == START + timedelta(seconds=5) and row["ingest_time"] == ctx.ingest_time


def test_wrap_merges_typed_columns() -> None:
    row = context().wrap(
        ORIGIN,
        {"h": 1},
        vendor_id="h1",
        event_time=None,
        typed={"asset_id": "h1", "hostname": "h1.acme", "ip_address": None, "os": "linux"},
    )
    assert set(row) == set(INDICES["assets"].column_names)
    assert row["hostname"] == "h1.acme"


def test_arrow_rows_are_the_rows_wrap_builds() -> None:
    import pyarrow as pa

    from seccollect.records.envelope import make_record_ids
    from seccollect.staging.store import arrow_schema

    ctx = context(content_type="cloudtrail")
    origin = MsgOrigin("cloudtrail", "cloudtrail", "aws", "paas")
    raws = [{"eventID": f"e{i}", "n": i, "nested": {"b": 1, "a": [i]}} for i in range(5)]
    times = [START + timedelta(seconds=i) if i != 3 else None for i in range(5)]
    typed = {"account_id": ["1", None, "3", "4", "5"], "event_name": ("A", "B", "C", "D", "E"), "s3_key": "k/1.gz"}
    expected = pa.Table.from_pylist(
        [
            ctx.wrap(origin, raw, vendor_id=raw["eventID"], event_time=t,
                     typed={name: (v if isinstance(v, str) else v[i]) for name, v in typed.items()})
            for i, (raw, t) in enumerate(zip(raws, times, strict=True))
        ],
        schema=arrow_schema("aws_events"),
    )
    table = ctx.arrow_rows(
        "aws_events", origin, vendor_ids=[r["eventID"] for r in raws], event_times=times,
        raw_texts=[canonical_json(r) for r in raws], typed=typed,
    )
    assert table.schema.equals(arrow_schema("aws_events"))
    assert table.to_pylist() == expected.to_pylist()  # columns not given (aws_region …) are null
    # raw texts are stored as given: the vendor's own text, not re-serialised
    exact = ctx.arrow_rows("aws_events", origin, vendor_ids=["x"], event_times=[START],
                           raw_texts=['{"eventID": "x", "z": 1}'])
    assert exact.column("raw").to_pylist() == ['{"eventID": "x", "z": 1}']
    assert make_record_ids("acme", "cloudtrail", ["x", "y"]) == [
        make_record_id("acme", "cloudtrail", "x"), make_record_id("acme", "cloudtrail", "y")
    ]


def test_arrow_rows_need_a_vendor_id_and_one_value_per_record() -> None:
    ctx = context()
    with pytest.raises(ValueError, match="vendor id"):
        ctx.arrow_rows("syslog", ORIGIN, vendor_ids=["a", ""], event_times=[None, None], raw_texts=["{}", "{}"])
    with pytest.raises(ValueError, match="one entry per record"):
        ctx.arrow_rows("syslog", ORIGIN, vendor_ids=["a"], event_times=[None, None], raw_texts=["{}", "{}"])
    with pytest.raises(ValueError, match="account_id"):
        ctx.arrow_rows("aws_events", ORIGIN, vendor_ids=["a"], event_times=[None], raw_texts=["{}"],
                       typed={"account_id": ["1", "2"]})
