"""CloudTrail end to end (moto S3 -> parse -> warehouse) beside naive and competent baselines; LIST cost; peak memory.

Everything runs on this machine: a moto S3 server on 127.0.0.1 (in the parent process), DuckDB files
and PostgreSQL at 127.0.0.1:5432. Every measured step runs in a fresh child process (this file with
``--child``) so its time and peak memory are its own.

1. **Throughput.** One bucket holds a Control Tower layout (``<org>/AWSLogs/<org>/<account>/CloudTrail/
   <region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<16 chars>.json.gz``) with
   ``--objects`` gzipped CloudTrail objects of ``--records`` realistic records each, all in one hour.
   For each backend (DuckDB file, PostgreSQL database), measured in the same run:

   * **ours**: what the DAG's tasks do for that hour on one worker: ``S3LogListOperator.execute``
     (prefix expansion, LIST, object ledger), one ``S3LogBatchOperator.execute`` per batch of
     ``batch_size`` objects (GET, gunzip, streaming parse, envelope, Parquet staging to a real folder),
     then ``WarehouseLoadOperator.execute`` (``load_window`` of every staged part, the object ledger and
     the window's ledger in one transaction). The collect tasks run ``--workers`` at a time (default:
     the cores), each in a new process forked from the warm benchmark process, as an Airflow worker
     with that many slots runs a mapped task's instances; list and load run in the benchmark process.
     Timed from the list task's start to the load task's end; imports are paid before the timer.
   * **baseline** (naive): for each object (keys given for free, no listing): ``GetObject``, gunzip,
     ``json.load``, ``pandas.json_normalize(doc["Records"])``, non-scalar cells (lists) turned into
     JSON text so the driver can bind them, ``DataFrame.to_sql(..., if_exists="append")`` through
     SQLAlchemy (``postgresql+psycopg``; ``duckdb_engine`` for DuckDB, a bench-only dependency in
     ``bench/requirements.txt``). A column first seen in a later object is added with ``ALTER TABLE``.
   * **competent** (DuckDB only): what a user who knows DuckDB would write instead, neither with
     idempotency, ledgers or listing: (a) the same pandas flattening, inserted with DuckDB's native
     DataFrame scan in one transaction; (b) the objects copied to local files as they are, then
     DuckDB's own ``read_json`` of the gzipped files, one row per record (the record as JSON plus the
     columns a query filters on), one statement.

2. **LIST requests** of the list task for the same one-hour window, in a bucket holding 1 day of
   history and in one holding 1 year of it (see ``--history-*``), counted by ``S3LogHook``.
3. **Peak memory** of the collect task processing one object of ``--big-records`` records (the
   child's own ``VmHWM``, see :func:`run_child`), and of loading it.

    .venv/bin/python bench/cloudtrail_throughput.py           # 200 x 2,000 records, 500k-record object
    .venv/bin/python bench/cloudtrail_throughput.py --quick   # 40 x 1,000 records, 100k-record object

Requires ``pip install -r bench/requirements.txt`` (duckdb_engine) for the DuckDB baseline.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve()
ORG_ID = "o-bench7x2k9q"
REGION = "us-east-1"
BUCKET = "aws-controltower-logs-999988887777-us-east-1"
WARM_UP_BUCKET = "aws-controltower-logs-999988887777-warm-up"
PREFIX = f"{ORG_ID}/AWSLogs/{ORG_ID}/*/CloudTrail/{REGION}"
TENANT, INSTANCE = "acme", "bench"
DAG_ID = f"{TENANT}-aws_cloudtrail-{INSTANCE}"
AWS_CONN_ID = "aws_bench"
WAREHOUSE_CONN_ID = "seccollect_warehouse"
#: The measured window: one hour in the middle of a day (the list task's look-back stays in that day).
WINDOW_START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(hours=1)
PG = {"host": os.environ.get("SECCOLLECT_BENCH_PGHOST", "127.0.0.1"),
      "port": int(os.environ.get("SECCOLLECT_BENCH_PGPORT", "5432")),
      "user": os.environ.get("SECCOLLECT_BENCH_PGUSER", "postgres")}
TARGET_RATIO = 2.0
TARGET_DUCKDB_EPS = 50_000
TARGET_PEAK_MIB = 1024.0
#: What a competent DuckDB user would write instead (DuckDB only), beside the naive baseline.
COMPETENT = {
    "pandas_duckdb": "json.load + json_normalize + DuckDB's native DataFrame insert, one transaction",
    "duckdb_files": "objects copied to local files, then DuckDB's own read_json of them (one statement)",
}


# --- realistic CloudTrail records ----------------------------------------------------------------------

_USER_AGENTS = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79-99.167.amzn2023.x86_64 exe/x86_64.amzn.2023 prompt/off "
    "command/ec2.describe-instances",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10.213-201.855.amzn2.x86_64 md/arch#x86_64 "
    "lang/python#3.12.2 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69",
    "[aws-sdk-go-v2/1.25.2 os/linux lang/go#1.21.8 md/GOOS#linux md/GOARCH#amd64 api/sts#1.28.1]",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 "
    "Safari/537.36",
    "terraform-provider-aws/5.42.0 (+https://registry.terraform.io) aws-sdk-go-v2/1.26.0 os/linux "
    "lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.151.1",
)
_CIPHERS = ("TLS_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "TLS_AES_256_GCM_SHA384")


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class CloudTrailGenerator:
    """Deterministic CloudTrail records shaped like the published samples (~1.0-1.5 KB of compact JSON).

    A mix of management calls (EC2 describe/run/stop, S3 bucket APIs with ``additionalEventData`` and
    ``resources``, STS AssumeRole with credentials in ``responseElements``, KMS Decrypt, IAM CreateUser,
    console sign-in), IAM-user, assumed-role (with ``sessionContext``) and AWS-service identities,
    ~8 % AccessDenied errors, unique ``eventID`` and ``requestID`` values.
    """

    def __init__(self, seed: int = 7, accounts: int = 10) -> None:
        self.rng = random.Random(seed)
        self.accounts = [f"{100000000000 + 7919 * 1_000_003 * (i + 1) % 899999999999:012d}" for i in range(accounts)]
        self.users = [f"user{i:03d}" for i in range(200)]
        self.roles = ("OpsRole", "AWSReservedSSO_AdministratorAccess_4f1c2b3a9d8e7f60", "ci-deploy", "lambda-exec")
        self.buckets = [f"acme-data-{name}" for name in ("raw", "curated", "logs", "backups", "tmp", "ml")]

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _key(self, prefix: str, n: int = 16) -> str:
        return prefix + "".join(self.rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=n))

    def _ip(self) -> str:
        r = self.rng.getrandbits(24)
        return f"{(198, 203, 52, 3)[r & 3]}.{(r >> 2) & 255}.{(r >> 10) & 255}.{((r >> 18) & 63) + 1}"

    def _identity(self, account: str, when: datetime) -> dict[str, Any]:
        rng = self.rng
        kind = rng.random()
        if kind < 0.35:
            user = rng.choice(self.users)
            return {
                "type": "IAMUser",
                "principalId": self._key("AIDA", 17),
                "arn": f"arn:aws:iam::{account}:user/{user}",
                "accountId": account,
                "accessKeyId": self._key("AKIA"),
                "userName": user,
            }
        if kind < 0.9:
            role = rng.choice(self.roles)
            session = rng.choice(self.users) + "@acme.example.com" if role.startswith("AWSReserved") else "botocore-session-" + str(rng.getrandbits(30))
            role_id = self._key("AROA", 17)
            return {
                "type": "AssumedRole",
                "principalId": f"{role_id}:{session}",
                "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
                "accountId": account,
                "accessKeyId": self._key("ASIA"),
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": role_id,
                        "arn": f"arn:aws:iam::{account}:role/{role}",
                        "accountId": account,
                        "userName": role,
                    },
                    "webIdFederationData": {},
                    "attributes": {
                        "creationDate": _stamp(when - timedelta(minutes=rng.randint(1, 55))),
                        "mfaAuthenticated": "false",
                    },
                },
            }
        return {"type": "AWSService", "invokedBy": rng.choice(("ec2.amazonaws.com", "lambda.amazonaws.com", "cloudformation.amazonaws.com"))}

    def record(self, account: str, when: datetime) -> dict[str, Any]:
        rng = self.rng
        identity = self._identity(account, when)
        call = rng.random()
        read_only = True
        request: Any = None
        response: Any = None
        extra: dict[str, Any] = {}
        if call < 0.3:
            source, name = "ec2.amazonaws.com", "DescribeInstances"
            request = {
                "instancesSet": {},
                "filterSet": {"items": [{"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}},
                                        {"name": "tag:team", "valueSet": {"items": [{"value": "platform"}]}}]},
            }
        elif call < 0.5:
            source, name = "s3.amazonaws.com", rng.choice(("GetBucketAcl", "GetBucketPolicy", "GetBucketLocation"))
            bucket = rng.choice(self.buckets)
            request = {"bucketName": bucket, "Host": f"{bucket}.s3.{REGION}.amazonaws.com", name[3:].lower(): ""}
            extra = {
                "additionalEventData": {
                    "SignatureVersion": "SigV4",
                    "CipherSuite": "ECDHE-RSA-AES128-GCM-SHA256",
                    "bytesTransferredIn": 0,
                    "AuthenticationMethod": "AuthHeader",
                    "x-amz-id-2": self._key("", 56),
                    "bytesTransferredOut": rng.randint(100, 900),
                },
                "resources": [{"accountId": account, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}],
            }
        elif call < 0.65:
            source, name, read_only = "sts.amazonaws.com", "AssumeRole", False
            role = rng.choice(self.roles)
            session = f"session-{rng.getrandbits(32)}"
            request = {"roleArn": f"arn:aws:iam::{account}:role/{role}", "roleSessionName": session, "durationSeconds": 3600}
            response = {
                "credentials": {"accessKeyId": self._key("ASIA"), "sessionToken": self._key("IQoJb3JpZ2luX2Vj", 64),
                                "expiration": "Mar 1, 2026, 1:00:00 PM"},
                "assumedRoleUser": {"assumedRoleId": self._key("AROA", 17) + ":" + session,
                                    "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}"},
            }
            extra = {
                "resources": [{"accountId": account, "type": "AWS::IAM::Role", "ARN": f"arn:aws:iam::{account}:role/{role}"}],
                "sharedEventID": self._id(),
            }
        elif call < 0.8:
            source, name = "kms.amazonaws.com", "Decrypt"
            key_id = self._id()
            request = {"encryptionContext": {"aws:lambda:FunctionArn": f"arn:aws:lambda:{REGION}:{account}:function:ingest-{rng.randint(1, 40)}"},
                       "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
            extra = {"resources": [{"accountId": account, "type": "AWS::KMS::Key", "ARN": f"arn:aws:kms:{REGION}:{account}:key/{key_id}"}]}
        elif call < 0.9:
            source, name, read_only = "ec2.amazonaws.com", rng.choice(("StopInstances", "StartInstances")), False
            instance = f"i-{rng.getrandbits(60):015x}"
            request = {"instancesSet": {"items": [{"instanceId": instance}]}, "force": False}
            response = {"requestId": self._id(), "instancesSet": {"items": [
                {"instanceId": instance, "currentState": {"code": 64, "name": "stopping"}, "previousState": {"code": 16, "name": "running"}}]}}
        elif call < 0.97:
            source, name, read_only = "iam.amazonaws.com", "CreateUser", False
            user = f"svc-{rng.getrandbits(24):06x}"
            request = {"userName": user, "tags": [{"key": "owner", "value": "platform"}]}
            response = {"user": {"path": "/", "userName": user, "userId": self._key("AIDA", 17),
                                 "arn": f"arn:aws:iam::{account}:user/{user}", "createDate": "Mar 1, 2026, 12:00:00 PM"}}
        else:
            source, name, read_only = "signin.amazonaws.com", "ConsoleLogin", False
            response = {"ConsoleLogin": "Success"}
            extra = {"additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAUsed": "Yes"}}
        record: dict[str, Any] = {
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": _stamp(when),
            "eventSource": source,
            "eventName": name,
            "awsRegion": REGION,
            "sourceIPAddress": self._ip() if identity["type"] != "AWSService" else identity["invokedBy"],
            "userAgent": rng.choice(_USER_AGENTS) if identity["type"] != "AWSService" else identity["invokedBy"],
            "requestParameters": request,
            "responseElements": response,
            "requestID": self._id(),
            "eventID": self._id(),
            "readOnly": read_only,
            "eventType": "AwsConsoleSignIn" if name == "ConsoleLogin" else "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
            **extra,
            "tlsDetails": {"tlsVersion": "TLSv1.3" if rng.random() < 0.7 else "TLSv1.2",
                           "cipherSuite": rng.choice(_CIPHERS),
                           "clientProvidedHostHeader": f"{source.split('.')[0]}.{REGION}.amazonaws.com"},
        }
        if rng.random() < 0.08:
            record["errorCode"] = "AccessDenied"
            record["errorMessage"] = (
                f"User: {identity.get('arn', 'unknown')} is not authorized to perform: {source.split('.')[0]}:{name} "
                "because no identity-based policy allows the action"
            )
            record["responseElements"] = None
        return record


def _unique(rng: random.Random) -> str:
    return "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", k=16))


def object_key(account: str, delivered: datetime, rng: random.Random) -> str:
    """A CloudTrail log object key of the Control Tower layout, named by its delivery minute (UTC)."""
    return (
        f"{ORG_ID}/AWSLogs/{ORG_ID}/{account}/CloudTrail/{REGION}/{delivered:%Y/%m/%d}/"
        f"{account}_CloudTrail_{REGION}_{delivered:%Y%m%dT%H%MZ}_{_unique(rng)}.json.gz"
    )


def cloudtrail_object(gen: CloudTrailGenerator, account: str, delivered: datetime, records: int) -> tuple[bytes, int]:
    """A gzipped ``{"Records":[...]}`` document (compact, as AWS writes it), streamed into the compressor so
    a 500,000-record object never exists as one Python list; returns ``(body, uncompressed bytes)``."""
    out = io.BytesIO()
    raw_bytes = 0
    # events happened 1-10 minutes before the delivery minute, in time order
    offsets = sorted((gen.rng.randint(60, 600) for _ in range(records)), reverse=True)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
        parts: list[bytes] = [b'{"Records":[']
        for i, offset in enumerate(offsets):
            text = json.dumps(gen.record(account, delivered - timedelta(seconds=offset)), separators=(",", ":"))
            parts.append(text.encode() if i == 0 else b"," + text.encode())
            if len(parts) >= 1000:
                chunk = b"".join(parts)
                raw_bytes += len(chunk)
                gz.write(chunk)
                parts = []
        parts.append(b"]}")
        chunk = b"".join(parts)
        raw_bytes += len(chunk)
        gz.write(chunk)
    return out.getvalue(), raw_bytes


def upload_window(client: Any, bucket: str, objects: int, records: int, accounts: int, seed: int) -> dict[str, Any]:
    """``objects`` log objects of the measured hour, accounts round-robin, delivery minutes spread evenly."""
    gen = CloudTrailGenerator(seed, accounts)
    rng = random.Random(seed + 1)
    keys: list[str] = []
    raw_bytes = stored = 0
    for i in range(objects):
        account = gen.accounts[i % accounts]
        delivered = WINDOW_START + timedelta(minutes=i * 60 // objects)
        key = object_key(account, delivered, rng)
        body, size = cloudtrail_object(gen, account, delivered, records)
        client.put_object(Bucket=bucket, Key=key, Body=body)
        keys.append(key)
        raw_bytes += size
        stored += len(body)
    events = objects * records
    return {"keys": keys, "events": events, "avg_record_bytes": raw_bytes / max(events, 1),
            "gzip_mib": stored / 2**20, "json_mib": raw_bytes / 2**20}


def upload_history(client: Any, bucket: str, *, days: int, accounts: int, day_objects: int,
                   history_per_day: int, seed: int) -> int:
    """A CloudTrail bucket with ``days`` of history ending on the window's day.

    The window's day holds ``day_objects`` objects per account (one every 5 minutes at 288, AWS's
    density for a quiet account); each earlier day holds ``history_per_day`` objects per account. Bodies
    are tiny valid gzipped documents (``{"Records":[]}``): the LIST cost depends on keys, not on sizes.
    """
    gen = CloudTrailGenerator(seed, accounts)
    rng = random.Random(seed + 2)
    body = gzip.compress(b'{"Records":[]}', mtime=0)
    day0 = WINDOW_START.replace(hour=0, minute=0)
    keys = []
    for d in range(days):
        day = day0 - timedelta(days=d)
        per_day = day_objects if d == 0 else history_per_day
        for account in gen.accounts:
            for j in range(per_day):
                keys.append(object_key(account, day + timedelta(minutes=j * 1440 // per_day), rng))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=body), keys))
    return len(keys)


# --- child processes ------------------------------------------------------------------------------------


def run_child(function: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``function(**kwargs)`` of this file in a fresh interpreter; its result has ``peak_rss_mib``.

    The peak is the child's own ``VmHWM`` (high-water mark of its resident set, from
    ``/proc/self/status``), read by the child when the function has returned. Not ``ru_maxrss``: Linux
    carries the *parent's* peak RSS into a child's ``ru_maxrss`` across fork/vfork + exec (the parent
    here runs moto server and holds the generated objects), so ``wait4``'s figure would be
    ``max(parent's peak, child's peak)``.
    """
    cmd = [sys.executable, str(BENCH), "--child", function, json.dumps(kwargs)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout)
        raise RuntimeError(f"{function} failed with exit code {proc.returncode}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@RESULT ")]
    if not lines:
        raise RuntimeError(f"{function} printed no result:\n{proc.stdout}")
    return json.loads(lines[-1].removeprefix("@@RESULT "))


def _rss_mib() -> float:
    """Peak resident set of this process so far (``VmHWM``, this process's own memory only)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: an upper bound


def _connections(endpoint: str, backend: str, target: str, staging: str) -> None:
    """Airflow connections (environment variables) and the staging root of a child."""
    os.environ[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "aws", "login": "testing", "password": "testing",
         "extra": {"endpoint_url": endpoint, "region_name": REGION}})
    if backend == "duckdb":
        warehouse = {"conn_type": "duckdb", "host": target}
    else:
        warehouse = {"conn_type": "postgres", "host": PG["host"], "port": PG["port"], "login": PG["user"],
                     "schema": target}
    os.environ[f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}"] = json.dumps(warehouse)
    os.environ["SECCOLLECT_STAGING_URL"] = "file://" + staging


class FakeTI:
    """What the operators use of a task instance: the map index, XCom push and pull."""

    def __init__(self, map_index: int = -1, pulled: dict[str, Any] | None = None) -> None:
        self.map_index = map_index
        self.pushed: dict[str, Any] = {}
        self._pulled = pulled or {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str) -> Any:
        return self._pulled.get(task_ids)


def _dag() -> Any:
    from airflow.sdk import DAG

    return DAG(DAG_ID, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC))


def _warm_up(backend: str) -> None:
    """Imports a task pays once per process (excluded from the timer)."""
    import boto3  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import seccollect.operators.load  # noqa: F401
    import seccollect.records.envelope  # noqa: F401
    import seccollect.staging.store  # noqa: F401
    import seccollect.vendors.aws.hook  # noqa: F401
    import seccollect.vendors.aws.log_formats  # noqa: F401
    import seccollect.vendors.aws.operators  # noqa: F401
    import seccollect.warehouse  # noqa: F401
    from seccollect.warehouse import duckdb, postgres  # noqa: F401

    if backend == "duckdb":
        import airflow.providers.duckdb.hooks.duckdb  # noqa: F401
    else:
        import airflow.providers.postgres.hooks.postgres  # noqa: F401


def _collect_one(index: int, objects: list[dict[str, Any]], bucket: str) -> dict[str, Any]:
    """One mapped collect task (``S3LogBatchOperator.execute`` for batch ``index``)."""
    from seccollect.vendors.aws.operators import S3LogBatchOperator

    window = {"window_start": WINDOW_START.isoformat(), "window_end": WINDOW_END.isoformat()}
    with _dag():
        collect = S3LogBatchOperator(task_id="collect_cloudtrail", objects=objects, tenant=TENANT,
                                     instance_name=INSTANCE, aws_conn_id=AWS_CONN_ID, bucket=bucket,
                                     sub_type="cloudtrail", **window)
    return collect.execute({"ti": FakeTI(map_index=index)}).serialize()  # as XCom carries it


def _staged(results: list[dict[str, Any]]) -> list[Any]:
    """The collect tasks' serialized StagedWindows, as the load task receives them."""
    from seccollect.staging.handoff import StagedWindow

    return [StagedWindow.deserialize(r, StagedWindow.__version__) for r in results]


def _pooled_collect(index: int, objects: list[dict[str, Any]], bucket: str) -> dict[str, Any]:
    """(pool process) :func:`_collect_one`, plus what it cost: seconds, CPU seconds, the Parquet write
    seconds (see :func:`_instrument`) and the process's peak RSS."""
    written = _TOTALS.get("collect: Parquet write", 0.0)
    start, cpu = time.perf_counter(), time.process_time()
    result = _collect_one(index, objects, bucket)
    return {"result": result, "seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
            "parquet_write": _TOTALS.get("collect: Parquet write", 0.0) - written, "peak_rss_mib": _rss_mib()}


def run_window(bucket: str, warehouse_conn_id: str, batch_size: int, phases: dict[str, float],
               pool: Any = None) -> dict[str, Any]:
    """The DAG's tasks for the window: list, collect per batch, load.

    Without ``pool`` every task runs in this process, one after the other. With ``pool`` (a process
    pool of a worker's slots), the mapped collect tasks run in its processes, as many at once as it has
    processes, the way a Celery or local executor worker with that many slots runs a mapped task's
    instances; list and load run here. Returns what the list task pushed as ``listing``, the collect
    results, the load summary and, with a pool, the collect tasks' own costs.
    """
    from seccollect.operators.load import WarehouseLoadOperator
    from seccollect.vendors.aws.operators import S3LogListOperator

    window = {"window_start": WINDOW_START.isoformat(), "window_end": WINDOW_END.isoformat()}
    aws = {"aws_conn_id": AWS_CONN_ID, "bucket": bucket, "sub_type": "cloudtrail"}
    start = time.perf_counter()
    with _dag():
        lister = S3LogListOperator(task_id="list_cloudtrail", prefix=PREFIX, lookback_minutes=60,
                                   batch_size=batch_size, warehouse_conn_id=warehouse_conn_id, **aws, **window)
    ti = FakeTI()
    batches = lister.execute({"ti": ti})
    phases["list"] = time.perf_counter() - start
    costs: list[dict[str, Any]] = []
    if pool is None:
        results = [_collect_one(index, objects, bucket) for index, objects in enumerate(batches)]
    else:
        pending = [pool.apply_async(_pooled_collect, (index, objects, bucket)) for index, objects in enumerate(batches)]
        costs = [task.get() for task in pending]
        results = [cost.pop("result") for cost in costs]
    phases["collect"] = time.perf_counter() - start - phases["list"]
    with _dag():
        loader = WarehouseLoadOperator(task_id="load_cloudtrail", staged=_staged(results), content_type="cloudtrail",
                                       connector_type="aws_cloudtrail", warehouse_conn_id=warehouse_conn_id)
    summary = loader.execute({"run_id": "bench"})
    phases["load"] = time.perf_counter() - start - phases["list"] - phases["collect"]
    return {"listing": ti.pushed["listing"], "results": results, "summary": summary, "costs": costs}


def child_ours(endpoint: str, backend: str, target: str, staging: str, batch_size: int,
               workers: int = 1, profile: str | None = None) -> dict[str, Any]:
    """(child) list -> collect (one task per batch) -> load, as the DAG's tasks do.

    ``workers`` > 1: the collect tasks run in a pool of that many processes (a worker's slots), each
    task in a new process forked from this one, see :func:`run_window`. Before the timer, the same
    tasks run once over a one-object bucket into a throw-away DuckDB file (imports, botocore models,
    provider and fsspec set-up: what a warm worker has), and the target warehouse's tables are
    created (a warehouse in use has them).
    """
    import multiprocessing

    _connections(endpoint, backend, target, staging)
    _warm_up(backend)
    parts = _instrument(backend)
    from seccollect.warehouse import open_warehouse

    os.environ["AIRFLOW_CONN_WARM_UP_WAREHOUSE"] = json.dumps(
        {"conn_type": "duckdb", "host": str(Path(staging).parent / f"warm-up-{uuid.uuid4().hex[:8]}.duckdb")})
    run_window(WARM_UP_BUCKET, "warm_up_warehouse", batch_size, {})
    with open_warehouse(WAREHOUSE_CONN_ID) as warehouse:
        warehouse.ensure_schema()
    for key in parts:
        parts[key] = 0.0
    pool = None
    if workers > 1:
        # Like an Airflow worker: every task instance runs in a new process forked from the warm
        # worker process (this one, after the warm-up), at most ``workers`` at once.
        pool = multiprocessing.get_context("fork").Pool(workers, maxtasksperchild=1)
    rss_before = _rss_mib()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    phases: dict[str, float] = {}
    start = time.perf_counter()
    run = run_window(BUCKET, WAREHOUSE_CONN_ID, batch_size, phases, pool)
    seconds = time.perf_counter() - start
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    costs = run["costs"]
    written = sum(c["parquet_write"] for c in costs) if costs else parts["collect: Parquet write"]
    load_insert = parts["load: read staged parts, insert absent rows"]
    breakdown = {
        "list task": phases["list"],
        "collect (wall)": phases["collect"],
        "load: read staged parts, insert absent rows": load_insert,
        "load: commit, ledgers, connect": phases["load"] - load_insert,
    }
    if costs:
        busy = sum(c["seconds"] for c in costs)
        breakdown.update({
            "collect tasks, summed: GET, gunzip, parse, envelope, Arrow": busy - written,
            "collect tasks, summed: Parquet write": written,
            "collect tasks, summed: CPU": sum(c["cpu"] for c in costs),
        })
    else:
        breakdown["collect: Parquet write"] = written
    if pool is not None:
        pool.close()
        pool.join()
    results, summary = run["results"], run["summary"]
    with open_warehouse(WAREHOUSE_CONN_ID) as warehouse:
        rows = warehouse.query("SELECT count(*) FROM aws_events")[0][0]
        ledger = warehouse.query("SELECT count(*), sum(records) FROM object_ledger")[0]
    return {
        "seconds": seconds, "phases": phases, "rows": rows, "inserted": summary["tables"]["aws_events"]["inserted"],
        "objects_in_ledger": ledger[0], "records_in_ledger": int(ledger[1] or 0),
        "tasks": 2 + len(results), "workers": workers, "list_requests": run["listing"]["list_requests"],
        "get_requests": sum(r["figures"]["get_requests"] for r in results),
        "parts": sum(len(r["batches"]) for r in results), "rss_before_mib": rss_before, "breakdown": breakdown,
        "worker_peak_rss_mib": max((c["peak_rss_mib"] for c in costs), default=0.0),
    }


#: Running totals of the instrumented steps in this process (see :func:`_instrument`).
_TOTALS: dict[str, float] = {}


def _instrument(backend: str) -> dict[str, float]:
    """Time the staging write and the warehouse insert inside the tasks by wrapping them (one wrapper
    call per Parquet part or per table of a window, nothing per record); returns the running totals
    (:data:`_TOTALS`, which forked pool processes carry on separately)."""
    import pyarrow.parquet as pq

    from seccollect.warehouse.duckdb import DuckDBWarehouse
    from seccollect.warehouse.postgres import PostgresWarehouse

    _TOTALS.update({"collect: Parquet write": 0.0, "load: read staged parts, insert absent rows": 0.0})

    def timed(function: Any, label: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                _TOTALS[label] += time.perf_counter() - start

        return wrapper

    pq.write_table = timed(pq.write_table, "collect: Parquet write")
    cls = DuckDBWarehouse if backend == "duckdb" else PostgresWarehouse
    cls._insert_parts = timed(cls._insert_parts, "load: read staged parts, insert absent rows")
    return _TOTALS


def _non_scalar_to_json(df: Any) -> Any:
    """json_normalize flattens dicts but leaves lists (``resources``, ``filterSet.items`` …) and empty
    dicts in cells; a DB-API driver cannot bind those, so they become JSON text."""
    for column in df.columns:
        if df[column].dtype == object:
            values = df[column]
            mask = values.map(lambda v: isinstance(v, list | dict))
            if mask.any():
                df[column] = values.where(~mask, values[mask].map(json.dumps))
    return df


def child_baseline(endpoint: str, backend: str, target: str, keys: list[str]) -> dict[str, Any]:
    """(child) the naive way: per object GET, gunzip, json.load, json_normalize, to_sql."""
    import pandas as pd
    import sqlalchemy as sa

    from seccollect_dev.moto_server import s3_client

    if backend == "duckdb":
        url = f"duckdb:///{target}"
    else:
        url = f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{target}"
    engine = sa.create_engine(url)
    client = s3_client(endpoint)
    table = "cloudtrail_naive"
    sql_type = {"b": "BOOLEAN", "i": "BIGINT", "f": "DOUBLE PRECISION", "M": "TIMESTAMP"}
    rss_before = _rss_mib()
    start = time.perf_counter()
    known: set[str] = set()
    for key in keys:
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as fh:
            doc = json.load(fh)
        df = _non_scalar_to_json(pd.json_normalize(doc["Records"]))
        new = [c for c in df.columns if c not in known]
        if known and new:
            with engine.begin() as con:
                for c in new:
                    con.execute(sa.text(f'ALTER TABLE {table} ADD COLUMN "{c}" {sql_type.get(df[c].dtype.kind, "TEXT")}'))
        df.to_sql(table, engine, if_exists="append", index=False)
        known.update(df.columns)
    seconds = time.perf_counter() - start
    with engine.connect() as con:
        rows = con.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    engine.dispose()
    return {"seconds": seconds, "rows": rows, "columns": len(known), "rss_before_mib": rss_before}


def child_pandas_duckdb(endpoint: str, backend: str, target: str, keys: list[str]) -> dict[str, Any]:
    """(child) a competent pandas user: per object GET, gunzip, json.load, json_normalize, then DuckDB's
    native DataFrame insert (``INSERT INTO t BY NAME SELECT * FROM df``, a zero-copy scan of the frame),
    one transaction; a column first seen in a later object is added with ``ALTER TABLE``."""
    import duckdb
    import pandas as pd

    from seccollect_dev.moto_server import s3_client

    client = s3_client(endpoint)
    con = duckdb.connect(target)
    rss_before = _rss_mib()
    start = time.perf_counter()
    known: set[str] = set()
    con.execute("BEGIN")
    for key in keys:
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as fh:
            doc = json.load(fh)
        df = _non_scalar_to_json(pd.json_normalize(doc["Records"]))
        con.register("df", df)
        if not known:
            con.execute("CREATE TABLE cloudtrail_pandas AS SELECT * FROM df")
        else:
            described = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM df)").fetchall())
            for column in df.columns:
                if column not in known:
                    con.execute(f'ALTER TABLE cloudtrail_pandas ADD COLUMN "{column}" {described[column]}')
            con.execute("INSERT INTO cloudtrail_pandas BY NAME SELECT * FROM df")
        con.unregister("df")
        known.update(df.columns)
    con.execute("COMMIT")
    seconds = time.perf_counter() - start
    rows = con.execute("SELECT count(*) FROM cloudtrail_pandas").fetchone()[0]
    con.close()
    return {"seconds": seconds, "rows": rows, "columns": len(known), "rss_before_mib": rss_before}


def child_duckdb_files(endpoint: str, backend: str, target: str, keys: list[str]) -> dict[str, Any]:
    """(child) a competent DuckDB user: copy the hour's objects to a local folder as they are (what
    ``aws s3 sync`` does; keys given, no listing), then let DuckDB read the gzipped files itself:
    ``read_json`` of every file, one row per record (``unnest(Records)``), each record kept as JSON plus
    the columns a query filters on, one statement."""
    import duckdb

    from seccollect_dev.moto_server import s3_client

    client = s3_client(endpoint)
    folder = Path(target).with_suffix(".files")
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(target)
    rss_before = _rss_mib()
    start = time.perf_counter()
    for n, key in enumerate(keys):
        client.download_file(BUCKET, key, str(folder / f"{n:05d}.json.gz"))
    copied = time.perf_counter() - start
    con.execute(f"""
        CREATE TABLE cloudtrail_files AS
        SELECT r->>'eventID' AS event_id, (r->>'eventTime')::TIMESTAMPTZ AS event_time,
               r->>'eventSource' AS event_source, r->>'eventName' AS event_name,
               r->>'recipientAccountId' AS account_id, r->>'awsRegion' AS region, r AS record
        FROM (SELECT unnest(Records) AS r
              FROM read_json('{folder}/*.json.gz', columns={{'Records': 'JSON[]'}},
                             format='unstructured', maximum_object_size=67108864))
    """)
    seconds = time.perf_counter() - start
    rows = con.execute("SELECT count(*) FROM cloudtrail_files").fetchone()[0]
    con.close()
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": seconds, "rows": rows, "copy_seconds": copied, "rss_before_mib": rss_before}


def child_list(endpoint: str, bucket: str, target: str, staging: str) -> dict[str, Any]:
    """(child) the list task for the window, and what listing the whole account tree would cost."""
    _connections(endpoint, "duckdb", target, staging)
    _warm_up("duckdb")
    from seccollect.vendors.aws.hook import S3LogHook
    from seccollect.vendors.aws.operators import S3LogListOperator

    with _dag():
        lister = S3LogListOperator(task_id="list_cloudtrail", aws_conn_id=AWS_CONN_ID, bucket=bucket,
                                   prefix=PREFIX, sub_type="cloudtrail", lookback_minutes=60,
                                   warehouse_conn_id=WAREHOUSE_CONN_ID, window_start=WINDOW_START.isoformat(),
                                   window_end=WINDOW_END.isoformat())
    ti = FakeTI()
    start = time.perf_counter()
    lister.execute({"ti": ti})
    seconds = time.perf_counter() - start
    listing = ti.pushed["listing"]
    hook = S3LogHook(AWS_CONN_ID)
    start = time.perf_counter()
    everything = sum(1 for _ in hook.iter_objects(bucket, f"{ORG_ID}/AWSLogs/{ORG_ID}/"))
    full_seconds = time.perf_counter() - start
    return {"seconds": seconds, "list_requests": listing["list_requests"], "prefixes": len(listing["prefixes"]),
            "candidates": listing["candidates"], "full_objects": everything,
            "full_list_requests": hook.list_requests, "full_seconds": full_seconds}


def child_big_collect(endpoint: str, key: str, staging: str) -> dict[str, Any]:
    """(child) the collect task for one batch holding one large object (no load)."""
    _connections(endpoint, "duckdb", "unused.duckdb", staging)
    _warm_up("duckdb")
    from seccollect.vendors.aws.operators import S3LogBatchOperator

    with _dag():
        collect = S3LogBatchOperator(task_id="collect_cloudtrail", objects=[{"key": key, "etag": "", "size": 1}],
                                     tenant=TENANT, instance_name=INSTANCE, aws_conn_id=AWS_CONN_ID, bucket=BUCKET,
                                     sub_type="cloudtrail", window_start=WINDOW_START.isoformat(),
                                     window_end=WINDOW_END.isoformat())
    rss_before = _rss_mib()
    start = time.perf_counter()
    result = collect.execute({"ti": FakeTI(map_index=0)}).serialize()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "records": result["figures"]["records"], "get_requests": result["figures"]["get_requests"],
            "parts": len(result["batches"]), "result": result, "rss_before_mib": rss_before}


def child_big_load(endpoint: str, target: str, staging: str, result: dict[str, Any]) -> dict[str, Any]:
    """(child) the load task for the large object's staged parts, into DuckDB."""
    _connections(endpoint, "duckdb", target, staging)
    _warm_up("duckdb")
    from seccollect.operators.load import WarehouseLoadOperator

    with _dag():
        loader = WarehouseLoadOperator(task_id="load_cloudtrail", staged=_staged([result]), content_type="cloudtrail",
                                       connector_type="aws_cloudtrail", warehouse_conn_id=WAREHOUSE_CONN_ID)
    rss_before = _rss_mib()
    start = time.perf_counter()
    summary = loader.execute({"run_id": "bench"})
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "inserted": summary["tables"]["aws_events"]["inserted"], "rss_before_mib": rss_before}


# --- driver ---------------------------------------------------------------------------------------------


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"seccollect_ct_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(autocommit=True, dbname="postgres", **PG) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(autocommit=True, dbname="postgres", **PG) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_checkpoint() -> None:
    """Flush dirty buffers and WAL so a measured run does not pay for the previous run's writes."""
    import psycopg

    with psycopg.connect(autocommit=True, dbname="postgres", **PG) as admin:
        admin.execute("CHECKPOINT")


def machine(backends: list[str]) -> str:
    import duckdb
    import pandas
    import pyarrow
    import sqlalchemy

    text = (f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
            f"PyArrow {pyarrow.__version__}, pandas {pandas.__version__}, SQLAlchemy {sqlalchemy.__version__}")
    if "postgres" in backends:
        import psycopg

        with psycopg.connect(autocommit=True, dbname="postgres", **PG) as admin:
            version = admin.execute("SHOW server_version").fetchone()[0].split()[0]
        text += f", PostgreSQL {version} (psycopg {psycopg.__version__})"
    try:
        import duckdb_engine

        text += f", duckdb_engine {duckdb_engine.__version__}"
    except ImportError:
        pass
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=200, help="log objects in the measured hour (200)")
    parser.add_argument("--records", type=int, default=2_000, help="records per object (2,000)")
    parser.add_argument("--accounts", type=int, default=10, help="accounts under the org trail (10)")
    parser.add_argument("--batch-size", type=int, default=50, help="objects per collect task (the default, 50)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes the collect tasks run in at once: the worker's slots (the cores)")
    parser.add_argument("--backends", default="duckdb,postgres", help="comma-separated: duckdb, postgres")
    parser.add_argument("--repeat", type=int, default=1, help="throughput runs per path (median)")
    parser.add_argument("--big-records", type=int, default=500_000, help="records of the one large object")
    parser.add_argument("--history-days", type=int, default=365, help="days of history of the larger bucket")
    parser.add_argument("--history-accounts", type=int, default=4, help="accounts in the history buckets")
    parser.add_argument("--day-objects", type=int, default=288, help="objects per account on the window's day")
    parser.add_argument("--history-per-day", type=int, default=24, help="objects per account on earlier days")
    parser.add_argument("--skip", default="",
                        help="comma-separated parts to skip: throughput, baseline (then no ratio), competent "
                             "(the two DuckDB baselines), list, memory")
    parser.add_argument("--profile", help="write a cProfile of the first 'ours' run to this file")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 40 x 1,000 records, 100,000-record object, sparser history")
    parser.add_argument("--child", nargs=2, metavar=("FUNCTION", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = globals()[f"child_{args.child[0]}"](**json.loads(args.child[1]))
        result["peak_rss_mib"] = _rss_mib()
        print("@@RESULT " + json.dumps(result, default=str), flush=True)
        return 0
    if args.quick:
        args.objects, args.records, args.big_records = min(args.objects, 40), min(args.records, 1_000), min(args.big_records, 100_000)
        args.history_accounts, args.day_objects, args.history_per_day = 2, min(args.day_objects, 96), min(args.history_per_day, 2)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    root = Path(tempfile.mkdtemp(prefix="seccollect-ct-bench-"))
    (root / "airflow").mkdir()
    os.environ.update({
        "AIRFLOW_HOME": str(root / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False", "SCARF_NO_ANALYTICS": "true", "DO_NOT_TRACK": "1",
    })
    os.environ.pop("SECCOLLECT_STAGING_CONN_ID", None)
    from seccollect_dev.moto_server import s3_client, start_moto_server

    endpoint, stop = start_moto_server()
    report: dict[str, Any] = {"machine": machine(backends), "args": vars(args), "backends": backends,
                              "load_before": os.getloadavg()[0], "started": datetime.now(UTC)}
    try:
        client = s3_client(endpoint)
        if "throughput" not in skip:
            client.create_bucket(Bucket=BUCKET)
            client.create_bucket(Bucket=WARM_UP_BUCKET)
            upload_window(client, WARM_UP_BUCKET, 1, 100, 1, args.seed + 9)
            note(f"generating {args.objects} x {args.records:,} records ...")
            t = time.perf_counter()
            data = upload_window(client, BUCKET, args.objects, args.records, args.accounts, args.seed)
            note(f"  {data['events']:,} events, {data['json_mib']:.0f} MiB JSON, {data['gzip_mib']:.0f} MiB gzip "
                 f"in {time.perf_counter() - t:.0f} s")
            report["data"] = {k: v for k, v in data.items() if k != "keys"}
            report["throughput"] = throughput(args, endpoint, root, data, backends, skip)
        if "list" not in skip:
            report["list"] = list_cost(args, endpoint, client, root)
        if "memory" not in skip:
            report["memory"] = memory(args, endpoint, client, root)
    finally:
        stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    print(markdown(report))
    return 0 if check(report) else 1


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def throughput(args: argparse.Namespace, endpoint: str, root: Path, data: dict[str, Any],
               backends: list[str], skip: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend in backends:
        kinds = ["ours", "baseline"] + (list(COMPETENT) if backend == "duckdb" else [])
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        for rep in range(args.repeat):
            order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]  # rotate which path runs first
            for kind in order:
                if kind != "ours" and (kind in skip or (kind in COMPETENT and "competent" in skip)):
                    continue
                note(f"{backend} {kind} #{rep + 1} ...")
                staging = root / f"staging-{backend}-{kind}-{rep}"
                with _target(backend, root / f"{kind}-{rep}.duckdb") as target:
                    if kind == "ours":
                        profile = args.profile if args.profile and not runs["ours"] else None
                        run = run_child("ours", endpoint=endpoint, backend=backend, target=target,
                                        staging=str(staging), batch_size=args.batch_size, workers=args.workers,
                                        profile=profile)
                    else:
                        run = run_child(kind, endpoint=endpoint, backend=backend, target=target,
                                        keys=data["keys"])
                note(f"  {run['seconds']:.1f} s, {data['events'] / run['seconds']:,.0f} events/s, "
                     f"peak {run['peak_rss_mib']:.0f} MiB")
                runs[kind].append(run)
                import shutil

                shutil.rmtree(staging, ignore_errors=True)
        out[backend] = runs
    return out


@contextmanager
def _target(backend: str, duckdb_file: Path) -> Iterator[str]:
    if backend == "duckdb":
        try:
            yield str(duckdb_file)
        finally:
            duckdb_file.unlink(missing_ok=True)
            Path(str(duckdb_file) + ".wal").unlink(missing_ok=True)
    else:
        with postgres_database() as name:
            pg_checkpoint()
            yield name


def list_cost(args: argparse.Namespace, endpoint: str, client: Any, root: Path) -> dict[str, Any]:
    out = {}
    for label, days in (("1 day", 1), (f"{args.history_days} days", args.history_days)):
        bucket = f"ct-history-{days}d-999988887777"
        client.create_bucket(Bucket=bucket)
        t = time.perf_counter()
        stored = upload_history(client, bucket, days=days, accounts=args.history_accounts,
                                day_objects=args.day_objects, history_per_day=args.history_per_day, seed=args.seed)
        note(f"history bucket {label}: {stored:,} objects in {time.perf_counter() - t:.0f} s")
        run = run_child("list", endpoint=endpoint, bucket=bucket, target=str(root / f"list-{days}.duckdb"),
                        staging=str(root / "staging-list"))
        run["objects"] = stored
        out[label] = run
        note(f"  list task: {run['list_requests']} LIST requests, {run['seconds']:.2f} s; "
             f"whole tree: {run['full_list_requests']} requests")
    return out


def memory(args: argparse.Namespace, endpoint: str, client: Any, root: Path) -> dict[str, Any]:
    gen = CloudTrailGenerator(args.seed + 3, 1)
    delivered = WINDOW_START + timedelta(minutes=30)
    key = object_key(gen.accounts[0], delivered, random.Random(args.seed + 4))
    note(f"generating one object of {args.big_records:,} records ...")
    body, raw_bytes = cloudtrail_object(gen, gen.accounts[0], delivered, args.big_records)
    client.put_object(Bucket=BUCKET if _bucket_exists(client, BUCKET) else _create(client, BUCKET), Key=key, Body=body)
    facts = {"records": args.big_records, "json_mib": raw_bytes / 2**20, "gzip_mib": len(body) / 2**20}
    del body
    staging = root / "staging-big"
    collect = run_child("big_collect", endpoint=endpoint, key=key, staging=str(staging))
    note(f"  collect: {collect['seconds']:.1f} s, peak {collect['peak_rss_mib']:.0f} MiB")
    load = run_child("big_load", endpoint=endpoint, target=str(root / "big.duckdb"), staging=str(staging),
                     result=collect.pop("result"))
    note(f"  load: {load['seconds']:.1f} s, peak {load['peak_rss_mib']:.0f} MiB")
    return {"object": facts, "collect": collect, "load": load}


def _bucket_exists(client: Any, bucket: str) -> bool:
    return any(b["Name"] == bucket for b in client.list_buckets()["Buckets"])


def _create(client: Any, bucket: str) -> str:
    client.create_bucket(Bucket=bucket)
    return bucket


def check(report: dict[str, Any]) -> bool:
    ok = True
    events = report.get("data", {}).get("events")
    for backend, runs in report.get("throughput", {}).items():
        for run in runs["ours"]:
            ok &= run["rows"] == run["inserted"] == run["records_in_ledger"] == events
        for kind in runs:
            if kind != "ours":
                ok &= all(run["rows"] == events for run in runs[kind])
        if not ok:
            note(f"CORRECTNESS CHECK FAILED on {backend}")
    if "memory" in report:
        m = report["memory"]
        ok &= m["collect"]["records"] == m["load"]["inserted"] == m["object"]["records"]
    return ok


def _median(runs: list[dict[str, Any]], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in runs)


def _yes(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def markdown(report: dict[str, Any]) -> str:
    args = report["args"]
    lines = [
        f"Command: `{' '.join(['.venv/bin/python', 'bench/cloudtrail_throughput.py', *sys.argv[1:]])}`  ",
        f"Date: {report['started']:%Y-%m-%d %H:%M}-{datetime.now(UTC):%H:%M} UTC (start-end of the run)  ",
        f"Machine: {report['machine']}  ",
        f"Load average (1 min) before / after the run: {report['load_before']:.2f} / {os.getloadavg()[0]:.2f} "
        "(2 cores: above ~1 something else was running beside the benchmark)  ",
        "Every measured step runs in a fresh child process; seconds are `time.perf_counter` around the "
        "measured work only; peak RSS is the child's own high-water mark (`VmHWM` in /proc/self/status, "
        "read when the step has returned; not `ru_maxrss`, which Linux inflates with the parent's peak), "
        "so it includes the interpreter, Airflow and the libraries (*after imports*: the high-water mark "
        "just before the timer). S3 is moto server on 127.0.0.1, in the parent process.",
        "",
    ]
    if "throughput" in report:
        data = report["data"]
        lines += [
            "### Throughput, one hour of CloudTrail",
            "",
            f"Data: {args['objects']} gzipped CloudTrail objects x {args['records']:,} records = "
            f"**{data['events']:,} events** in one hour of a Control Tower bucket ({args['accounts']} accounts, "
            f"AWS key names), {data['avg_record_bytes']:,.0f} bytes of JSON per record on average "
            f"({data['json_mib']:,.0f} MiB JSON, {data['gzip_mib']:,.0f} MiB gzip). Every eventID is unique, "
            "so every event is a row.",
            "",
            "| backend | path | seconds | events/s | its seconds ÷ ours | peak RSS | details |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        targets = []
        for backend, runs in report["throughput"].items():
            ours = _median(runs["ours"])
            base = _median(runs["baseline"]) if runs["baseline"] else None
            first = runs["ours"][0]
            phases = ", ".join(f"{k} {_median([{'seconds': r['phases'][k]} for r in runs['ours']]):.1f} s"
                               for k in ("list", "collect", "load"))
            slots = (f" in {first['workers']} processes at once (worker peak "
                     f"{max(r['worker_peak_rss_mib'] for r in runs['ours']):,.0f} MiB)" if first["workers"] > 1 else "")
            lines.append(
                f"| {backend} | ours: list + {first['tasks'] - 2} collect task(s) + load | {ours:.1f} | "
                f"{data['events'] / ours:,.0f} | – | "
                f"{max(r['peak_rss_mib'] for r in runs['ours']):,.0f} MiB (after imports {first['rss_before_mib']:,.0f}) | "
                f"{phases}; collect tasks{slots}; {first['list_requests']} LIST + {first['get_requests']} GET "
                f"requests, {first['parts']} Parquet part(s) |")
            if base:
                lines.append(
                    f"| {backend} | baseline: json.load + json_normalize + to_sql per object | {base:.1f} | "
                    f"{data['events'] / base:,.0f} | **{base / ours:.1f}x** | {max(r['peak_rss_mib'] for r in runs['baseline']):,.0f} MiB | "
                    f"{runs['baseline'][0]['columns']} flattened columns; keys given, no listing |")
                targets.append(f"ours >= 2x the baseline on {backend}: {_yes(base / ours >= TARGET_RATIO)} "
                               f"({base / ours:.1f}x)")
            for kind, label in COMPETENT.items():
                if runs.get(kind):
                    other = _median(runs[kind])
                    extra = (f"; copy {_median(runs[kind], 'copy_seconds'):.1f} s, read_json {other - _median(runs[kind], 'copy_seconds'):.1f} s"
                             if kind == "duckdb_files" else f"; {runs[kind][0]['columns']} flattened columns")
                    lines.append(
                        f"| {backend} | competent: {label} | {other:.1f} | {data['events'] / other:,.0f} | "
                        f"{other / ours:.1f}x | {max(r['peak_rss_mib'] for r in runs[kind]):,.0f} MiB | "
                        f"keys given, no listing, no idempotency or ledger{extra} |")
                    targets.append(f"ours vs {kind.replace('_', ' ')}: {other / ours:.1f}x")
            if backend == "duckdb":
                eps = data["events"] / ours
                targets.append(f">= {TARGET_DUCKDB_EPS:,} events/s into DuckDB: {_yes(eps >= TARGET_DUCKDB_EPS)} "
                               f"({eps:,.0f})")
        lines += ["", "Targets: " + "; ".join(targets) + ".", "", "Where the time of *ours* goes (first run):", ""]
        for backend, runs in report["throughput"].items():
            breakdown = runs["ours"][0]["breakdown"]
            lines.append(f"* {backend}: " + ", ".join(f"{k} {v:.1f} s" for k, v in breakdown.items()))
        lines.append("")
        if args["repeat"] > 1:
            lines += [f"Seconds are the median of {args['repeat']} runs per path (the order of the paths "
                      "rotates from run to run); details are from the first run.", ""]
    if "list" in report:
        lines += [
            "### LIST requests for a one-hour window",
            "",
            f"Same window (12:00-13:00 UTC, list task look-back 60 min), Control Tower bucket with "
            f"{args['history_accounts']} accounts. The window's day holds {args['day_objects']} objects per "
            f"account (one every {1440 // max(args['day_objects'], 1)} min); each earlier day of history holds "
            f"{args['history_per_day']} per account. The history objects are tiny valid gzip documents "
            "(`{\"Records\":[]}`, 34 bytes): LIST cost depends on keys, not sizes.",
            "",
            "| bucket history | objects in bucket | list task: LIST requests | prefixes listed | candidates | seconds "
            "| listing the whole account tree instead |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, run in report["list"].items():
            lines.append(
                f"| {label} | {run['objects']:,} | **{run['list_requests']}** | {run['prefixes']} | "
                f"{run['candidates']} | {run['seconds']:.2f} | {run['full_list_requests']:,} requests "
                f"({run['full_seconds']:.1f} s) |")
        runs = list(report["list"].values())
        same = len({r["list_requests"] for r in runs}) == 1
        lines += ["", f"LIST requests do not grow with the history: {_yes(same)} "
                      f"({' vs '.join(str(r['list_requests']) for r in runs)}): 1 delimiter LIST discovers the "
                      "accounts, then one LIST per account and date folder of the window.", ""]
    if "memory" in report:
        m = report["memory"]
        obj, collect, load = m["object"], m["collect"], m["load"]
        lines += [
            f"### Peak memory, one object of {obj['records']:,} records",
            "",
            f"One CloudTrail object of {obj['records']:,} records ({obj['json_mib']:,.0f} MiB of JSON, "
            f"{obj['gzip_mib']:,.0f} MiB gzip), read by one collect task; its staged parts then loaded into "
            "DuckDB by the load task, each in its own child process.",
            "",
            "| task | seconds | records/s | peak RSS | RSS after imports | details |",
            "|---|---:|---:|---:|---:|---|",
            f"| collect | {collect['seconds']:.1f} | {collect['records'] / collect['seconds']:,.0f} | "
            f"**{collect['peak_rss_mib']:,.0f} MiB** | {collect['rss_before_mib']:,.0f} MiB | "
            f"{collect['get_requests']} GET, {collect['parts']} Parquet parts |",
            f"| load (DuckDB) | {load['seconds']:.1f} | {load['inserted'] / load['seconds']:,.0f} | "
            f"{load['peak_rss_mib']:,.0f} MiB | {load['rss_before_mib']:,.0f} MiB | {load['inserted']:,} rows |",
            "",
            f"Peak RSS of the collect task <= 1 GiB: {_yes(collect['peak_rss_mib'] <= TARGET_PEAK_MIB)}.",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
