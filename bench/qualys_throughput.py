"""Qualys host detections: the DAG's tasks beside a client that only reads the same pages; peak memory.

Everything runs on this machine: the Qualys simulator (``seccollect_dev.simulators.qualys``) serves
``--hosts`` hosts x ``--detections`` detections, all processed inside one hour, from its own process
(generated page by page, never held). In the same run, one after the other, each in a fresh child
process (this file with ``--child``) so its time and peak memory are its own:

1. **ceiling**: a client that only reads the pages: it GETs the first page and every ``WARNING`` URL
   with ``requests`` (Basic auth, ``X-Requested-With``), reads the body in 1 MiB chunks and finds the
   next URL with a regular expression on the body's tail. What the simulator can serve on this
   machine: no connector can be faster.
2. **collect**: ``QualysCollectOperator.execute`` for the window, as the DAG's ``collect_vulnerabilities``
   task runs it (stream parse, one record per detection, envelope, Parquet staging to a real folder).
3. **load**: ``WarehouseLoadOperator.execute`` of what the collect task staged (DuckDB file, or a
   PostgreSQL database with ``--backends postgres``), as ``load_vulnerabilities`` runs it.

Detections per second = detections / (collect + load seconds). Peak RSS is each child's own ``VmHWM``.

    .venv/bin/python bench/qualys_throughput.py            # 100,000 hosts x 10 = 1,000,000 detections
    .venv/bin/python bench/qualys_throughput.py --quick    # 10,000 hosts x 10 = 100,000 detections
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve()
WINDOW_START = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(hours=1)
USER, PASSWORD = "bench_user", "bench-pass-5d2a"
CONN_ID, WAREHOUSE_CONN_ID = "qualys_bench", "seccollect_warehouse"
DETECTION_PATH = "/api/5.0/fo/asset/host/vm/detection/"
TARGETS = {"peak_mib": 400, "detections_per_s": 20_000}


def _rss_mib() -> float:
    """Peak resident set of this process so far (``VmHWM``: its own memory only)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the simulator's process ------------------------------------------------------------------------


def serve(hosts: int, detections: int) -> None:
    """(child) Serve the data set until stdin closes; print the URL first."""
    from seccollect_dev.simulators.base import SimulatorServer
    from seccollect_dev.simulators.qualys import QualysDataset, QualysOptions, QualysSimulator

    dataset = QualysDataset(seed=7, start=WINDOW_START, end=WINDOW_END, hosts=hosts, detections_per_host=detections,
                            stale_every=0)
    app = QualysSimulator(dataset, users={USER: PASSWORD},
                          options=QualysOptions(rate_limit=1_000_000, concurrency_limit=4, hosts_per_chunk=50))
    with SimulatorServer(app) as server:
        print(server.url, flush=True)
        sys.stdin.read()


# --- measured children -------------------------------------------------------------------------------


def child_ceiling(url: str, truncation_limit: int) -> dict[str, Any]:
    """Read every page, doing nothing with it but finding the next URL."""
    import requests

    session = requests.Session()
    session.auth = (USER, PASSWORD)
    session.headers["X-Requested-With"] = "bench"
    params: dict[str, Any] | None = {
        "action": "list", "truncation_limit": truncation_limit, "status": "New,Active,Fixed,Re-Opened",
        "show_asset_id": 1, "show_results": 1, "show_igs": 0, "output_format": "XML",
        "detection_processed_after": "2026-02-28T23:59:59Z", "detection_processed_before": "2026-03-01T01:00:00Z"}
    next_url: str | None = url + DETECTION_PATH
    pages = size = 0
    pattern = re.compile(rb"<URL><!\[CDATA\[\s*(.*?)\s*\]\]></URL>", re.S)
    start, cpu = time.perf_counter(), time.process_time()
    while next_url:
        with session.get(next_url, params=params, stream=True, timeout=300) as response:
            response.raise_for_status()
            tail = b""
            for chunk in response.iter_content(1 << 20):
                size += len(chunk)
                tail = (tail + chunk)[-4096:]
        found = pattern.search(tail)
        next_url, params = (found.group(1).decode() if found else None), None
        pages += 1
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "pages": pages, "bytes": size}


def _environment(url: str, backend: str, target: str, staging: str, memory_limit: str = "") -> None:
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "qualys", "host": url + "/", "login": USER, "password": PASSWORD,
         "extra": {"concurrency_limit": 4, "rate_limit": 1_000_000}})  # the simulator's limits
    if backend == "duckdb":
        # memory_limit bounds DuckDB's own buffers (it spills beyond them): a deployment setting of the
        # warehouse connection, the only one the load's peak depends on.
        warehouse = {"conn_type": "duckdb", "host": target, **({"extra": {"memory_limit": memory_limit}} if memory_limit else {})}
    else:
        warehouse = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": target}
    os.environ[f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}"] = json.dumps(warehouse)
    os.environ["SECCOLLECT_STAGING_URL"] = "file://" + staging


def _dag() -> Any:
    from airflow.sdk import DAG

    return DAG("acme-qualys-bench", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC))


class _TI:
    map_index = -1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def child_collect(url: str, backend: str, target: str, staging: str, truncation_limit: int) -> dict[str, Any]:
    _environment(url, backend, target, staging)
    import pyarrow.parquet  # noqa: F401 - imports a task pays once, excluded from the timer

    from seccollect.vendors.qualys.operators import QualysCollectOperator
    from seccollect.warehouse import open_warehouse

    with open_warehouse(WAREHOUSE_CONN_ID) as warehouse:
        warehouse.ensure_schema()
    with _dag():
        collect = QualysCollectOperator(
            task_id="collect_vulnerabilities", tenant="acme", instance_name="bench", content_type="vulnerabilities",
            qualys_conn_id=CONN_ID, truncation_limit=truncation_limit, settle_lag_seconds=0,
            warehouse_conn_id=WAREHOUSE_CONN_ID, window_start=WINDOW_START.isoformat(),
            window_end=WINDOW_END.isoformat())
    start, cpu = time.perf_counter(), time.process_time()
    result = collect.execute({"ti": _TI(), "run_id": "bench"})
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": seconds, "cpu": cpu, "figures": result.figures, "staged": result.serialize(),
            "peak_rss_mib": _rss_mib()}


def child_load(url: str, backend: str, target: str, staging: str, staged: dict[str, Any],
               memory_limit: str = "") -> dict[str, Any]:
    _environment(url, backend, target, staging, memory_limit)
    from seccollect.operators.load import WarehouseLoadOperator
    from seccollect.staging.handoff import StagedWindow
    from seccollect.warehouse import open_warehouse

    window = StagedWindow.deserialize(staged, StagedWindow.__version__)
    with _dag():
        load = WarehouseLoadOperator(task_id="load_vulnerabilities", staged=[window], content_type="vulnerabilities",
                                     connector_type="qualys", warehouse_conn_id=WAREHOUSE_CONN_ID)
    start, cpu = time.perf_counter(), time.process_time()
    summary = load.execute({"run_id": "bench"})
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    with open_warehouse(WAREHOUSE_CONN_ID) as warehouse:
        rows = warehouse.query("SELECT count(*) FROM scans")[0][0]
    return {"seconds": seconds, "cpu": cpu, "scans_rows": rows, "summary": summary, "peak_rss_mib": _rss_mib()}


def run_child(function: str, **kwargs: Any) -> dict[str, Any]:
    # The arguments go through a file: a window staged as a thousand parts is too long for argv.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(kwargs, fh)
    try:
        proc = subprocess.run([sys.executable, str(BENCH), "--child", function, fh.name],
                              stdout=subprocess.PIPE, text=True, check=False)
    finally:
        os.unlink(fh.name)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-5000:])
        raise RuntimeError(f"{function} failed with exit code {proc.returncode}")
    result = json.loads(lines[-1].removeprefix("@@RESULT "))
    result.setdefault("peak_rss_mib", result.get("peak_rss_mib"))
    return result


# --- the run ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--detections", type=int, default=10, help="detections per host")
    parser.add_argument("--truncation-limit", type=int, default=1000, help="hosts per page")
    parser.add_argument("--quick", action="store_true", help="10,000 hosts (100,000 detections)")
    parser.add_argument("--backends", default="duckdb", help="comma-separated: duckdb, postgres")
    parser.add_argument("--duckdb-memory-limit", default="128MB",
                        help="the DuckDB warehouse connection's memory_limit ('' for DuckDB's default, 80%% of RAM)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(*args.serve)
        return 0
    if args.child:
        function, kwargs_file = args.child
        result = globals()[f"child_{function}"](**json.loads(Path(kwargs_file).read_text()))
        result.setdefault("peak_rss_mib", _rss_mib())
        print("@@RESULT " + json.dumps(result, default=str), flush=True)
        return 0
    hosts = 10_000 if args.quick else args.hosts
    detections = hosts * args.detections
    root = Path(tempfile.mkdtemp(prefix="qualys-bench-"))
    os.environ.update({"AIRFLOW_HOME": str(root / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                       "SCARF_NO_ANALYTICS": "true", "DO_NOT_TRACK": "1",
                       "SECCOLLECT_SLOTS_DIR": str(root / "slots")})
    server = subprocess.Popen([sys.executable, str(BENCH), "--serve", str(hosts), str(args.detections)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        load_before = os.getloadavg()[0]
        print(f"# Qualys detections: {hosts:,} hosts x {args.detections} = {detections:,} detections, "
              f"truncation_limit {args.truncation_limit}, DuckDB memory_limit {args.duckdb_memory_limit or 'default'}; {platform.python_version()}, {os.cpu_count()} cores, "
              f"load average {load_before:.2f}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
        ceiling = run_child("ceiling", url=url, truncation_limit=args.truncation_limit)
        print(f"ceiling (read-only client): {ceiling['seconds']:.1f} s, {detections / ceiling['seconds']:,.0f} "
              f"detections/s, {ceiling['pages']} pages, {ceiling['bytes'] / 2**20:,.0f} MiB, peak "
              f"{ceiling['peak_rss_mib']:.0f} MiB", flush=True)
        ok = True
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            staging = root / f"staging-{backend}"
            target = str(root / "bench.duckdb") if backend == "duckdb" else _create_pg()
            try:
                collect = run_child("collect", url=url, backend=backend, target=target, staging=str(staging),
                                    truncation_limit=args.truncation_limit)
                load = run_child("load", url=url, backend=backend, target=target, staging=str(staging),
                                 staged=collect["staged"], memory_limit=args.duckdb_memory_limit)
            finally:
                if backend == "postgres":
                    _drop_pg(target)
            total = collect["seconds"] + load["seconds"]
            rate = detections / total
            assert collect["figures"]["staged"] == detections, collect["figures"]
            assert load["scans_rows"] == detections, load["scans_rows"]
            peak = max(collect["peak_rss_mib"], load["peak_rss_mib"])
            ok &= peak <= TARGETS["peak_mib"] and (backend != "duckdb" or rate >= TARGETS["detections_per_s"])
            print(f"{backend}: collect {collect['seconds']:.1f} s, CPU {collect['cpu']:.1f} s (peak {collect['peak_rss_mib']:.0f} MiB, "
                  f"{collect['figures'].get('api_pages')} pages), load {load['seconds']:.1f} s, CPU {load['cpu']:.1f} s (peak "
                  f"{load['peak_rss_mib']:.0f} MiB); {rate:,.0f} detections/s = "
                  f"{rate / (detections / ceiling['seconds']):.0%} of the ceiling; "
                  f"{detections / (collect['cpu'] + load['cpu']):,.0f} detections per CPU-second", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}; targets: every task <= {TARGETS['peak_mib']} MiB, "
              f">= {TARGETS['detections_per_s']:,} detections/s into DuckDB: {'met' if ok else 'NOT met'}")
        return 0 if ok else 1
    finally:
        server.stdin.close()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _create_pg() -> str:
    import psycopg

    name = f"qualys_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
