"""Shared by the benchmarks: Netskope-like data, staging set-up, PostgreSQL databases, child-process steps.

Every step (generating data, and each measured step) runs in a fresh child process (``python
bench/_common.py child <module> <function> <json kwargs>``) so that its peak memory can be read on its
own: the parent reaps the child with ``os.wait4`` and reports that child's ``ru_maxrss`` (what
``getrusage(RUSAGE_CHILDREN)`` reports for a single child). The parent itself stays small (no Airflow,
PyArrow or DuckDB imported, no data held): Linux carries the parent's peak RSS into a child's
``ru_maxrss`` across fork+exec, so a big parent would inflate every child's figure. Times are
``time.perf_counter`` differences taken inside the child around the measured call only (imports and
set-up excluded).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent

#: One collection window for all generated data (the window only shows in the envelope and the ledger).
WINDOW_START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(hours=1)

PG_HOST = os.environ.get("SECCOLLECT_BENCH_PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SECCOLLECT_BENCH_PGPORT", "5432"))
PG_USER = os.environ.get("SECCOLLECT_BENCH_PGUSER", "postgres")


# --- environment ------------------------------------------------------------------------------------


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the temporary folder and database are removed on the way out
    (a benchmark started in the background ignores SIGINT)."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def add_run_arguments(parser: Any, *, seed: int, quick_help: str) -> None:
    """The options every data-generating benchmark has: --backends, --seed, --quick, --keep."""
    parser.add_argument("--backends", default="duckdb,postgres", help="comma-separated: duckdb, postgres")
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")


def backend_list(args: Any) -> list[str]:
    return [b.strip() for b in args.backends.split(",") if b.strip()]


def prepare_environment(root: Path) -> None:
    """Point Airflow and the staging root at ``root`` before anything imports Airflow.

    Child processes inherit the environment, so they read the same staged files.
    """
    (root / "airflow").mkdir(parents=True, exist_ok=True)
    (root / "staging").mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "SECCOLLECT_STAGING_URL": "file://" + str(root / "staging"),
            "SCARF_NO_ANALYTICS": "true",
            "DO_NOT_TRACK": "1",
        }
    )
    os.environ.pop("SECCOLLECT_STAGING_CONN_ID", None)


@contextmanager
def work_dir(keep: bool = False) -> Iterator[Path]:
    """A temporary folder for staging files and DuckDB databases (removed unless ``keep``)."""
    root = Path(tempfile.mkdtemp(prefix="seccollect-bench-"))
    try:
        yield root
    finally:
        if not keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)


def machine() -> str:
    import duckdb
    import pyarrow

    return (
        f"{os.cpu_count()} cores, {_total_ram_gib():.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, PyArrow {pyarrow.__version__}"
    )


def _total_ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return float("nan")


def command_line() -> str:
    return " ".join([".venv/bin/python", os.path.relpath(sys.argv[0], BENCH_DIR.parent), *sys.argv[1:]])


def load_average() -> str:
    """The 1-minute load average: the machine may be shared, and a busy neighbour shows up here."""
    return f"{os.getloadavg()[0]:.2f}"


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- Netskope-like data -------------------------------------------------------------------------------

_APPS = (
    ("Google Drive", "Cloud Storage"),
    ("Box", "Cloud Storage"),
    ("Microsoft Teams", "Collaboration"),
    ("Slack", "Collaboration"),
    ("Dropbox", "Cloud Storage"),
    ("Salesforce", "CRM"),
    ("Microsoft OneDrive for Business", "Cloud Storage"),
    ("GitHub", "Development Tools"),
)
_SITES = (
    "config.teams.microsoft.com",
    "drive.google.com",
    "news.example.com",
    "test.update.microsoft.com",
    "www.wikipedia.org",
    "files.example.net",
    "login.salesforce.com",
    "api.github.com",
)
_PATHS = (
    "",
    "index.html",
    "v1/sync",
    "api/v2/items?limit=100",
    "download/q3-report-final.xlsx",
    "s/9f8e7d6c5b4a/shared-folder/contracts",
    "oauth2/authorize?client_id=4711&scope=openid",
)
_GEO = (
    ("US", "San Jose"),
    ("US", "Willow Grove"),
    ("IL", "Tel Aviv"),
    ("DE", "Frankfurt"),
    ("IE", "Dublin"),
    ("GB", "London"),
    ("SG", "Singapore"),
)
_POPS = ("US-SJC1", "US-NYC2", "IL-TLV1", "DE-FRA1", "GB-LON2", "SG-SIN1")
_DEVICES = ("Windows Device", "Mac Device", "iOS Device", "Other")
_OSES = ("Windows 10", "Windows 11", "macOS 14", "iOS 17", "unknown")
_ACTIVITIES = ("Browse", "Upload", "Download", "Login Successful", "Edit", "Share", "Create")
_POLICIES = ("Block risky uploads", "Watch finance users", "Block uncategorized sites", "Alert on PII upload")
#: (record type, alert_type, weight) of generated alerts; the first three are the mapped kinds.
ALERT_MIX = (
    ("breach", "Compromised Credential", 15),
    ("connection", "policy", 20),
    ("malsite", "malsite", 15),
    ("nspolicy", "policy", 18),
    ("nspolicy", "DLP", 12),
    ("nspolicy", "watchlist", 8),
    ("nspolicy", "Malware", 8),
    ("anomaly", "uba", 4),
)


class NetskopeLikeGenerator:
    """Deterministic Netskope-shaped raw records (alerts and page/application events), ~400-800 bytes.

    * ``event_fraction`` of the records are page/application events, the rest alerts (``ALERT_MIX``).
    * Mapped alert ids come from small pools shared by all users, so the same id repeats across users
      (different Alerts keys) and for one user across time (one key, many raw alerts).
    * ``missing_id_fraction`` of the mapped alerts carry no id, an empty id or ``0`` (each must become a
      key of its own); ``connection_id`` is ``0`` on every non-connection alert, as Netskope sends it.
    * ``duplicate_fraction`` of the records are re-deliveries of a recent record (same ``_id``, later
      insertion time): the same ``record_id``, sometimes in the same staged part, sometimes not.
    """

    def __init__(
        self,
        seed: int = 7,
        *,
        users: int = 2_000,
        event_fraction: float = 0.0,
        duplicate_fraction: float = 0.02,
        missing_id_fraction: float = 0.06,
        breach_ids: int = 20,
        connection_ids: int = 100,
        malsite_ids: int = 60,
    ) -> None:
        import numpy as np

        self.rng = np.random.default_rng(seed)
        self.users = [f"user{i:05d}@corp{i % 7}.example.org" for i in range(users)]
        self.event_fraction = event_fraction
        self.duplicate_fraction = duplicate_fraction
        self.missing_id_fraction = missing_id_fraction
        self.breach_ids = [f"b-2024{(i % 12) + 1:02d}{(i % 28) + 1:02d}-{i:04d}" for i in range(breach_ids)]
        self.connection_ids = [8594277971962832000 + i * 7919 for i in range(connection_ids)]
        self.malsite_ids = [f"{i:04d}aa11bb22cc33dd44ee55"[:24] for i in range(malsite_ids)]
        weights = np.array([w for _, _, w in ALERT_MIX], dtype=float)
        self.alert_p = weights / weights.sum()
        self._recent: list[dict[str, Any]] = []
        self._serial = 0
        self.base_ts = int(WINDOW_START.timestamp())

    def records(self, n: int, chunk: int = 20_000) -> Iterator[dict[str, Any]]:
        done = 0
        while done < n:
            size = min(chunk, n - done)
            yield from self._chunk(size)
            done += size

    def _chunk(self, size: int) -> Iterator[dict[str, Any]]:
        rng = self.rng
        # Skewed user choice: a few users raise most alerts, as on real tenants.
        user_ix = (len(self.users) * rng.random(size) ** 2.5).astype(int)
        kind_ix = rng.choice(len(ALERT_MIX), size=size, p=self.alert_p)
        is_event = rng.random(size) < self.event_fraction
        is_dup = rng.random(size) < self.duplicate_fraction
        missing = rng.random(size) < self.missing_id_fraction
        ts = self.base_ts + rng.integers(0, 3600, size)
        delay = 1 + rng.exponential(45.0, size).astype(int)
        small = rng.integers(0, 1 << 30, size=(size, 12))
        ids = rng.integers(0, 1 << 62, size=(size, 3), dtype="int64")
        for i in range(size):
            if is_dup[i] and self._recent:
                original = self._recent[int(small[i, 0]) % len(self._recent)]
                copy = dict(original)
                copy["_insertion_epoch_timestamp"] = (
                    original["_insertion_epoch_timestamp"] + 60 + int(small[i, 1] % 1740)
                )
                yield copy
                continue
            s = small[i]
            user = self.users[user_ix[i]]
            app, category = _APPS[s[2] % len(_APPS)]
            site = _SITES[s[3] % len(_SITES)]
            src, dst = _GEO[s[4] % len(_GEO)], _GEO[s[5] % len(_GEO)]
            self._serial += 1
            rec: dict[str, Any] = {
                "_id": f"{int(ids[i, 0]):016x}{self._serial:08x}",
                "timestamp": int(ts[i]),
                "_insertion_epoch_timestamp": int(ts[i] + delay[i]),
                "access_method": "Client",
                "app": app,
                "appcategory": category,
                "device": _DEVICES[s[7] % len(_DEVICES)],
                "os": _OSES[s[8] % len(_OSES)],
                "user": user,
                "userip": f"10.{s[9] % 256}.{s[10] % 256}.{s[11] % 254 + 1}",
                "dstip": f"203.0.113.{s[10] % 254 + 1}",
                "src_country": src[0],
                "dst_location": dst[1],
                "netskope_pop": _POPS[s[11] % len(_POPS)],
                "site": site,
                "url": f"{site}/{_PATHS[s[2] % len(_PATHS)]}",
            }
            if is_event[i]:
                rec.update(
                    {
                        "type": "page" if s[3] % 2 else "application",
                        "alert": "no",
                        "activity": _ACTIVITIES[s[4] % len(_ACTIVITIES)],
                        "numbytes": int(s[5] % 5_000_000),
                        "page_duration": int(s[6] % 600),
                    }
                )
            else:
                self._alert(rec, ALERT_MIX[kind_ix[i]], s, ids[i], bool(missing[i]))
            if len(self._recent) < 200_000:
                self._recent.append(rec)
            else:
                self._recent[int(s[1]) % 200_000] = rec
            yield rec

    def _alert(
        self, rec: dict[str, Any], kind: tuple[str, str, int], s: Any, ids: Any, missing: bool
    ) -> None:
        rtype, alert_type, _ = kind
        rec.update(
            {
                "type": rtype,
                "alert": "yes",
                "alert_type": alert_type,
                "request_id": int(ids[1]),
                "connection_id": 0,
                "action": ("alert", "block", "useralert")[s[1] % 3],
            }
        )
        if rtype == "breach":
            rec.update({"alert_name": "Compromised credential detected", "breach_score": 40 + int(s[2] % 60)})
            if missing:
                if s[3] % 2:
                    rec["breach_id"] = ""
            else:
                rec["breach_id"] = self.breach_ids[s[3] % len(self.breach_ids)]
        elif rtype == "connection":
            rec.update({"alert_name": "Block uncategorized sites", "transaction_id": int(ids[2])})
            if not missing:
                rec["connection_id"] = self.connection_ids[s[3] % len(self.connection_ids)]
        elif rtype == "malsite":
            host = f"bad{s[3] % 97}.example.net"
            rec.update(
                {
                    "alert_name": f"{host}/x",
                    "url": f"{host}/x",
                    "site": host,
                    "malsite_category": "['Malicious Site']",
                    "severity_level": 1 + int(s[4] % 4),
                }
            )
            if missing:
                rec["malsite_id"] = 0 if s[5] % 2 else None
            else:
                rec["malsite_id"] = self.malsite_ids[s[3] % len(self.malsite_ids)]
        else:
            policy = _POLICIES[s[3] % len(_POLICIES)]
            rec.update({"alert_name": policy, "policy": policy, "policy_id": f"{int(ids[2]):016x}"})
            if alert_type == "DLP":
                rec.update({"dlp_profile": "PII", "dlp_incident_id": int(ids[2] >> 1)})
            elif alert_type == "Malware":
                rec.update({"malware_name": "Trojan.GenericKD.4711", "malware_id": f"{int(ids[2]):016x}"})


def stage_netskope(
    n: int,
    *,
    seed: int,
    content_type: str,
    dag_id: str,
    task_id: str,
    part_rows: int = 50_000,
    **generator_options: Any,
) -> tuple[list[Any], dict[str, Any]]:
    """Generate ``n`` records, wrap them in the envelope exactly as the collect operator does (for
    alerts with the ``alert_fields`` derived from each Syslog part), and stage them with
    :class:`StagingWriter`. Returns the batches and data facts (``alert_fields_seconds``: what deriving
    the alert fields added to the collect side)."""
    from seccollect.records.envelope import EnvelopeContext, MsgOrigin
    from seccollect.staging.store import StagingWriter, window_folder
    from seccollect.vendors.netskope.alert_mapping import alert_fields
    from seccollect.vendors.netskope.operators import MSG_CLASS

    envelope = EnvelopeContext(
        tenant="acme",
        instance="netskope_acme",
        content_type=content_type,
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        ingest_time=datetime.now(UTC),
    )
    origin = MsgOrigin(MSG_CLASS[content_type], "netskope", "netskope", "web_security")
    writer = StagingWriter(window_folder(dag_id, WINDOW_START, WINDOW_END, task_id), part_rows=part_rows)
    raw_bytes = 0
    fields_seconds = 0.0
    record_ids: set[str] = set()

    def timed_alert_fields(part: Any) -> Any:
        nonlocal fields_seconds
        started = time.perf_counter()
        try:
            return alert_fields(part)
        finally:
            fields_seconds += time.perf_counter() - started

    if content_type == "alert":
        writer.derive("syslog", "alert_fields", timed_alert_fields)
    for raw in NetskopeLikeGenerator(seed, **generator_options).records(n):
        row = envelope.wrap(
            origin, raw, vendor_id=str(raw["_id"]), event_time=datetime.fromtimestamp(raw["timestamp"], UTC)
        )
        raw_bytes += len(row["raw"])
        record_ids.add(row["record_id"])
        writer.add("syslog", row)
    batches = writer.close()
    syslog = [b for b in batches if b.table == "syslog"]
    staged_bytes = sum(Path(b.path.removeprefix("file://")).stat().st_size for b in syslog)
    facts = {
        "rows": n,
        "distinct_record_ids": len(record_ids),
        "duplicates": n - len(record_ids),
        "avg_raw_bytes": raw_bytes / max(n, 1),
        "parts": len(syslog),
        "parquet_mib": staged_bytes / 2**20,
        "alert_fields_seconds": fields_seconds,
    }
    return batches, facts


def batches_to_json(batches: list[Any]) -> list[dict[str, Any]]:
    return [b.to_xcom() for b in batches]


def batches_from_json(data: list[dict[str, Any]]) -> list[Any]:
    from seccollect.staging.store import StagedBatch

    return [StagedBatch.from_xcom(b) for b in data]


def warm_up(batches: list[dict[str, Any]]) -> list[Any]:
    """Decode the batches and pay one-time costs (importing Airflow's ObjectStoragePath, fsspec set-up)
    before any timer starts, as a running Airflow task already has; returns the batches."""
    from seccollect.staging.store import read_batch

    staged = batches_from_json(batches)
    if staged:
        read_batch(staged[0])
    return staged


def window_key(dag_id: str, content_type: str) -> Any:
    from seccollect.warehouse.base import WindowKey

    return WindowKey(dag_id, content_type, WINDOW_START, WINDOW_END)


# --- PostgreSQL ----------------------------------------------------------------------------------------


def pg_params(dbname: str = "postgres") -> dict[str, Any]:
    return {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "dbname": dbname}


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(autocommit=True, **pg_params()) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(autocommit=True, **pg_params()) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_checkpoint() -> None:
    """Flush dirty buffers and WAL so one measured step does not pay for the previous one's writes."""
    import psycopg

    with psycopg.connect(autocommit=True, **pg_params()) as admin:
        admin.execute("CHECKPOINT")


def pg_version() -> str:
    import psycopg

    with psycopg.connect(autocommit=True, **pg_params()) as admin:
        row = admin.execute("SHOW server_version").fetchone()
        shared = admin.execute("SHOW shared_buffers").fetchone()
        wal = admin.execute("SHOW max_wal_size").fetchone()
    return f"PostgreSQL {row[0].split()[0]} (shared_buffers {shared[0]}, max_wal_size {wal[0]}, fsync on)"


# --- child-process steps ------------------------------------------------------------------------------


def run_step(module: str, function: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``bench/<module>.py:<function>(**kwargs)`` in a fresh child process.

    Returns the function's result (a JSON dict) plus ``peak_rss_mib``: the child's ``ru_maxrss`` read
    with ``os.wait4`` when it is reaped.
    """
    cmd = [sys.executable, str(BENCH_DIR / "_common.py"), "child", module, function, json.dumps(kwargs)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        out = proc.stdout.read()
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): do not leave the step running
        proc.kill()
        proc.wait()
        raise
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(out)
        raise RuntimeError(f"step {module}.{function} failed with exit code {proc.returncode}")
    result_lines = [line for line in out.splitlines() if line.startswith("@@RESULT ")]
    if not result_lines:
        raise RuntimeError(f"step {module}.{function} printed no result:\n{out}")
    result = json.loads(result_lines[-1].removeprefix("@@RESULT "))
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    return result


def rss_now_mib() -> float:
    """Current peak RSS of this process (KiB on Linux), used by a child to report its baseline."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Stopwatch:
    """Accumulates ``time.perf_counter`` intervals under names, exclusively: time spent in a nested
    interval counts for the inner name only, so the totals add up to the time measured."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._stack: list[str] = []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self._stack.append(name)
        try:
            yield
        finally:
            self._stack.pop()
            elapsed = time.perf_counter() - start
            self.totals[name] = self.totals.get(name, 0.0) + elapsed
            if self._stack:
                parent = self._stack[-1]
                self.totals[parent] = self.totals.get(parent, 0.0) - elapsed


def _child_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("module")
    parser.add_argument("function")
    parser.add_argument("kwargs")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(BENCH_DIR))
    func = getattr(importlib.import_module(args.module), args.function)
    result = func(**json.loads(args.kwargs))
    print("@@RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        _child_main(sys.argv[2:])
    else:
        sys.exit("usage: _common.py child <module> <function> <json kwargs> (used by the benchmarks)")
