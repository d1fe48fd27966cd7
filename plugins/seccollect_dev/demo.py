"""The demo: every enabled demo connector DAG over the last hour, through real Airflow, then a summary.

``python -m seccollect_dev.demo`` (``make demo``) does, in order:

1. initialise the Airflow home inside the checkout (``.airflow/``, ignored by git) and its database;
2. register the Airflow connections that point at the simulators, and the ``warehouse_loads`` pool;
3. start every simulator of :data:`seccollect_dev.simulators.SIMULATORS` (the Netskope API, moto's
   S3/STS) in one ``python -m seccollect_dev.simulators`` process, each on its fixed local port;
4. populate the simulators that are plain stores (moto's buckets: the last hours of CloudTrail,
   VPC flow and WAF logs);
5. run each enabled DAG of ``include/connectors`` once per data interval of the last hour
   (``dag.test()``: the real task runner, XCom, retries, the metadata database);
6. print per instance and per index: records loaded, duplicates skipped, alerts mapped, failures;
7. stop every process it started.

The same home, connections and ports are used by ``make airflow`` (``airflow standalone``), so the
UI shows these DAGs and their runs afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from seccollect_dev.simulators import SIMULATORS

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_HOME = REPO / ".airflow"
DEMO_DIR = REPO / ".demo"
WAREHOUSE_PATH = DEMO_DIR / "warehouse.duckdb"
SIMULATORS_STATE = DEMO_DIR / "simulators.json"


def simulator_port(name: str) -> int:
    """The demo's port for simulator ``name``: its ``default_port``, or ``DEMO_<NAME>_PORT``."""
    return int(os.environ.get(f"DEMO_{name.upper()}_PORT", SIMULATORS[name].default_port))


def simulator_urls() -> dict[str, str]:
    """Where each simulator listens during the demo and ``make airflow``."""
    return {name: f"http://127.0.0.1:{simulator_port(name)}" for name in SIMULATORS}


def demo_environment() -> dict[str, str]:
    """Environment shared by the demo, ``make airflow`` and the CLI calls they make."""
    return {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "CONNECTORS_DIR": str(DEMO_DIR / "connectors"),
        "SECCOLLECT_STAGING_URL": "file://" + str(DEMO_DIR / "staging"),
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "1",
    }


def demo_connections() -> dict[str, dict[str, Any]]:
    """The Airflow connections of the demo instances: the warehouse, and each simulator's own."""
    connections: dict[str, dict[str, Any]] = {
        "seccollect_warehouse": {"conn_type": "duckdb", "host": str(WAREHOUSE_PATH)}
    }
    for name, url in simulator_urls().items():
        connections.update(SIMULATORS[name].connections(url))
    return connections


def _airflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    airflow = Path(sys.executable).with_name("airflow")
    return subprocess.run([str(airflow), *args], env=env, check=True, capture_output=True, text=True)


def assemble_instances() -> Path:
    """The demo's instance folder: every registered connector's demo instance files."""
    import shutil

    from seccollect.registry import demo_instance_files

    folder = DEMO_DIR / "connectors"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.yaml"):
        stale.unlink()
    for path in demo_instance_files():
        shutil.copy(path, folder / path.name)
    return folder


def prepare_airflow(env: dict[str, str]) -> None:
    """Airflow home + database, the demo instances and connections and the load pool (idempotent)."""
    AIRFLOW_HOME.mkdir(exist_ok=True)
    DEMO_DIR.mkdir(exist_ok=True)
    assemble_instances()
    _airflow("db", "migrate", env=env)
    conn_file = DEMO_DIR / "connections.json"
    conn_file.write_text(json.dumps(demo_connections(), indent=2))
    _airflow("connections", "import", "--overwrite", str(conn_file), env=env)
    _airflow("pools", "set", "warehouse_loads", "1", "one writer at a time (DuckDB allows a single writer)", env=env)


def _wait_for_state(proc: subprocess.Popen[bytes], state_file: Path, timeout: float = 60.0) -> dict[str, Any]:
    """The simulators' state file, written once every one of them listens."""
    deadline = time.monotonic() + timeout
    while not state_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the simulators exited with {proc.returncode}; see {DEMO_DIR / 'simulators.log'}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the simulators did not start within {timeout:.0f}s")
        time.sleep(0.1)
    return json.loads(state_file.read_text())


@contextmanager
def services(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Run every simulator in one process until the block ends; yields ``{name: url}``.

    The simulators that hold plain data (moto's buckets) are populated before the block starts.
    """
    ports = [arg for name in SIMULATORS for arg in (f"--{name}-port", str(simulator_port(name)))]
    cmd = [sys.executable, "-m", "seccollect_dev.simulators", *ports, "--hours", "3",
           "--state-file", str(SIMULATORS_STATE)]
    SIMULATORS_STATE.unlink(missing_ok=True)
    with open(DEMO_DIR / "simulators.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            state = _wait_for_state(proc, SIMULATORS_STATE)
            urls = {name: info["url"] for name, info in state.items()}
            now = datetime.now(UTC)
            for name, url in urls.items():
                populate = SIMULATORS[name].populate
                if populate is not None:
                    populate(url, now)
            yield urls
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def intervals(dag: Any, now: datetime, span: timedelta) -> list[tuple[datetime, datetime]]:
    """The DAG's complete data intervals that end within the last ``span`` before ``now``."""
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    restriction = TimeRestriction(earliest=pendulum.instance(now - span), latest=pendulum.instance(now), catchup=True)
    found: list[tuple[datetime, datetime]] = []
    last: DataInterval | None = None
    while True:
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None or info.data_interval.end > now:
            return found
        found.append((info.data_interval.start, info.data_interval.end))
        last = info.data_interval


def run_dags(span: timedelta) -> list[dict[str, Any]]:
    """Run every enabled demo DAG over its intervals of the last ``span``; return one row per run."""
    from seccollect.dag_factory.builder import register_dags

    namespace: dict[str, Any] = {}
    errors = register_dags(namespace)
    for error in errors:
        print(f"  instance file problem (no DAG): {error}")
    now = datetime.now(UTC)
    runs: list[dict[str, Any]] = []
    for dag_id, dag in sorted(namespace.items()):
        windows = intervals(dag, now, span)
        if any(t.task_id in ("collect_pops", "collect_tunnels") for t in dag.tasks):
            # Daily snapshots run in the interval that holds 00:00 UTC; include the latest one.
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            snapshot = [w for w in intervals(dag, midnight + timedelta(hours=1), timedelta(hours=2))
                        if w[0] <= midnight < w[1] and w not in windows]
            windows = snapshot + windows
        print(f"  {dag_id}: {len(windows)} interval(s)", flush=True)
        for start, end in windows:
            began = time.monotonic()
            # One window per logical date: a run is dated by the start of the window it collects.
            dag_run = dag.test(logical_date=start)
            states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
            failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed"))
            runs.append({"dag_id": dag_id, "start": start, "end": end, "state": str(dag_run.state),
                         "failed_tasks": failed, "seconds": time.monotonic() - began,
                         "skipped_tasks": [t for t, s in states.items() if s == "skipped" and t.startswith("collect_")]})
    return runs


def summary(runs: list[dict[str, Any]]) -> str:
    """Per instance and index: records loaded, duplicates skipped, alerts mapped, failures."""
    from seccollect.warehouse.duckdb import DuckDBWarehouse

    failures: dict[str, int] = {}
    for run in runs:
        failures[run["dag_id"]] = failures.get(run["dag_id"], 0) + (1 if run["state"] != "success" else 0)
    rows: list[tuple[str, str, int, int, int, int]] = []
    with DuckDBWarehouse(str(WAREHOUSE_PATH)) as wh:
        wh.ensure_schema()
        ledger = wh.query(
            "SELECT dag_id, content_type, sum(inserted_rows), sum(duplicate_rows), sum(quarantined) "
            "FROM collection_ledger GROUP BY 1, 2 ORDER BY 1, 2"
        )
        alerts = {(t, i): n for t, i, n in wh.query("SELECT tenant, instance, count(*) FROM alerts GROUP BY 1, 2")}
    from seccollect.config.loader import load_all
    from seccollect.dag_factory.builder import indices_of

    by_dag = {i.dag_id: i for i in load_all().instances}
    for dag_id, content_type, inserted, duplicates, quarantined in ledger:
        instance = by_dag.get(dag_id)
        index = ",".join(indices_of(instance, content_type)) if instance else "?"
        mapped = alerts.get((instance.tenant, instance.name), 0) if instance and content_type == "alert" else 0
        rows.append((dag_id, f"{content_type} -> {index}", int(inserted or 0), int(duplicates or 0), int(mapped),
                     int(quarantined or 0)))
    header = ("instance (DAG)", "content -> index", "loaded", "duplicates skipped", "alerts mapped", "quarantined")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True))  # noqa: E731
    out = [line(header), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)]
    out.append("")
    skipped = sorted({(r["dag_id"], t) for r in runs for t in r["skipped_tasks"]})
    if skipped:
        out.append("Skipped (nothing due in the window, e.g. daily snapshots): "
                   + ", ".join(f"{d}.{t}" for d, t in skipped))
    for dag_id in sorted(failures):
        total = sum(1 for r in runs if r["dag_id"] == dag_id)
        out.append(f"{dag_id}: {total - failures[dag_id]}/{total} runs succeeded, {failures[dag_id]} failed")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60, help="how far back intervals are run")
    parser.add_argument("--fresh", action="store_true", help="start from an empty warehouse and staging area")
    args = parser.parse_args(argv)

    env = {**os.environ, **demo_environment()}
    os.environ.update(demo_environment())
    DEMO_DIR.mkdir(exist_ok=True)
    if args.fresh:
        WAREHOUSE_PATH.unlink(missing_ok=True)
    print(f"Airflow home: {AIRFLOW_HOME}")
    prepare_airflow(env)
    # dag.test() in this process resolves connections through the environment like a worker would.
    for conn_id, conn in demo_connections().items():
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    started = time.monotonic()
    with services(env) as urls:
        print("Simulators: " + ", ".join(f"{name} {url}" for name, url in urls.items()))
        print(f"Running every enabled DAG over the last {args.minutes} minutes of intervals:", flush=True)
        runs = run_dags(timedelta(minutes=args.minutes))
    print()
    print(summary(runs))
    print(f"\nDone in {time.monotonic() - started:.0f}s. Warehouse: {WAREHOUSE_PATH}")
    print("Open the Airflow UI on these DAGs and runs:  make airflow   (then http://localhost:8080)")
    return 0 if all(r["state"] == "success" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
