"""Deterministic S3 log buckets for CloudTrail, VPC flow logs and WAF, with their ground truth.

The layout follows ``vendor-apis/aws-s3-logs.md`` rather than what a collector would find convenient,
because the hard cases are what the collector has to survive:

* a **Control Tower** log-archive bucket (``aws-controltower-logs-<acct>-<region>``) whose CloudTrail
  keys carry the org id twice (``<o-id>/AWSLogs/<o-id>/<acct>/CloudTrail/<region>/YYYY/MM/DD/…``),
  several accounts and regions, one file about every 5 minutes per account and region, named by the
  UTC **delivery** minute (``<acct>_CloudTrail_<region>_YYYYMMDDTHHmmZ_<16 chars>.json.gz``) and
  holding events from 1-10 minutes earlier - so events of 23:5x sit in the next day's folder;
* a CloudTrail file delivered late by the retry mechanism (events hours older than the file);
* one event delivered twice in two files with the same ``eventID`` (AWS admits rare duplicates);
* siblings that must be skipped: ``CloudTrail-Digest`` (hourly), ``CloudTrail-Insight`` (valid
  Records JSON with ``eventTime``, so only the key filter keeps it out), AWS Config objects with
  **unpadded** date folders (``…/Config/us-east-1/2025/1/1/…``) and ``ConfigWritabilityCheckFile``,
  a console folder marker;
* an **empty** (0-byte) log-named object (no records, not an error) and a **truncated gzip** object
  (must be quarantined, none of its records may be loaded);
* VPC flow logs in the default layout (header line, NODATA/SKIPDATA rows, two files in one 5-minute
  window) and in the **Hive** layout with a custom column order, including a file for 23:55 that only
  appears 50 minutes later in the *previous* day's folder (best-effort delivery, A8);
* WAF logs in the standard 5-minute folders (gzip) and a **text** WAF stream under a custom
  date-variable prefix with an unpadded hour (``…/hour=1/`` next to ``…/hour=10/`` would be a trap)
  and a web ACL name containing ``_``.

Everything is generated from a seed, so keys, bodies and the ground truth are identical on every run.
Each object has an ``available_at`` time (what S3 would show as LastModified); :meth:`upload` writes
only the objects available by a given time, which lets a test replay "time passing" against a live
moto server and check that late objects are picked up by later runs.

Ground truth (per stream): :meth:`AwsBucketScenario.expected` gives ``vendor_id -> event_time`` of
the records a collector must load for a window (selected by key time, or by event time), and
:meth:`AwsBucketScenario.quarantine_keys` the keys that must be quarantined.  CloudTrail ids are the
generated ``eventID`` values; VPC flow and WAF ids use :func:`log_formats.record_identity` (those
formats have no record id, so the identity *is* the parser's positional definition).
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import random
import string
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from seccollect.vendors.aws.log_formats import DEFAULT_VPC_COLUMNS, record_identity

__all__ = [
    "ACCOUNTS",
    "CT_BUCKET",
    "ORG_ID",
    "REGIONS",
    "AwsBucketScenario",
    "ExpectedRecord",
    "SimObject",
    "SimStream",
    "build_scenario",
    "iter_keys",
    "populate_buckets",
]

ORG_ID = "o-a1b2c3d4e5"
LOG_ARCHIVE_ACCOUNT = "999988887777"
ACCOUNTS: tuple[str, ...] = ("111122223333", "444455556666", "777788889999")
REGIONS: tuple[str, ...] = ("us-east-1", "eu-west-1")
HOME_REGION = "us-east-1"
TRAIL_NAME = "aws-controltower-BaselineCloudTrail"
CT_BUCKET = f"aws-controltower-logs-{LOG_ARCHIVE_ACCOUNT}-{HOME_REGION}"
VPC_BUCKET = "central-vpcflow-logs-999988887777"
WAF_BUCKET = "aws-waf-logs-demo-999988887777"

#: Default simulated period: crosses an hour, a day, a month and a year boundary.
DEFAULT_START = datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
DEFAULT_END = datetime(2025, 1, 1, 0, 30, tzinfo=UTC)

LOG, EMPTY, CORRUPT = "log", "empty", "corrupt"  # objects that belong to a stream
DIGEST, INSIGHT, CONFIG, FOLDER = "digest", "insight", "config", "folder"  # objects to skip

VPC_HIVE_COLUMNS: tuple[str, ...] = (
    "account-id action az-id bytes dstaddr dstport end flow-direction instance-id interface-id log-status "
    "packets pkt-dstaddr pkt-srcaddr protocol region srcaddr srcport start subnet-id tcp-flags traffic-path "
    "type version vpc-id"
).split()


@dataclass(frozen=True, slots=True)
class ExpectedRecord:
    vendor_id: str
    event_time: datetime


@dataclass(frozen=True)
class SimStream:
    """One connector configuration that reads part of a bucket (what a user would enter)."""

    name: str
    bucket: str
    prefix: str
    sub_type: str
    file_type: str  # "gzip" or "text", as configured; the parser sniffs anyway


@dataclass(frozen=True)
class SimObject:
    bucket: str
    key: str
    body: bytes
    kind: str
    stream: str | None  # the SimStream.name this object belongs to (None for objects to skip)
    key_time: datetime | None
    available_at: datetime
    records: tuple[ExpectedRecord, ...] = ()


@dataclass
class AwsBucketScenario:
    """The planned bucket contents plus ground truth; see the module docstring."""

    start: datetime
    end: datetime
    streams: list[SimStream]
    objects: list[SimObject]
    _uploaded: set[tuple[str, str]] = field(default_factory=set, repr=False)

    @property
    def buckets(self) -> list[str]:
        return sorted({o.bucket for o in self.objects})

    def stream(self, name: str) -> SimStream:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(f"no stream {name!r}; have {[s.name for s in self.streams]}")

    def upload(
        self, client: Any, until: datetime | None = None, buckets: Iterable[str] | None = None
    ) -> list[SimObject]:
        """PUT every object available by ``until`` (all when None) that was not uploaded yet.

        ``buckets`` limits the upload to some buckets (faster tests).  Buckets are created on first
        use.  Returns the objects written by this call.
        """
        wanted = set(self.buckets if buckets is None else buckets)
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in sorted(wanted - existing):
            client.create_bucket(Bucket=bucket)
        written = []
        for obj in self.objects:
            ident = (obj.bucket, obj.key)
            if obj.bucket not in wanted or ident in self._uploaded:
                continue
            if until is not None and obj.available_at > until:
                continue
            client.put_object(Bucket=obj.bucket, Key=obj.key, Body=obj.body)
            self._uploaded.add(ident)
            written.append(obj)
        return written

    def stream_objects(self, name: str) -> list[SimObject]:
        return [o for o in self.objects if o.stream == name]

    def expected(
        self, name: str, window_start: datetime, window_end: datetime, by: str = "key_time"
    ) -> dict[str, datetime]:
        """``vendor_id -> event_time`` a collector must load for ``[window_start, window_end)``.

        ``by="key_time"``: every record of the stream's good objects whose key time is in the window
        (objects are assigned to windows by their key; this is what a key-selecting collector loads).
        ``by="event_time"``: every record whose event time is in the window, from any good object.
        Duplicate deliveries collapse to one id.  Quarantined objects contribute nothing.
        """
        if by not in ("key_time", "event_time"):
            raise ValueError("by must be 'key_time' or 'event_time'")
        out: dict[str, datetime] = {}
        for obj in self.stream_objects(name):
            if obj.kind != LOG:
                continue
            if by == "key_time" and not (obj.key_time and window_start <= obj.key_time < window_end):
                continue
            for rec in obj.records:
                if by == "event_time" and not (window_start <= rec.event_time < window_end):
                    continue
                out.setdefault(rec.vendor_id, rec.event_time)
        return out

    def quarantine_keys(
        self, name: str, window_start: datetime | None = None, window_end: datetime | None = None
    ) -> set[str]:
        """Keys of the stream that are corrupt (optionally only those with key time in the window)."""
        return {
            o.key
            for o in self.stream_objects(name)
            if o.kind == CORRUPT
            and (window_start is None or (o.key_time is not None and window_start <= o.key_time))
            and (window_end is None or (o.key_time is not None and o.key_time < window_end))
        }

    def skipped_keys(self) -> set[str]:
        """Keys that are in the buckets but are not log files of any stream."""
        return {o.key for o in self.objects if o.stream is None}


# --------------------------------------------------------------------------------------------------
# generation helpers
# --------------------------------------------------------------------------------------------------


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)  # mtime=0: byte-identical output on every run


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(t: datetime) -> str:
    return t.strftime("%Y%m%dT%H%MZ")


def _unique(rng: random.Random, n: int = 16) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ip(rng: random.Random, private: bool = False) -> str:
    if private:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return str(ipaddress.IPv4Address(rng.choice((0x51024500, 0x59A01400, 0xCB007100)) + rng.randint(1, 250)))


def _floor5(t: datetime) -> datetime:
    return t.replace(minute=t.minute - t.minute % 5, second=0, microsecond=0)


_CT_CALLS = (
    ("ec2.amazonaws.com", "DescribeInstances", True),
    ("s3.amazonaws.com", "ListBuckets", True),
    ("iam.amazonaws.com", "CreateUser", False),
    ("sts.amazonaws.com", "AssumeRole", False),
    ("kms.amazonaws.com", "Decrypt", True),
    ("ec2.amazonaws.com", "StopInstances", False),
)


def _ct_record(rng: random.Random, account: str, region: str, when: datetime) -> dict[str, Any]:
    source, name, read_only = rng.choice(_CT_CALLS)
    if rng.random() < 0.5:
        identity: dict[str, Any] = {
            "type": "IAMUser",
            "principalId": "AIDA" + _unique(rng, 17).upper(),
            "arn": f"arn:aws:iam::{account}:user/alice",
            "accountId": account,
            "accessKeyId": "AKIA" + _unique(rng, 16).upper(),
            "userName": "alice",
        }
    else:
        identity = {
            "type": "AssumedRole",
            "principalId": "AROA" + _unique(rng, 17).upper() + ":ops-session",
            "arn": f"arn:aws:sts::{account}:assumed-role/OpsRole/ops-session",
            "accountId": account,
            "accessKeyId": "ASIA" + _unique(rng, 16).upper(),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROA" + _unique(rng, 17).upper(),
                    "arn": f"arn:aws:iam::{account}:role/OpsRole",
                    "accountId": account,
                    "userName": "OpsRole",
                },
                "attributes": {
                    "creationDate": _iso(when - timedelta(minutes=30)),
                    "mfaAuthenticated": "false",
                },
            },
        }
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": _iso(when),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": _ip(rng),
        "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 botocore/2.4.5",
        "requestParameters": {"maxResults": 100} if read_only else {"userName": f"user-{rng.randint(1, 99)}"},
        "responseElements": None,
        "requestID": _uuid(rng),
        "eventID": _uuid(rng),
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"},
    }
    if rng.random() < 0.1:
        record["errorCode"] = "AccessDenied"
        record["errorMessage"] = "User is not authorized to perform this operation"
    return record


def _ct_doc(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"Records": records}, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------------
# the scenario
# --------------------------------------------------------------------------------------------------


def build_scenario(
    seed: int = 7, start: datetime = DEFAULT_START, end: datetime = DEFAULT_END
) -> AwsBucketScenario:
    """Plan the buckets for ``[start, end)`` (no I/O).  Same seed and period -> identical scenario."""
    rng = random.Random(seed)
    objects: list[SimObject] = []
    streams: list[SimStream] = []
    _cloudtrail(rng, start, end, objects, streams)
    _vpcflow(rng, start, end, objects, streams)
    _waf(rng, start, end, objects, streams)
    return AwsBucketScenario(start, end, streams, objects)


def populate_buckets(client: Any, seed: int = 7, until: datetime | None = None) -> AwsBucketScenario:
    """Build the default scenario and upload it (objects available by ``until``) through ``client``."""
    scenario = build_scenario(seed)
    scenario.upload(client, until)
    return scenario


def _cloudtrail(
    rng: random.Random, start: datetime, end: datetime, objects: list[SimObject], streams: list[SimStream]
) -> None:
    base = f"{ORG_ID}/AWSLogs/{ORG_ID}"
    for region in REGIONS:
        streams.append(
            SimStream(f"ct-{region}", CT_BUCKET, f"{base}/*/CloudTrail/{region}", "cloudtrail", "gzip")
        )

    duplicate: dict[str, Any] | None = None
    for a_idx, account in enumerate(ACCOUNTS):
        for r_idx, region in enumerate(REGIONS):
            stream = f"ct-{region}"
            folder = f"{base}/{account}/CloudTrail/{region}"
            slot = start
            k = 0
            while slot < end:
                delivered = (slot + timedelta(minutes=rng.randint(0, 4), seconds=rng.randint(0, 59))).replace(
                    microsecond=0
                )
                slot += timedelta(minutes=5)
                k += 1
                if delivered >= end:
                    break
                minute = delivered.replace(second=0)
                key = f"{folder}/{minute:%Y/%m/%d}/{account}_CloudTrail_{region}_{_stamp(minute)}_{_unique(rng)}.json.gz"
                # events happen 1-10 minutes before delivery (A3: ~5 min on average)
                times = sorted(
                    delivered - timedelta(seconds=rng.randint(60, 600)) for _ in range(rng.randint(1, 5))
                )
                records = [_ct_record(rng, account, region, t) for t in times]
                if a_idx == 0 and r_idx == 0 and k == 9:
                    # CloudTrail kept retrying: this file also carries an event from hours ago (A2)
                    records.insert(
                        0, _ct_record(rng, account, region, start - timedelta(hours=2, minutes=17))
                    )
                if a_idx == 1 and r_idx == 0 and k in (3, 4):
                    # the same event delivered in two files, same eventID (A1: rare duplicates)
                    if duplicate is None:
                        duplicate = records[-1]
                    else:
                        records.append(duplicate)
                kind = LOG
                body = _gz(_ct_doc(records))
                if a_idx == 2 and r_idx == 1 and k == 5:
                    kind = CORRUPT  # truncated gzip: an interrupted upload / damaged object
                    body = body[: len(body) * 2 // 3]
                expected = tuple(ExpectedRecord(r["eventID"], _parse_iso(r["eventTime"])) for r in records)
                objects.append(
                    SimObject(
                        CT_BUCKET,
                        key,
                        body,
                        kind,
                        stream,
                        minute,
                        delivered,
                        expected if kind == LOG else (),
                    )
                )
            # hourly digest files, which must never be parsed as logs
            hour = start.replace(minute=0, second=0, microsecond=0)
            while hour < end:
                digest_end = hour + timedelta(minutes=36, seconds=49)
                if start <= digest_end < end:
                    dkey = (
                        f"{base}/{account}/CloudTrail-Digest/{region}/{digest_end:%Y/%m/%d}/{account}_CloudTrail-Digest_"
                        f"{region}_{TRAIL_NAME}_{HOME_REGION}_{digest_end:%Y%m%dT%H%M%SZ}.json.gz"
                    )
                    body = json.dumps(
                        {
                            "awsAccountId": account,
                            "digestStartTime": _iso(digest_end - timedelta(hours=1)),
                            "digestEndTime": _iso(digest_end),
                            "digestS3Bucket": CT_BUCKET,
                            "digestS3Object": dkey,
                            "logFiles": [],
                        }
                    ).encode()
                    objects.append(SimObject(CT_BUCKET, dkey, _gz(body), DIGEST, None, None, digest_end))
                hour += timedelta(hours=1)

    acct, region = ACCOUNTS[0], REGIONS[0]
    mid = start + (end - start) / 2
    mid_minute = mid.replace(second=0, microsecond=0)
    # an Insights file: valid Records JSON with eventTime - only the key filter keeps it out
    insight = {
        "eventVersion": "1.08",
        "eventTime": _iso(mid - timedelta(minutes=20)),
        "awsRegion": region,
        "eventID": _uuid(rng),
        "eventType": "AwsCloudTrailInsight",
        "recipientAccountId": acct,
        "sharedEventID": _uuid(rng),
        "insightDetails": {
            "state": "Start",
            "eventSource": "ec2.amazonaws.com",
            "eventName": "RunInstances",
            "insightType": "ApiCallRateInsight",
        },
        "eventCategory": "Insight",
    }
    ikey = (
        f"{base}/{acct}/CloudTrail-Insight/{region}/{mid_minute:%Y/%m/%d}/"
        f"{acct}_CloudTrail-Insight_{region}_{_stamp(mid_minute)}_{_unique(rng)}.json.gz"
    )
    objects.append(SimObject(CT_BUCKET, ikey, _gz(_ct_doc([insight])), INSIGHT, None, None, mid))
    # AWS Config shares Control Tower buckets; its date folders are NOT zero padded (A13)
    for account in ACCOUNTS[:2]:
        ckey = (
            f"{ORG_ID}/AWSLogs/{account}/Config/{region}/{mid.year}/{mid.month}/{mid.day}/ConfigHistory/"
            f"{account}_Config_{region}_ConfigHistory_AWS::EC2::Instance_{mid:%Y%m%dT%H%M%SZ}_"
            f"{mid:%Y%m%dT%H%M%SZ}_1.json.gz"
        )
        cbody = json.dumps({"fileVersion": "1.0", "configurationItems": []}).encode()
        objects.append(SimObject(CT_BUCKET, ckey, _gz(cbody), CONFIG, None, None, mid))
        objects.append(
            SimObject(
                CT_BUCKET,
                f"{ORG_ID}/AWSLogs/{account}/Config/ConfigWritabilityCheckFile",
                b"",
                CONFIG,
                None,
                None,
                start,
            )
        )
    # a folder marker created in the console, in the middle of the log files
    objects.append(
        SimObject(
            CT_BUCKET, f"{base}/{acct}/CloudTrail/{region}/{mid:%Y/%m/%d}/", b"", FOLDER, None, None, start
        )
    )
    # an empty object with a log file name: no records, and not an error
    ekey = f"{base}/{ACCOUNTS[1]}/CloudTrail/{region}/{mid:%Y/%m/%d}/{ACCOUNTS[1]}_CloudTrail_{region}_{_stamp(mid_minute)}_{_unique(rng)}.json.gz"
    objects.append(SimObject(CT_BUCKET, ekey, b"", EMPTY, f"ct-{region}", mid_minute, mid))


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _vpc_row(rng: random.Random, account: str, eni: str, end_time: datetime, status: str) -> dict[str, Any]:
    end_s = int(end_time.timestamp())
    start_s = end_s - rng.randint(0, 60)
    if status != "OK":
        return {
            "version": 2,
            "account-id": account,
            "interface-id": eni,
            "start": start_s,
            "end": end_s,
            "log-status": status,
        }
    return {
        "version": 5,
        "account-id": account,
        "interface-id": eni,
        "srcaddr": _ip(rng),
        "dstaddr": _ip(rng, private=True),
        "srcport": rng.randint(1024, 65535),
        "dstport": rng.choice((22, 80, 443, 3389)),
        "protocol": rng.choice((6, 17)),
        "packets": rng.randint(1, 500),
        "bytes": rng.randint(40, 900_000),
        "start": start_s,
        "end": end_s,
        "action": rng.choice(("ACCEPT", "REJECT")),
        "log-status": "OK",
        "vpc-id": "vpc-0a1b2c3d4e5f60718",
        "subnet-id": "subnet-0123456789abcdef0",
        "instance-id": "i-0fedcba9876543210",
        "tcp-flags": rng.choice((2, 18, 19)),
        "type": "IPv4",
        "pkt-srcaddr": None,
        "pkt-dstaddr": None,
        "region": "eu-west-1",
        "az-id": "euw1-az1",
        "flow-direction": "ingress",
        "traffic-path": None,
    }


def _vpc_file(
    rng: random.Random, key: str, columns: tuple[str, ...], rows: list[dict[str, Any]]
) -> tuple[bytes, tuple[ExpectedRecord, ...]]:
    lines = [" ".join(columns)]
    expected = []
    for row in rows:
        text = " ".join("-" if row.get(c) is None else str(row[c]) for c in columns)
        lines.append(text)
        # line numbers are 1-based and count the header line
        expected.append(
            ExpectedRecord(record_identity(key, len(lines), text), datetime.fromtimestamp(row["end"], UTC))
        )
    return _gz(("\n".join(lines) + "\n").encode()), tuple(expected)


def _vpcflow(
    rng: random.Random, start: datetime, end: datetime, objects: list[SimObject], streams: list[SimStream]
) -> None:
    acct_a, acct_b = ACCOUNTS[0], ACCOUNTS[1]
    default_prefix = f"AWSLogs/{acct_a}/vpcflowlogs/us-east-1"
    hive_prefix = f"AWSLogs/aws-account-id={acct_b}/aws-service=vpcflowlogs/aws-region=eu-west-1"
    streams.append(SimStream("vpc-default", VPC_BUCKET, default_prefix, "vpcflow", "gzip"))
    streams.append(SimStream("vpc-hive", VPC_BUCKET, hive_prefix, "vpcflow", "gzip"))
    flow_log = "fl-04af3543c74402594"
    window = _floor5(start)
    while window < end:
        for name, account, region, prefix, columns, folder_fmt in (
            ("vpc-default", acct_a, "us-east-1", default_prefix, DEFAULT_VPC_COLUMNS, "%Y/%m/%d"),
            (
                "vpc-hive",
                acct_b,
                "eu-west-1",
                hive_prefix,
                tuple(VPC_HIVE_COLUMNS),
                "year=%Y/month=%m/day=%d",
            ),
        ):
            files = 2 if (name == "vpc-default" and window == _floor5(start + timedelta(minutes=10))) else 1
            for _ in range(files):
                eni = f"eni-{rng.getrandbits(68):017x}"
                rows = []
                for _ in range(rng.randint(2, 6)):
                    end_time = window + timedelta(seconds=rng.randint(0, 299))
                    status = "OK" if rng.random() > 0.15 else rng.choice(("NODATA", "SKIPDATA"))
                    rows.append(_vpc_row(rng, account, eni, end_time, status))
                key = (
                    f"{prefix}/{window.strftime(folder_fmt)}/{account}_vpcflowlogs_{region}_{flow_log}_"
                    f"{_stamp(window)}_{rng.getrandbits(32):08x}.log.gz"
                )
                body, expected = _vpc_file(rng, key, columns, rows)
                # delivered ~10 min after the 5-minute window closes (A8); the last window of the day
                # arrives very late, into the previous day's folder
                delay = timedelta(minutes=10, seconds=rng.randint(0, 120))
                if name == "vpc-default" and window == datetime(2024, 12, 31, 23, 55, tzinfo=UTC):
                    delay = timedelta(minutes=45)
                objects.append(
                    SimObject(
                        VPC_BUCKET,
                        key,
                        body,
                        LOG,
                        name,
                        window,
                        window + timedelta(minutes=5) + delay,
                        expected,
                    )
                )
        window += timedelta(minutes=5)


def _waf_record(rng: random.Random, when_ms: int, acl_arn: str) -> dict[str, Any]:
    blocked = rng.random() < 0.3
    return {
        "timestamp": when_ms,
        "formatVersion": 1,
        "webaclId": acl_arn,
        "terminatingRuleId": "AWS-AWSManagedRulesSQLiRuleSet" if blocked else "Default_Action",
        "terminatingRuleType": "MANAGED_RULE_GROUP" if blocked else "REGULAR",
        "action": "BLOCK" if blocked else "ALLOW",
        "terminatingRuleMatchDetails": [],
        "httpSourceName": "ALB",
        "httpSourceId": "123456789012-app/demo-alb/0123456789abcdef",
        "ruleGroupList": [],
        "rateBasedRuleList": [],
        "nonTerminatingMatchingRules": [],
        "requestHeadersInserted": None,
        "responseCodeSent": None,
        "httpRequest": {
            "clientIp": _ip(rng),
            "country": rng.choice(("US", "DE", "SE", "AU")),
            "headers": [
                {"name": "Host", "value": "shop.example.com"},
                {"name": "User-Agent", "value": "curl/8.5.0"},
            ],
            "uri": rng.choice(("/", "/login", "/api/cart", "/search")),
            "args": "q=1" if rng.random() < 0.5 else "",
            "httpVersion": "HTTP/1.1",
            "httpMethod": rng.choice(("GET", "POST")),
            "requestId": f"1-{rng.getrandbits(32):08x}-{rng.getrandbits(96):024x}",
        },
        "labels": [],
    }


def _waf(
    rng: random.Random, start: datetime, end: datetime, objects: list[SimObject], streams: list[SimStream]
) -> None:
    account = ACCOUNTS[0]
    std_prefix = f"AWSLogs/{account}/WAFLogs/us-east-1/demo-acl"
    custom_prefix = "custom/waf/dt=//YYYY//-//mm//-//dd///hour=//H//"
    streams.append(SimStream("waf-std", WAF_BUCKET, std_prefix, "waf", "gzip"))
    streams.append(SimStream("waf-custom-text", WAF_BUCKET, custom_prefix, "waf", "text"))
    acl_arn = (
        f"arn:aws:wafv2:us-east-1:{account}:regional/webacl/demo-acl/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
    )
    window = _floor5(start)
    while window < end:
        for name in ("waf-std", "waf-custom-text"):
            files = 2 if (name == "waf-std" and window == _floor5(start + timedelta(minutes=20))) else 1
            for _ in range(files):
                base_ms = int(window.timestamp()) * 1000
                lines, expected = [], []
                for ms in sorted(rng.randint(0, 299_999) for _ in range(rng.randint(1, 5))):
                    text = json.dumps(_waf_record(rng, base_ms + ms, acl_arn), separators=(",", ":"))
                    lines.append(text)
                    expected.append(
                        (
                            text,
                            datetime.fromtimestamp((base_ms + ms) // 1000, UTC).replace(
                                microsecond=(ms % 1000) * 1000
                            ),
                        )
                    )
                if name == "waf-std":
                    key = (
                        f"{std_prefix}/{window:%Y/%m/%d/%H/%M}/{account}_waflogs_us-east-1_demo-acl_"
                        f"{_stamp(window)}_{rng.getrandbits(32):08x}.log.gz"
                    )
                    body = _gz(("\n".join(lines) + "\n").encode())
                else:
                    key = (
                        f"custom/waf/dt={window:%Y-%m-%d}/hour={window.hour}/{account}_waflogs_cloudfront_edge_acl_"
                        f"{_stamp(window)}_{rng.getrandbits(32):08x}.log"
                    )
                    body = "\n".join(lines).encode()  # text file type, no trailing newline
                records = tuple(
                    ExpectedRecord(record_identity(key, i, text), when)
                    for i, (text, when) in enumerate(expected, start=1)
                )
                available = window + timedelta(minutes=5, seconds=rng.randint(20, 90))
                objects.append(SimObject(WAF_BUCKET, key, body, LOG, name, window, available, records))
        window += timedelta(minutes=5)


def iter_keys(scenario: AwsBucketScenario, kinds: Iterable[str]) -> list[str]:
    """Keys of the given object kinds (helper for tests and the demo)."""
    wanted = set(kinds)
    return [o.key for o in scenario.objects if o.kind in wanted]
