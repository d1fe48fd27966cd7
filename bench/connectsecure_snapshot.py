"""ConnectSecure full pull with change detection, beside a client that only pages (the ceiling).

A ConnectSecure simulator with ``--assets`` assets runs in its own process on 127.0.0.1 (its memory is
not any task's). For each backend, three pulls of the asset list, each as the DAG's two tasks, each
task in a fresh child process (time and peak RSS its own):

* **collect**: ``ConnectSecureCollectOperator.execute`` (authorize, anchored offset paging of
  ``--page-size`` rows, identity + content hash, envelope, Parquet staging);
* **load**: ``WarehouseLoadOperator.execute`` (snapshot comparison with ``snapshot_state``, insert of
  the new and changed rows, removals, ledger, in one transaction).

Pull 1 loads everything; pull 2 (nothing changed) must load zero rows; before pull 3, ``--changed``
of the assets change (``/_sim/connectsecure/mutate``) and exactly those must load. Beside them, in the
same run and against the same simulator, the **ceiling**: a client that only authorizes and pages
through the list with ``requests`` and ``json.loads`` (skip += limit), keeping nothing.

    .venv/bin/python bench/connectsecure_snapshot.py            # 100,000 assets (the issue's size)
    .venv/bin/python bench/connectsecure_snapshot.py --quick    # 10,000 assets (~1 min)

Exits non-zero when a pull loads a wrong number of rows. Targets: <= 60 s and <= 500 MiB per task.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

CONN_ID = "cs_bench"
TENANT, CLIENT_ID, SECRET = "acme", "bench-client", "bench-secret-0123456789"
START = datetime(2026, 3, 1, tzinfo=UTC)
TARGET_SECONDS, TARGET_MIB = 60.0, 500.0


# --- the simulator process ------------------------------------------------------------------------


def serve(assets: int) -> None:
    """Serve the simulator until stdin closes; print its URL first."""
    from seccollect_dev.simulators.base import SimulatorServer
    from seccollect_dev.simulators.connectsecure import ConnectSecureDataset, ConnectSecureSimulator

    dataset = ConnectSecureDataset(seed=7, assets=assets, remediation=10, plans=5, suppressions=10)
    app = ConnectSecureSimulator(dataset, tenant=TENANT, client_id=CLIENT_ID, client_secret=SECRET)
    with SimulatorServer(app) as server:
        print(server.url, flush=True)
        sys.stdin.read()


# --- child steps ----------------------------------------------------------------------------------


def ceiling(url: str, page_size: int) -> dict[str, Any]:
    """Only page through the list: authorize, then skip += limit until total, keeping nothing."""
    import base64

    import requests

    session = requests.Session()
    start = time.perf_counter()
    token = base64.b64encode(f"{TENANT}+{CLIENT_ID}:{SECRET}".encode()).decode()
    auth = session.post(f"{url}/w/authorize", json={}, headers={"Client-Auth-Token": token}, timeout=60).json()
    headers = {"Authorization": f"Bearer {auth['access_token']}", "X-USER-ID": auth["user_id"]}
    skip = rows = 0
    while True:
        body = session.get(f"{url}/r/asset/assets", params={"skip": skip, "limit": page_size, "order_by": "id asc"},
                           headers=headers, timeout=120).json()
        rows += len(body["data"])
        skip += page_size
        if skip >= body["total"] or not body["data"]:
            break
    return {"seconds": time.perf_counter() - start, "rows": rows}


def collect(window: int, page_size: int) -> dict[str, Any]:
    from airflow.sdk import DAG

    from seccollect.vendors.connectsecure.operators import ConnectSecureCollectOperator

    start, end = START + timedelta(hours=window), START + timedelta(hours=window + 1)
    with DAG("bench-connectsecure", schedule=None):
        operator = ConnectSecureCollectOperator(
            task_id="collect_asset", tenant="acme", instance_name="bench", content_type="asset",
            connectsecure_conn_id=CONN_ID, page_size=page_size,
            window_start=start.isoformat(), window_end=end.isoformat(),
        )
    _warm_collect()
    began = time.perf_counter()
    staged = operator.execute({})
    return {"seconds": time.perf_counter() - began, "staged": staged.serialize(), "figures": dict(staged.figures)}


def _warm_collect() -> None:
    """Pay the imports a running worker has already paid (Airflow's object storage, PyArrow's Parquet
    writer, the HTTP stack) before the timer starts."""
    import importlib

    for module in ("pyarrow.parquet", "requests", "tenacity", "seccollect.http.client", "seccollect.http.auth",
                   "seccollect.http.anchored_paging", "seccollect.records.intake", "seccollect.staging.store",
                   "seccollect.vendors.connectsecure.hook", "seccollect.records.values"):
        importlib.import_module(module)
    from airflow.sdk import ObjectStoragePath

    ObjectStoragePath(os.environ["SECCOLLECT_STAGING_URL"]).exists()


def load(staged: dict[str, Any]) -> dict[str, Any]:
    from airflow.sdk import DAG

    from seccollect.operators.load import WarehouseLoadOperator
    from seccollect.staging.handoff import StagedWindow

    window = StagedWindow.deserialize(staged, 1)
    _common.warm_up([b.to_xcom() for b in window.batches[:1]])
    with DAG("bench-connectsecure", schedule=None):
        operator = WarehouseLoadOperator(task_id="load_asset", staged=window, content_type="asset",
                                         connector_type="connectsecure")
    import importlib

    for module in ("duckdb", "psycopg", "seccollect.warehouse.duckdb", "seccollect.warehouse.postgres",
                   "seccollect.vendors.connectsecure.spec"):
        importlib.import_module(module)
    began = time.perf_counter()
    report = operator.execute({"run_id": f"bench-{window.window_start.isoformat()}"})
    return {"seconds": time.perf_counter() - began, "report": report}


# --- the parent -------------------------------------------------------------------------------------


def _mutate(url: str, changes: int) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{url}/_sim/connectsecure/mutate", data=json.dumps({"collection": "asset", "changes": changes}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 assets")
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of assets changed before pull 3")
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--pulls", type=int, default=3, choices=(1, 2, 3), help="how many of the three pulls")
    parser.add_argument("--duckdb-memory-limit", default="64MB",
                        help="the DuckDB connection's memory_limit extra (DuckDB spills beyond it); '' for none")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.assets = 10_000
    if args.serve:
        serve(args.assets)
        return 0
    _common.exit_on_sigterm()
    failures = []
    lines = []
    with _common.work_dir(args.keep) as root:
        _common.prepare_environment(root)
        sim = subprocess.Popen([sys.executable, __file__, "--serve", "--assets", str(args.assets)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert sim.stdout is not None
            url = sim.stdout.readline().strip()
            os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps({
                "conn_type": "connectsecure", "host": url, "login": CLIENT_ID, "password": SECRET,
                "extra": {"tenant_name": TENANT}})
            for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
                lines += _run_backend(backend, root, url, args, failures)
        finally:
            assert sim.stdin is not None
            sim.stdin.close()
            sim.wait(timeout=30)
    print(f"### ConnectSecure full pull with change detection ({args.assets:,} assets, pages of {args.page_size:,})\n")
    print(f"Command: `{_common.command_line()}` — {_common.today()}, {_common.machine()}, "
          f"load average {_common.load_average()} at the end.\n")
    print("| backend | pull | task | seconds | peak RSS MiB | rows loaded | ceiling s (paging only) | ÷ ceiling |")
    print("|---|---|---|---|---|---|---|---|")
    for line in lines:
        print(line)
    if failures:
        print("\nFAILED: " + "; ".join(failures))
        return 1
    return 0


def _run_backend(backend: str, root: Path, url: str, args: Any, failures: list[str]) -> list[str]:
    import contextlib

    lines = []
    with contextlib.ExitStack() as stack:
        if backend == "duckdb":
            conn = {"conn_type": "duckdb", "host": str(root / f"wh-{time.time_ns()}.duckdb")}
            if args.duckdb_memory_limit:
                conn["extra"] = {"memory_limit": args.duckdb_memory_limit, "temp_directory": str(root / "duckdb-tmp")}
        else:
            db = stack.enter_context(_common.postgres_database("cs_bench"))
            params = _common.pg_params(db)
            conn = {"conn_type": "postgres", "host": params["host"], "port": params["port"], "login": params["user"],
                    "schema": db}
        os.environ["AIRFLOW_CONN_SECCOLLECT_WAREHOUSE"] = json.dumps(conn)
        changed = int(args.assets * args.changed)
        for pull, (label, expected) in enumerate((("1: first", args.assets), ("2: unchanged", 0),
                                                   (f"3: {args.changed:.0%} changed", changed))[: args.pulls]):
            if pull == 2:
                _mutate(url, changed)
            top = _common.run_step("connectsecure_snapshot", "ceiling", url=url, page_size=args.page_size)
            got = _common.run_step("connectsecure_snapshot", "collect", window=pull, page_size=args.page_size)
            put = _common.run_step("connectsecure_snapshot", "load", staged=got["staged"])
            inserted = put["report"]["tables"]["syslog"]["inserted"]
            if inserted != expected:
                failures.append(f"{backend} pull {label}: loaded {inserted} rows, expected {expected}")
            if top["rows"] != args.assets:
                failures.append(f"ceiling read {top['rows']} rows, expected {args.assets}")
            for task, step in (("collect", got), ("load", put)):
                over = step["seconds"] > TARGET_SECONDS or step["peak_rss_mib"] > TARGET_MIB
                if over:
                    failures.append(f"{backend} pull {label} {task}: over target")
                ratio = f"{got['seconds'] / top['seconds']:.2f}×" if task == "collect" else ""
                lines.append(f"| {backend} | {label} | {task} | {step['seconds']:.1f} | {step['peak_rss_mib']:.0f} | "
                             f"{inserted if task == 'load' else ''} | "
                             f"{top['seconds']:.1f} ({top['peak_rss_mib']:.0f} MiB) | {ratio} |" if task == "collect"
                             else f"| {backend} | {label} | {task} | {step['seconds']:.1f} | "
                             f"{step['peak_rss_mib']:.0f} | {inserted} | | |")
            print(lines[-2], file=sys.stderr)
            print(lines[-1], file=sys.stderr)
    return lines


if __name__ == "__main__":
    sys.exit(main())
