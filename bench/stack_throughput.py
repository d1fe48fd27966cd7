"""CloudTrail through the CeleryExecutor: events/s on one and on two workers, and the executor's per-task cost.

One ``make stack`` (:mod:`seccollect_dev.stack`: PostgreSQL metadata and warehouse, Redis, S3 staging
in moto, api-server, scheduler, dag-processor, triggerer, two Celery workers) serves the whole run.
A CloudTrail instance of its own (``acme-aws_cloudtrail-bench``, 15-minute windows, 3 objects per
mapped collect task) reads a moto bucket filled with realistic records (the generator of
``bench/cloudtrail_throughput.py``), 12 objects of 1,000 records per window:

1. **dag.test()**: the window just before the hour, in a child process with the stack's environment
   (same databases, staging and connections), while the DAG is paused. Its records and object ledger
   are then deleted (the window ledger stays, for the coverage check).
2. **one worker**: worker 2 is stopped; the DAG is unpaused and the hour's four windows are backfilled
   through the REST API. Timed from the first task's start to the last task's end (the API's times).
3. **two workers**: the records and object ledger are deleted again (so every object is read and
   loaded again), worker 2 is started, and the same hour is backfilled again ("All Runs").

Per-task cost of the executor: the mean task duration under dag.test() and under Celery (1 worker),
and the mean wait from queued to started.

    .venv/bin/python bench/stack_throughput.py                  # 1,000 records per object
    .venv/bin/python bench/stack_throughput.py --records 10000  # a CPU-bound hour (480,000 events)

Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: A CloudTrail instance of its own over a bucket of realistic records (bench/cloudtrail_throughput.py's
#: generator): the demo bucket holds too few events for a throughput figure.
BUCKET = "seccollect-bench-stack-cloudtrail"
DAG_ID = "acme-aws_cloudtrail-bench"
OBJECTS_PER_WINDOW = 12
RECORDS_PER_OBJECT = 1000
ACCOUNTS = 4

CHILD = """
import json, sys, time
from datetime import datetime
from seccollect.dag_factory.builder import register_dags
start, end = datetime.fromisoformat(sys.argv[1]), datetime.fromisoformat(sys.argv[2])
ns = {}
register_dags(ns, dag_id=sys.argv[3])
dag = ns[sys.argv[3]]
began = time.monotonic()
run = dag.test(logical_date=start, run_conf={"window_start": start.isoformat(), "window_end": end.isoformat()})
wall = time.monotonic() - began
tis = [{"task_id": ti.task_id, "state": str(ti.state),
        "duration": (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else None}
       for ti in run.get_task_instances()]
print("RESULT " + json.dumps({"state": str(run.state), "wall": wall, "tis": tis}))
"""


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _backfill(stack: Any, first: datetime, last: datetime, behavior: str, since: datetime) -> list[dict[str, Any]]:
    """Backfill [first, last] and wait until every window's run started after ``since`` has ended;
    the task instances of those runs that started after ``since``."""
    api = stack.airflow.api()
    # The scheduler marks a backfill complete a little after its last run: only then may another start.
    while any(b["completed_at"] is None for b in api.get("backfills", dag_id=DAG_ID)["backfills"]):
        time.sleep(1)
    try:
        api.request("POST", "backfills", json={"dag_id": DAG_ID, "from_date": first.isoformat(),
                                              "to_date": last.isoformat(), "reprocess_behavior": behavior,
                                              "max_active_runs": 4})
    except RuntimeError as exc:  # unpausing ran the only missing window already
        if "No runs to create" not in str(exc):
            raise
    wanted = {first + timedelta(minutes=15 * i) for i in range(int((last - first) / timedelta(minutes=15)) + 1)}
    while True:
        stack.airflow.check_alive()
        runs = {_ts(r["logical_date"]): r for r in api.dag_runs(DAG_ID) if _ts(r["logical_date"]) in wanted}
        fresh = {k: r for k, r in runs.items() if r["start_date"] and _ts(r["start_date"]) >= since}
        if set(fresh) >= wanted and all(r["state"] in ("success", "failed") for r in fresh.values()):
            break
        time.sleep(2)
    failed = [r["logical_date"] for r in fresh.values() if r["state"] != "success"]
    if failed:
        raise RuntimeError(f"runs failed: {failed}; logs in {stack.options.root / 'logs'}")
    tis: list[dict[str, Any]] = []
    for run in fresh.values():
        tis += [t for t in api.get(f"dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
                if t["start_date"] and _ts(t["start_date"]) >= since]
    return tis


def _span(tis: list[dict[str, Any]]) -> float:
    starts = [_ts(t["start_date"]) for t in tis if t["start_date"]]
    ends = [_ts(t["end_date"]) for t in tis if t["end_date"]]
    return (max(ends) - min(starts)).total_seconds()


def _fill_bucket(moto_url: str, first: datetime, end: datetime) -> int:
    """OBJECTS_PER_WINDOW CloudTrail objects per 15-minute window of [first, end); the events written."""
    import random

    from cloudtrail_throughput import CloudTrailGenerator, cloudtrail_object, object_key

    from seccollect_dev.moto_server import s3_client

    client = s3_client(moto_url)
    client.create_bucket(Bucket=BUCKET)
    gen, rng = CloudTrailGenerator(seed=7, accounts=ACCOUNTS), random.Random(7)
    written, window = 0, first
    while window < end:
        for i in range(OBJECTS_PER_WINDOW):
            delivered = window + timedelta(minutes=15) * (i + 0.5) / OBJECTS_PER_WINDOW
            account = gen.accounts[i % ACCOUNTS]
            body, _ = cloudtrail_object(gen, account, delivered, RECORDS_PER_OBJECT)
            client.put_object(Bucket=BUCKET, Key=object_key(account, delivered, rng), Body=body)
            written += RECORDS_PER_OBJECT
        window += timedelta(minutes=15)
    return written


def _forget_loaded(stack: Any) -> None:
    """Delete the instance's records and read objects, so a re-run reads and loads every object again; the
    window ledger stays (the coverage check must keep seeing the windows collected)."""
    import psycopg

    with psycopg.connect(**stack.pg.params(stack.options.warehouse_database)) as conn:
        conn.execute("DELETE FROM object_ledger WHERE dag_id = %s", (DAG_ID,))
        conn.execute("DELETE FROM aws_events WHERE instance = 'bench'")


def _events(stack: Any) -> int:
    import psycopg

    with psycopg.connect(**stack.pg.params(stack.options.warehouse_database)) as conn:
        return int(conn.execute("SELECT count(*) FROM aws_events WHERE instance = 'bench'").fetchone()[0])


def main(argv: list[str] | None = None) -> int:
    global RECORDS_PER_OBJECT
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=RECORDS_PER_OBJECT,
                        help=f"records per object ({RECORDS_PER_OBJECT:,}); the hour holds 48 objects")
    args = parser.parse_args(argv)
    RECORDS_PER_OBJECT = args.records
    from seccollect_dev.stack import StackOptions, celery_stack

    suffix = uuid.uuid4().hex[:8]
    root = Path(tempfile.mkdtemp(prefix="stack-bench-"))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    hour_end = now.replace(minute=now.minute - now.minute % 15)  # the last complete 15-minute window ends here
    first, last = hour_end - timedelta(hours=1), hour_end - timedelta(minutes=15)
    from cloudtrail_throughput import ORG_ID, REGION

    # The instance starts at the dag.test() window and does not catch up by itself: only the runs asked for.
    instance = {
        "name": "bench", "tenant": "acme", "type": "aws_cloudtrail", "conn_id": "aws_demo",
        "sub_type": "cloudtrail", "bucket": BUCKET, "prefix": f"{ORG_ID}/AWSLogs/{ORG_ID}/*/CloudTrail/{REGION}",
        "file_type": "gzip", "interval_minutes": 15, "lookback_minutes": 15, "batch_size": 3,
        "catchup": False, "start_date": (first - timedelta(minutes=15)).isoformat(),
    }
    options = StackOptions(root=root, metadata_database=f"seccollect_bench_meta_{suffix}",
                           warehouse_database=f"seccollect_bench_wh_{suffix}", extra_instances=[instance])
    began = time.monotonic()
    try:
        with celery_stack(options) as stack:
            from seccollect_dev.demo import wait_for_dags

            api = stack.airflow.api()
            expected = _fill_bucket(stack.urls["aws"], first - timedelta(minutes=15), hour_end)
            expected -= OBJECTS_PER_WINDOW * RECORDS_PER_OBJECT  # the dag.test() window's
            wait_for_dags(api, [DAG_ID])
            # Per task: the window before the hour via dag.test() (its own logical date), in a child with
            # the stack's environment, first, while the DAG is paused; the Celery side is the one-worker
            # phase's task instances. The warehouse is emptied after it, so the phases start alike.
            w_start = first - timedelta(minutes=15)
            child = subprocess.run(
                [sys.executable, "-c", CHILD, w_start.isoformat(), first.isoformat(), DAG_ID],
                env=stack.airflow.environment(), capture_output=True, text=True, timeout=600)
            lines = [ln for ln in child.stdout.splitlines() if ln.startswith("RESULT ")]
            if not lines:
                raise RuntimeError(child.stdout[-3000:] + child.stderr[-3000:])
            test_run = json.loads(lines[-1][len("RESULT "):])
            if not test_run["state"].endswith("success"):
                raise RuntimeError(f"the dag.test() window ended {test_run['state']}: {test_run['tis']}\n"
                                   + child.stdout[-3000:] + child.stderr[-3000:])
            _forget_loaded(stack)

            worker2 = stack.airflow.stop_component("celery-worker-2")
            since = datetime.now(UTC)
            api.set_paused(DAG_ID, False)
            time.sleep(5)  # unpausing runs the latest window; a backfill racing it crashes the scheduler
            one = _backfill(stack, first, last, "none", since)
            events_one = _events(stack)
            _forget_loaded(stack)
            stack.airflow.start_component("celery-worker-2", worker2)
            two = _backfill(stack, first, last, "completed", datetime.now(UTC))
            events_two = _events(stack)

    finally:
        from seccollect_dev.airflow_stack import machine_postgres

        pg = options.pg or machine_postgres()
        if pg is not None:
            pg.drop_database(options.metadata_database)
            pg.drop_database(options.warehouse_database)

    eps_one, eps_two = events_one / _span(one), events_two / _span(two)
    celery_durations = [t["duration"] for t in one if t.get("duration") is not None]
    queue_waits = [(_ts(t["start_date"]) - _ts(t["queued_when"])).total_seconds()
                   for t in one if t.get("queued_when") and t.get("start_date")]
    test_durations = [t["duration"] for t in test_run["tis"] if t["duration"] is not None]
    print(f"\nCloudTrail, {OBJECTS_PER_WINDOW} objects x {RECORDS_PER_OBJECT} records per 15-minute window, hour {first:%H:%M}-{hour_end:%H:%M} UTC: {expected} events in the bucket; "
          f"loaded {events_one} (1 worker), {events_two} (2 workers). Whole run {time.monotonic() - began:.0f} s.\n")
    print("| measure | 1 worker | 2 workers |")
    print("|---|---|---|")
    print(f"| first task start → last task end (s) | {_span(one):.1f} | {_span(two):.1f} |")
    print(f"| events/s | {eps_one:.0f} | {eps_two:.0f} |")
    print(f"| **2 workers ÷ 1 worker** | | **{eps_two / eps_one:.2f}×** |")
    print(f"| task instances | {len(one)} | {len(two)} |")
    print()
    print("| per task | dag.test() | CeleryExecutor (1 worker) |")
    print("|---|---|---|")
    print(f"| mean task duration (s) | {statistics.mean(test_durations):.2f} | {statistics.mean(celery_durations):.2f} |")
    print(f"| mean queued → started (s) | – | {statistics.mean(queue_waits):.2f} |")
    print(f"| one window, wall (s) | {test_run['wall']:.1f} ({len(test_run['tis'])} tasks) | |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    sys.exit(main())
