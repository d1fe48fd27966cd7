"""Parsers for CloudTrail, VPC flow log and WAF objects, against the real samples and broken input."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from seccollect.vendors.aws.log_formats import (
    MSG_CLASS,
    MSG_ORIGIN,
    CorruptObjectError,
    ParsedRecord,
    UnsupportedFormatError,
    open_object_stream,
    parse_cloudtrail,
    parse_object,
    parse_vpcflow,
    parse_waf,
    record_identity,
)

SAMPLES = Path("/work/shared/samples/aws")
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared AWS samples not available")


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def sample(rel: str) -> bytes:
    return (SAMPLES / rel).read_bytes()


def parse_bytes(data: bytes, sub_type: str, **kw: object) -> list[ParsedRecord]:
    return list(parse_object(io.BytesIO(data), sub_type, **kw))  # type: ignore[arg-type]


class ReadOnly:
    """A body like botocore's StreamingBody: read(n) only, no seek/peek, short reads."""

    def __init__(self, data: bytes, step: int = 7000) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def read(self, n: int = -1) -> bytes:
        n = self._step if n is None or n < 0 else min(n, self._step)
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(out)
        return out

    def close(self) -> None:
        pass


def test_msg_class_and_origin() -> None:
    assert MSG_CLASS == {"cloudtrail": "cloudtrail", "vpcflow": "vpcflow", "waf": "aws_waf"}
    assert MSG_ORIGIN["waf"] == {"source": "cloudtrail", "vendor": "aws", "category": "waf"}
    assert MSG_ORIGIN["cloudtrail"]["category"] == MSG_ORIGIN["vpcflow"]["category"] == "paas"


# ------------------------------------------------------------------------------------------------
# CloudTrail samples
# ------------------------------------------------------------------------------------------------


@needs_samples
def test_cloudtrail_awsdocs_start_instances_has_no_event_id_and_gets_a_stable_hash() -> None:
    (rec,) = parse_bytes(sample("cloudtrail/awsdocs-StartInstances.json"), "cloudtrail")
    assert rec.raw["eventName"] == "StartInstances"
    assert rec.raw["userIdentity"]["userName"] == "Alice"
    assert rec.raw["sourceIPAddress"] == "205.251.233.176"
    assert rec.raw["responseElements"]["instancesSet"]["items"][0]["currentState"] == {
        "code": 0,
        "name": "pending",
    }
    assert rec.event_time == t(2014, 3, 6, 21, 22, 54)
    assert len(rec.vendor_id) == 64 and int(rec.vendor_id, 16) >= 0
    # same content (even reformatted) -> same id: a re-delivered copy deduplicates
    again = parse_bytes(json.dumps({"Records": [rec.raw]}, indent=3).encode(), "cloudtrail")
    assert again[0].vendor_id == rec.vendor_id


@needs_samples
def test_cloudtrail_awsdocs_error_code_and_escapes() -> None:
    (rec,) = parse_bytes(sample("cloudtrail/awsdocs-UpdateTrail-errorCode.json"), "cloudtrail")
    assert rec.vendor_id == "b7d4398e-b2f0-4faa-9c76-e2d316a8d67f"
    assert rec.raw["errorCode"] == "TrailNotFoundException"
    assert rec.raw["errorMessage"] == "Unknown trail: myTrail2 for the user: 123456789012"
    assert rec.event_time == t(2016, 7, 14, 19, 15, 45)
    (kp,) = parse_bytes(sample("cloudtrail/awsdocs-CreateKeyPair.json"), "cloudtrail")
    assert kp.raw["responseElements"]["keyMaterial"] == "<sensitiveDataRemoved>"
    assert kp.raw["userIdentity"]["sessionContext"]["attributes"]["creationDate"] == "2014-03-06T15:15:06Z"
    (grp,) = parse_bytes(sample("cloudtrail/awsdocs-AddUserToGroup.json"), "cloudtrail")
    assert grp.raw["responseElements"] is None and grp.raw["requestParameters"]["groupName"] == "admin"


@needs_samples
def test_cloudtrail_beats_fixture_63_records_9_identities() -> None:
    recs = parse_bytes(sample("cloudtrail/beats-testdata-aws-cloudtrail.json"), "cloudtrail")
    assert len(recs) == 63
    assert len({r.vendor_id for r in recs}) == 9  # the 9-record block repeats 7 times
    first = recs[0]
    assert first.vendor_id == "EXAMPLE8-9621-4d00-b913-beca2EXAMPLE"
    assert first.raw["eventType"] == "AwsCloudTrailInsight"
    assert first.raw["insightDetails"]["state"] == "Start"
    assert first.event_time == t(2019, 11, 14, 0, 51)
    assert recs[2].raw["eventName"] == "UpdateTrail"
    assert [r.raw.get("eventName") for r in recs[2:9]] == [
        "UpdateTrail",
        "CreateRole",
        "AddUserToGroup",
        "CreateUser",
        "CreateKeyPair",
        "StopInstances",
        "StartInstances",
    ]


@needs_samples
def test_cloudtrail_one_record_per_line_files() -> None:
    recs = parse_bytes(sample("cloudtrail/elastic-test-assume-role-json.log"), "cloudtrail")
    assert len(recs) == 2
    assert {r.vendor_id for r in recs} == {"1917948f-3042-46ec-98e2-62865EXAMPLE"}
    issuer = recs[0].raw["userIdentity"]["sessionContext"]["sessionIssuer"]
    assert issuer["arn"] == "arn:aws:iam::111111111111:role/JohnRole1"
    assert recs[1].raw["resources"][1]["type"] == "AWS::IAM::SAMLProvider"
    assert recs[0].event_time == t(2019, 10, 2, 22, 12, 29)

    logins = parse_bytes(sample("cloudtrail/elastic-test-console-login-json.log"), "cloudtrail")
    assert [r.raw["responseElements"]["ConsoleLogin"] for r in logins] == ["Success", "Failure", "Failure"]
    assert "errorCode" not in logins[1].raw and logins[1].raw["errorMessage"] == "Failed authentication"
    # the fixture gives two *different* records the same eventID; eventID identity treats them as one
    assert logins[1].vendor_id == logins[2].vendor_id == "11ea990b-4678-4bcd-8fbe-625EXAMPLE"
    assert logins[1].raw["userIdentity"]["type"] != logins[2].raw["userIdentity"]["type"]


@needs_samples
def test_cloudtrail_digest_body_is_not_a_log_file() -> None:
    with pytest.raises(CorruptObjectError, match="eventTime"):
        parse_bytes(sample("cloudtrail/elastic-test-cloudtrail-digest-json.log"), "cloudtrail")


def test_cloudtrail_shapes() -> None:
    recs = [{"eventTime": f"2025-01-01T00:00:0{i}Z", "eventID": f"e{i}"} for i in range(3)]
    assert [r.vendor_id for r in parse_bytes(json.dumps(recs).encode(), "cloudtrail")] == ["e0", "e1", "e2"]
    doc = {"Other": {"x": [1, 2]}, "Records": recs}  # Records not the first member
    assert len(parse_bytes(json.dumps(doc).encode(), "cloudtrail")) == 3
    doc2 = b'\xef\xbb\xbf {"Records" : [ ] , "extra": {"a": "b"} }\n'  # BOM, spaces, members after
    assert parse_bytes(doc2, "cloudtrail") == []
    ts = parse_bytes(
        b'{"Records":[{"eventTime":"2025-01-01T00:00:00.123+02:00","eventID":"x"}]}', "cloudtrail"
    )
    assert ts[0].event_time == datetime(2024, 12, 31, 22, 0, 0, 123000, tzinfo=UTC)


def test_cloudtrail_record_much_larger_than_a_read_chunk() -> None:
    big = {
        "eventTime": "2025-01-01T00:00:00Z",
        "eventID": "big",
        "requestParameters": {"policy": "é" * 600_000},
    }
    doc = json.dumps(
        {
            "Records": [
                {"eventTime": "2025-01-01T00:00:00Z", "eventID": "a"},
                big,
                {"eventTime": "2025-01-01T00:00:01Z"},
            ]
        },
        ensure_ascii=False,
    )
    recs = list(parse_object(ReadOnly(gzip.compress(doc.encode()), step=1000), "cloudtrail"))  # type: ignore[arg-type]
    assert [len(r.raw.get("requestParameters", {}).get("policy", "")) for r in recs] == [0, 600_000, 0]


# ------------------------------------------------------------------------------------------------
# gzip sniffing and corruption
# ------------------------------------------------------------------------------------------------


@needs_samples
def test_gzip_is_detected_from_magic_bytes_not_the_name() -> None:
    raw = sample("cloudtrail/beats-testdata-aws-cloudtrail.json")
    gz = gzip.compress(raw)
    plain = parse_bytes(raw, "cloudtrail", key="x/1_CloudTrail_r_20250101T0000Z_a.json.gz")  # plain under .gz
    zipped = parse_bytes(gz, "cloudtrail", key="x/no-extension")
    assert plain == zipped and len(plain) == 63
    stream = open_object_stream(io.BytesIO(gz))
    assert stream.read(12) == b'{"Records":['
    assert open_object_stream(io.BytesIO(raw)).read(12) == b'{"Records":['


def test_multi_member_gzip_and_non_seekable_bodies() -> None:
    a = b'{"timestamp":1576280412771,"httpRequest":{"requestId":"a"}}\n'
    b = b'{"timestamp":1576280412772,"httpRequest":{"requestId":"b"}}\n'
    recs = list(parse_object(ReadOnly(gzip.compress(a) + gzip.compress(b), step=5), "waf"))  # type: ignore[arg-type]
    assert [r.raw["httpRequest"]["requestId"] for r in recs] == ["a", "b"]


@pytest.mark.parametrize("sub_type", ["cloudtrail", "vpcflow", "waf"])
def test_empty_objects_yield_nothing(sub_type: str) -> None:
    assert parse_bytes(b"", sub_type) == []
    assert parse_bytes(gzip.compress(b""), sub_type) == []


def _big_cloudtrail(n: int) -> bytes:
    recs = [
        {"eventTime": "2025-01-01T00:00:00Z", "eventID": f"id-{i}", "eventName": "GetObject"}
        for i in range(n)
    ]
    return json.dumps({"Records": recs}).encode()


def test_truncated_gzip_is_corrupt_and_reports_discarded_records() -> None:
    gz = gzip.compress(_big_cloudtrail(20_000))
    seen = []
    with pytest.raises(CorruptObjectError) as info:
        for rec in parse_object(io.BytesIO(gz[: len(gz) * 3 // 4]), "cloudtrail", key="k/1.json.gz"):
            seen.append(rec)
    err = info.value
    assert "truncated gzip" in err.reason and err.key == "k/1.json.gz"
    assert err.records_yielded == len(seen) > 0  # the caller must drop these
    assert "must be discarded" in str(err) and "k/1.json.gz" in str(err)


def test_damaged_gzip_data_and_crc_are_corrupt() -> None:
    gz = bytearray(gzip.compress(_big_cloudtrail(2000)))
    damaged = bytes(gz[:40]) + bytes(200) + bytes(gz[240:])
    with pytest.raises(CorruptObjectError, match="damaged|truncated|JSON"):
        parse_bytes(damaged, "cloudtrail")
    bad_crc = bytes(gz[:-8]) + bytes(b ^ 0xFF for b in gz[-8:-4]) + bytes(gz[-4:])
    with pytest.raises(CorruptObjectError, match="CRC"):
        parse_bytes(bad_crc, "cloudtrail")
    with pytest.raises(CorruptObjectError):
        parse_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate", "waf")


@pytest.mark.parametrize(
    "doc",
    [
        b'{"Records":[{"eventTime":"2025-01-01T00:00:00Z","eventID":"a"},{"eventTime":"2025-01-',
        b'{"Records":[{"eventTime":"2025-01-01T00:00:00Z","eventID":"a"}',
        b'{"Records":[{"eventTime":"2025-01-01T00:00:00Z","eventID":"a"}]',
        b'{"Records":[{"eventTime":"2025-01-01T00:00:00Z","eventID":"a"} {"eventTime":"x"}]}',
        b'{"Records":[{"eventTime":"2025-01-01T00:00:00Z","eventID":"a"},]}',
        b'{"Records":[{"eventTime":"2025-01-01T00:00:00Z" "eventID":"a"}]}',
        b'{"Records":[42]}',
        b'{"Records":[{"eventID":"no-time"}]}',
        b"hello",
        b'{"Records":[{"eventTime":"2025-01-01T00:00:00Z","eventID":"\xff\xfe"}]}',
    ],
)
def test_truncated_or_invalid_cloudtrail_json_is_corrupt(doc: bytes) -> None:
    with pytest.raises(CorruptObjectError):
        parse_bytes(doc, "cloudtrail")
    with pytest.raises(CorruptObjectError):
        parse_bytes(gzip.compress(doc), "cloudtrail")


def test_network_errors_are_not_turned_into_corruption() -> None:
    class Flaky(ReadOnly):
        def read(self, n: int = -1) -> bytes:
            if self._pos > 3000:
                raise ConnectionResetError("peer reset")
            return super().read(n)

    with pytest.raises(ConnectionResetError):
        list(parse_object(Flaky(gzip.compress(_big_cloudtrail(5000)), step=1000), "cloudtrail"))  # type: ignore[arg-type]


def test_parquet_is_reported_as_unsupported() -> None:
    with pytest.raises(UnsupportedFormatError, match="Parquet"):
        parse_bytes(b"PAR1\x00\x00rest", "vpcflow", key="x.log.parquet")
    assert issubclass(UnsupportedFormatError, CorruptObjectError)


def test_unknown_sub_type() -> None:
    with pytest.raises(ValueError, match="sub type"):
        parse_bytes(b"", "s3access")


# ------------------------------------------------------------------------------------------------
# bounded memory
# ------------------------------------------------------------------------------------------------

_TEMPLATE = (
    b'{"eventVersion":"1.08","eventTime":"2024-01-01T00:00:00Z","eventID":"id-%08d",'
    b'"eventName":"GetObject","awsRegion":"us-east-1"}'
)


class GeneratedDocument(io.RawIOBase):
    """A {"Records": [...]} document produced on the fly, so it never exists in memory as a whole."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.size = 0
        self._parts = self._generate()
        self._pending = b""

    def _generate(self):  # type: ignore[no-untyped-def]
        yield b'{"Records":['
        for s in range(0, self.n, 1000):
            block = b",".join(_TEMPLATE % i for i in range(s, min(s + 1000, self.n)))
            yield block + (b"," if s + 1000 < self.n else b"")
        yield b"]}"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        while len(self._pending) < len(buffer):
            try:
                self._pending += next(self._parts)
            except StopIteration:
                break
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.size += n
        return n


def test_200k_record_document_streams_with_bounded_memory() -> None:
    doc = GeneratedDocument(200_000)
    count = 0
    last = ""
    tracemalloc.start()
    try:
        for rec in parse_cloudtrail(io.BufferedReader(doc)):
            count += 1
            last = rec.vendor_id
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000 and last == "id-00199999"
    assert doc.size > 25_000_000
    assert peak < doc.size / 20, (peak, doc.size)  # ~1 MB against a 26 MB document


# ------------------------------------------------------------------------------------------------
# VPC flow logs
# ------------------------------------------------------------------------------------------------

V5_HEADER = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action "
    "log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type "
    "sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path"
)


@needs_samples
def test_vpcflow_default_format_sample() -> None:
    recs = parse_bytes(sample("vpcflow/elastic-test-extra-samples.v2-default.log"), "vpcflow", key="k")
    assert len(recs) == 7 and len({r.vendor_id for r in recs}) == 7
    first = recs[0].raw
    assert first["srcaddr"] == "2001:db8:1234:a100:8d6e:3477:df66:f105"
    assert (first["srcport"], first["dstport"], first["protocol"], first["packets"], first["bytes"]) == (
        34892,
        22,
        6,
        54,
        8855,
    )
    assert first["account-id"] == "123456789010" and first["action"] == "ACCEPT"
    assert recs[0].event_time == datetime.fromtimestamp(1477913820, UTC)
    nodata, skipdata = recs[1].raw, recs[2].raw
    assert nodata["log-status"] == "NODATA" and nodata["srcaddr"] is None and nodata["action"] is None
    assert nodata["start"] == 1431280876 and recs[1].event_time == datetime.fromtimestamp(1431280934, UTC)
    assert skipdata["log-status"] == "SKIPDATA" and skipdata["interface-id"] == "eni-11111111aaaaaaaaa"
    assert recs[4].raw["dstport"] == 3389 and recs[4].raw["action"] == "REJECT"
    assert recs[0].vendor_id == record_identity(
        "k", 1, sample("vpcflow/elastic-test-extra-samples.v2-default.log").decode().splitlines()[0]
    )


@needs_samples
def test_vpcflow_header_line_gives_the_column_order() -> None:
    body = sample("vpcflow/elastic-test-v5-all-fields.custom.log")
    with pytest.raises(CorruptObjectError, match="29 fields but the format has 14"):
        parse_bytes(body, "vpcflow")
    (rec,) = parse_bytes(gzip.compress(V5_HEADER.encode() + b"\n" + body), "vpcflow")
    raw = rec.raw
    assert raw["version"] == 5 and raw["account-id"] == "64111117617"
    assert raw["pkt-src-aws-service"] == "AMAZON" and raw["pkt-dst-aws-service"] == "CLOUDFRONT"
    assert raw["flow-direction"] == "ingress" and raw["traffic-path"] == 1 and raw["tcp-flags"] == 1
    assert raw["az-id"] == "use1-az5" and raw["sublocation-type"] is None and raw["type"] == "IPv4"
    assert raw["start"] == 164000066 and raw["end"] == 1640000297
    assert rec.event_time == datetime.fromtimestamp(1640000297, UTC)
    # the same columns given explicitly for a headerless file
    (same,) = parse_bytes(body, "vpcflow", vpc_columns=V5_HEADER.split())
    assert same.raw == raw


@needs_samples
def test_vpcflow_ecs_sample_without_header_is_refused_not_guessed() -> None:
    with pytest.raises(CorruptObjectError, match="39 fields"):
        parse_bytes(sample("vpcflow/elastic-test-ecs-samples.log"), "vpcflow")


def test_vpcflow_custom_order_without_times_uses_key_time_and_bad_rows_are_corrupt() -> None:
    key = "p/111_vpcflowlogs_us-east-1_fl-1_20250101T0005Z_ab.log.gz"
    body = b"srcaddr dstaddr action\n10.0.0.1 10.0.0.2 ACCEPT\n\n10.0.0.1 10.0.0.3 REJECT\n"
    recs = parse_bytes(gzip.compress(body), "vpcflow", key=key)
    assert [r.raw for r in recs] == [
        {"srcaddr": "10.0.0.1", "dstaddr": "10.0.0.2", "action": "ACCEPT"},
        {"srcaddr": "10.0.0.1", "dstaddr": "10.0.0.3", "action": "REJECT"},
    ]
    assert recs[0].event_time == t(2025, 1, 1, 0, 5)
    assert recs[1].vendor_id == record_identity(key, 4, "10.0.0.1 10.0.0.3 REJECT")  # physical line number
    with pytest.raises(CorruptObjectError, match="no usable end/start"):
        parse_bytes(body, "vpcflow", key="no-time-in-key")
    truncated = (
        b" ".join(DEFAULT_COLUMNS)
        + b"\n2 1 eni-1 1.1.1.1 2.2.2.2 1 2 6 1 40 1 2 ACCEPT OK\n2 1 eni-1 1.1.1.1"
    )
    with pytest.raises(CorruptObjectError, match="line 3 has 4 fields") as info:
        list(parse_vpcflow(io.BytesIO(truncated), key="k"))
    assert info.value.records_yielded == 1
    with pytest.raises(CorruptObjectError, match="UTF-8"):
        parse_bytes(b" ".join(DEFAULT_COLUMNS) + b"\n\xff\xfe\n", "vpcflow")


DEFAULT_COLUMNS = [
    c.encode()
    for c in "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status".split()
]


# ------------------------------------------------------------------------------------------------
# WAF
# ------------------------------------------------------------------------------------------------


@needs_samples
def test_waf_sample() -> None:
    body = sample("waf/elastic-test-waf.log")
    recs = parse_bytes(body, "waf", key="w/1.log")
    assert len(recs) == 4
    first = recs[0]
    assert first.raw["action"] == "BLOCK" and first.raw["terminatingRuleId"] == "STMTest_SQLi_XSS"
    assert (
        first.raw["httpRequest"]["country"] == "AU"
        and first.raw["httpRequest"]["clientIp"] == "89.160.20.156"
    )
    assert first.event_time == datetime(2019, 12, 13, 23, 40, 12, 771000, tzinfo=UTC)
    assert recs[1].raw["nonTerminatingMatchingRules"][0]["action"] == "COUNT"
    assert recs[2].raw["terminatingRuleType"] == "GROUP"
    assert recs[3].raw["httpSourceName"] == "ALB" and recs[3].raw["httpRequest"]["requestId"] == "null"
    # requestId "rid" repeats and records 1 and 4 share a timestamp: ids must still differ
    assert len({r.vendor_id for r in recs}) == 4
    assert first.vendor_id == record_identity("w/1.log", 1, body.decode().splitlines()[0])
    # gzip or text, same records and ids
    assert parse_bytes(gzip.compress(body), "waf", key="w/1.log") == recs


def test_waf_concatenated_json_and_errors() -> None:
    recs = list(parse_waf(io.BytesIO(b'{"timestamp":1000}{"timestamp":2000.0}\n{"timestamp":3000}')))
    assert [r.event_time for r in recs] == [
        t(1970, 1, 1, 0, 0, 1),
        t(1970, 1, 1, 0, 0, 2),
        t(1970, 1, 1, 0, 0, 3),
    ]
    with pytest.raises(CorruptObjectError, match="timestamp"):
        list(parse_waf(io.BytesIO(b'{"timestamp":"yesterday"}')))
    with pytest.raises(CorruptObjectError) as info:
        list(parse_waf(io.BytesIO(b'{"timestamp":1000}\n{"timestamp":2000,\n'), key="w"))
    assert info.value.records_yielded == 1 and info.value.key == "w"


def test_corrupt_error_is_a_value_error() -> None:
    assert issubclass(CorruptObjectError, ValueError)
    err = CorruptObjectError("x")
    assert err.reason == "x" and str(err) == "corrupt object: x"


# ------------------------------------------------------------------------------------------------
# CloudTrail fast path (a buffer of records per msgspec call) against the exact path
# ------------------------------------------------------------------------------------------------


def _tricky_cloudtrail() -> tuple[bytes, list[str]]:
    """A compact Records document whose texts hold every trap for cutting it at ``},{``."""
    texts = []
    for i in range(3000):
        rec: dict[str, object] = {
            "eventVersion": "1.09",
            "eventTime": f"2025-01-01T00:{i % 60:02d}:00Z",
            "eventID": f"e-{i}",
            "requestParameters": {"items": [{"a": i}, {"b": "x},{y"}], "s": "}]", "q": 'say "},{" \\ },{'},
        }
        if i % 7 == 0:
            rec["resources"] = [{"ARN": "arn:1"}, {"ARN": "arn:2"}, {}]
        if i % 17 == 0:  # nested objects that start like a record
            rec["nested"] = [{"eventVersion": "a"}, {"eventVersion": "b"}, {"eventVersion": '},{"eventVersion":'}]
        if i % 11 == 0:
            rec["userAgent"] = "é 漢字 🙂 \u2028"
        if i % 13 == 0:
            rec["big"] = 123456789012345678901234567890
        if i == 1500:
            rec["policy"] = "p" * 200_000  # larger than a read chunk
        texts.append(json.dumps(rec, separators=(",", ":"), ensure_ascii=i % 2 == 0))
    # values the json module accepts and msgspec does not, and whitespace between records
    texts[100] = texts[100][:-1] + ',"x":NaN}'
    texts[2000] = texts[2000][:-1] + ',"y":1e500,"z":"\\ud800"}'
    doc = '{"Records":[' + ",".join(texts[:2500]) + ",\n  " + ",".join(texts[2500:]) + "]}"
    return doc.encode(), texts


def _outcome(doc: bytes) -> tuple[object, ...]:
    recs = []
    try:
        for rec in parse_object(ReadOnly(gzip.compress(doc), step=5000), "cloudtrail"):  # type: ignore[arg-type]
            recs.append((json.dumps(rec.raw, sort_keys=True), rec.event_time, rec.vendor_id, rec.text))
    except CorruptObjectError as exc:
        return ("corrupt", str(exc), exc.records_yielded, recs)
    return ("ok", recs)


def test_fast_path_gives_the_exact_paths_records_and_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    import seccollect.vendors.aws.log_formats as log_formats

    doc, texts = _tricky_cloudtrail()
    calls = []
    decode = log_formats._DECODE_VALUE
    monkeypatch.setattr(log_formats, "_DECODE_VALUE", lambda element: calls.append(1) or decode(element))
    fast = _outcome(doc)
    assert len(calls) > 1000  # the fast path read all but the buffers around the traps
    monkeypatch.setattr(log_formats, "_DECODE_ELEMENTS", None)
    exact = _outcome(doc)
    assert fast == exact
    assert fast[0] == "ok" and [r[3] for r in fast[1]] == texts  # each record's exact source text
    assert [r[2] for r in fast[1]] == [f"e-{i}" for i in range(3000)]


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:150_000],  # truncated inside a record
        lambda d: d[:-2],  # no closing ]}
        lambda d: d.replace(b'"eventID":"e-700"', b'"eventID":"e-700",,'),  # invalid JSON mid-buffer
        lambda d: d.replace(b'{"eventVersion":"1.09","eventTime":"2025-01-01T00:20:00Z","eventID":"e-80"', b"[42"),
        lambda d: d.replace(b'"eventTime":"2025-01-01T00:10:00Z","eventID":"e-1210"', b'"eventID":"e-1210"'),
    ],
)
def test_fast_path_reports_corruption_as_the_exact_path(damage, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import seccollect.vendors.aws.log_formats as log_formats

    doc = damage(_tricky_cloudtrail()[0])
    fast = _outcome(doc)
    monkeypatch.setattr(log_formats, "_DECODE_ELEMENTS", None)
    assert fast == _outcome(doc)
    assert fast[0] == "corrupt"


# ------------------------------------------------------------------------------------------------
# CloudTrail in runs (runs=True): the fast path the collect task uses must give what records give
# ------------------------------------------------------------------------------------------------


def _flat(data: bytes, runs: bool, step: int = 7000) -> tuple[list[tuple[object, ...]], int]:
    """``(vendor_id, event_time, text, typed values)`` per record, and how many records came in a
    CloudTrailRun."""
    from seccollect.vendors.aws.log_formats import CloudTrailRun
    from seccollect.vendors.aws.operators import _TYPED, _cloudtrail_run_columns

    _, typed_values = _TYPED["cloudtrail"]
    out: list[tuple[object, ...]] = []
    in_runs = 0
    for item in parse_object(ReadOnly(gzip.compress(data), step=step), "cloudtrail", runs=runs):  # type: ignore[arg-type]
        if isinstance(item, CloudTrailRun):
            in_runs += len(item.vendor_ids)
            columns = list(zip(*_cloudtrail_run_columns(item.fields), strict=True))
            assert len(columns) == len(item.vendor_ids) == len(item.event_times) == len(item.texts)
            out += zip(item.vendor_ids, item.event_times, item.texts.to_pylist(), columns, strict=True)
        else:
            out.append((item.vendor_id, item.event_time, item.text, typed_values(item.raw)))
    return out, in_runs


def _varied_records(n: int) -> list[dict[str, object]]:
    """Records with what the projection must get right: missing or empty members and ids, nulls,
    non-ASCII text, escapes, nested arrays of objects, an identity without an account."""
    recs: list[dict[str, object]] = []
    for i in range(n):
        rec: dict[str, object] = {
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "accountId": f"{100000000000 + i % 3}", "arn": f"arn:aws:iam::1:user/ü{i}"},
            "eventTime": f"2025-01-01T00:{i % 60:02d}:{i % 7:02d}Z",
            "eventSource": "s3.amazonaws.com",
            "eventName": "PutObject" if i % 2 else "GetObject",
            "awsRegion": "eu-west-1",
            "sourceIPAddress": f"10.0.{i % 256}.1",
            "requestParameters": {"items": [{"k": "a\"b\\c"}, {"k": "日本"}], "bucketName": "b"},
            "eventID": f"ev-{i}",
            "recipientAccountId": "999988887777",
        }
        if i % 5 == 0:
            del rec["eventID"]  # content hash
        if i % 7 == 0:
            rec["recipientAccountId"] = ""  # falls back to the caller's account
        if i % 11 == 0:
            rec["userIdentity"] = {"type": "AWSService", "invokedBy": "s3.amazonaws.com"}
        if i % 13 == 0:
            rec["errorCode"] = "AccessDenied"
            rec["awsRegion"] = None
        recs.append(rec)
    return recs


def _document(recs: list[dict[str, object]], **dumps: object) -> bytes:
    return json.dumps({"Records": recs}, ensure_ascii=False, **dumps).encode()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "fast_path"),
    [
        pytest.param(_document(_varied_records(3000), separators=(",", ":")), True, id="compact-varied"),
        pytest.param(_document(_varied_records(300), indent=1), False, id="pretty-printed"),
        pytest.param(_big_cloudtrail(5000), False, id="spaces-after-commas"),
        pytest.param(
            _document(
                [*_varied_records(4000), {**_varied_records(1)[0], "recipientAccountId": 123456789012}, *_varied_records(4000)],
                separators=(",", ":"),
            ),
            True,
            id="numeric-account-id",
        ),
        pytest.param(
            _document([*_varied_records(4000), {**_varied_records(1)[0], "userIdentity": "root"}], separators=(",", ":")),
            True,
            id="identity-not-an-object",
        ),
    ],
)
def test_cloudtrail_runs_equal_records(data: bytes, fast_path: bool) -> None:
    exact, in_runs = _flat(data, runs=False)
    assert in_runs == 0 and exact
    fast, in_runs = _flat(data, runs=True)
    assert fast == exact
    # AWS's compact layout goes through runs; anything else is read record by record, and so is a run
    # (what one buffer holds) with a record the projection does not fit, the runs around it not
    assert (0 < in_runs < len(exact)) if fast_path else in_runs == 0


def test_cloudtrail_runs_cover_a_compact_object_but_its_last_record() -> None:
    data = _document(_varied_records(5000), separators=(",", ":"))
    records, in_runs = _flat(data, runs=True, step=1 << 20)
    assert len(records) == 5000 and in_runs == 4999  # the last one has no "},{" after it


@needs_samples
def test_cloudtrail_runs_equal_records_on_the_samples() -> None:
    for path in sorted((SAMPLES / "cloudtrail").glob("*.json")):
        data = path.read_bytes()
        assert _flat(data, runs=True)[0] == _flat(data, runs=False)[0], path.name


def test_cloudtrail_run_with_a_bad_event_time_is_corrupt_at_that_record() -> None:
    recs = _varied_records(2000)
    recs[1500]["eventTime"] = "yesterday"
    seen = []
    with pytest.raises(CorruptObjectError) as info:
        for item in parse_object(io.BytesIO(_document(recs, separators=(",", ":"))), "cloudtrail", runs=True):
            seen.append(item)
    assert "record 1501 has no valid eventTime ('yesterday')" in info.value.reason
    assert info.value.records_yielded == sum(len(getattr(i, "vendor_ids", [None])) for i in seen) < 1500
