"""The demo: every enabled demo connector DAG over the last hour, through a real Airflow, then a summary.

``python -m seccollect_dev.demo`` (``make demo``) does, in order:

1. initialise the Airflow home inside the checkout (``.airflow/``, ignored by git) on a PostgreSQL
   metadata database (the machine's when it answers, else an embedded one in ``.airflow/pgdata``);
2. register the Airflow connections that point at the simulators, and the ``warehouse_loads`` pool;
3. start every simulator of :data:`seccollect_dev.simulators.SIMULATORS` (the Netskope API, moto's
   S3/STS) in one ``python -m seccollect_dev.simulators`` process, each on its fixed local port, and
   fill the plain stores (moto's buckets);
4. start Airflow (api-server, scheduler, dag-processor, triggerer: :mod:`seccollect_dev.airflow_stack`)
   and, per enabled DAG, create a backfill of the last hour's windows ("Missing Runs": windows that
   already have a run are left alone) with the DAG unpaused for the time of the demo;
5. wait for those runs, then print per instance and per index: records loaded, duplicates skipped,
   alerts mapped, failures;
6. pause the DAGs again and stop every process it started.

Runs are made by the scheduler, so they have task logs and true start and end times in the UI. When
``make airflow`` is running, the demo uses its Airflow and simulators instead of starting its own (and
never deletes the warehouse under it); ``make airflow`` refuses to start while a demo runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from seccollect_dev.simulators import SIMULATORS
from seccollect_dev.simulators.spec import STOP_DEADLINE

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
#: Where the demo keeps its state: the checkout (both folders are ignored by git), or ``DEMO_ROOT``.
ROOT = Path(os.environ.get("DEMO_ROOT", str(REPO)))
AIRFLOW_HOME = ROOT / ".airflow"
DEMO_DIR = ROOT / ".demo"
WAREHOUSE_PATH = DEMO_DIR / "warehouse.duckdb"
SIMULATORS_STATE = DEMO_DIR / "simulators.json"
#: Written while an Airflow of the demo's home runs: who runs it (``make airflow`` or the demo) and where.
STACK_STATE = AIRFLOW_HOME / "stack.json"
#: The metadata database of the demo's home (on the machine's PostgreSQL or the embedded one).
METADATA_DATABASE = os.environ.get("SECCOLLECT_DEMO_DATABASE", "seccollect_demo")
#: The api-server's port under ``make airflow`` (``AIRFLOW_PORT`` to change it).
UI_PORT = int(os.environ.get("AIRFLOW_PORT", "8080"))


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


def assemble_instances(starts: dict[str, datetime] | None = None) -> Path:
    """The demo's instance folder: every registered connector's demo instance files; an instance in
    ``starts`` (by DAG id, the file's name) starts there, the others as any new file does (at the hour
    they are written)."""
    from seccollect.registry import demo_instance_files

    folder = DEMO_DIR / "connectors"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.yaml"):
        stale.unlink()
    for path in demo_instance_files():
        text = path.read_text()
        start = (starts or {}).get(path.stem)
        if start is not None:
            text = text.rstrip("\n") + f"\nstart_date: {start.isoformat()}   # the demo's first window\n"
        (folder / path.name).write_text(text)
    return folder


def prepare_airflow(stack: Any, starts: dict[str, datetime] | None = None) -> None:
    """Migrate the home's metadata database; the demo instances (see :func:`assemble_instances`),
    connections and the load pool (idempotent)."""
    AIRFLOW_HOME.mkdir(exist_ok=True)
    DEMO_DIR.mkdir(exist_ok=True)
    assemble_instances(starts)
    stack.prepare()
    conn_file = DEMO_DIR / "connections.json"
    conn_file.write_text(json.dumps(demo_connections(), indent=2))
    stack.airflow("connections", "import", "--overwrite", str(conn_file))
    stack.airflow("pools", "set", "warehouse_loads", "1", "one writer at a time (DuckDB allows a single writer)")


def _wait_for_state(proc: subprocess.Popen[bytes], state_file: Path, timeout: float = 60.0) -> dict[str, Any]:
    """The simulators' state file, written once every one of them listens."""
    deadline = time.monotonic() + timeout
    while not state_file.exists():
        if proc.poll() is not None:
            log = (DEMO_DIR / "simulators.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the simulators exited with {proc.returncode} (a port in use?):\n{log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the simulators did not start within {timeout:.0f}s")
        time.sleep(0.1)
    return json.loads(state_file.read_text())


@contextmanager
def services(env: dict[str, str], *, keep_filling: bool = False, ahead_hours: float = 0.0) -> Iterator[dict[str, str]]:
    """Run every simulator in one process until the block ends; yields ``{name: url}``.

    The simulators that hold plain data (moto's buckets) are populated before the block starts and,
    with ``keep_filling``, every minute while it runs (what has been delivered since), so scheduled
    runs keep finding data. ``ahead_hours``: the API simulators also generate that much data after
    now, served as their clock reaches it.
    """
    import threading

    ports = [arg for name in SIMULATORS for arg in (f"--{name}-port", str(simulator_port(name)))]
    cmd = [sys.executable, "-m", "seccollect_dev.simulators", *ports, "--hours", "3",
           "--ahead-hours", str(ahead_hours), "--state-file", str(SIMULATORS_STATE)]
    SIMULATORS_STATE.unlink(missing_ok=True)
    stop = threading.Event()
    with open(DEMO_DIR / "simulators.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            state = _wait_for_state(proc, SIMULATORS_STATE)
            urls = {name: info["url"] for name, info in state.items()}

            def populate() -> None:
                now = datetime.now(UTC)
                for name, url in urls.items():
                    fill = SIMULATORS[name].populate
                    if fill is not None:
                        fill(url, now)

            populate()
            filler = None
            if keep_filling:
                def fill_every_minute() -> None:
                    while not stop.wait(60):
                        try:
                            populate()
                        except Exception as exc:  # noqa: BLE001 - a hiccup must not end make airflow
                            print(f"(filling the simulators failed once: {exc})", flush=True)

                filler = threading.Thread(target=fill_every_minute, name="simulator-filler", daemon=True)
                filler.start()
            yield urls
        finally:
            stop.set()
            stop_simulator_process(proc)


#: Seconds the simulators' process gets after SIGTERM before SIGKILL: its own deadline for stopping
#: every simulator (:data:`seccollect_dev.simulators.spec.STOP_DEADLINE`) and 3 s to exit.
SIMULATORS_GRACE = STOP_DEADLINE + 3


def stop_simulator_process(proc: subprocess.Popen[bytes], grace: float = SIMULATORS_GRACE) -> None:
    """SIGTERM the simulators' process; SIGKILL its process group (it leads its own session) if it is
    still there after ``grace`` seconds."""
    began = time.monotonic()
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # also whatever it left in its group
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    log.info("simulators stopped in %.1fs", time.monotonic() - began)


def running_stack() -> dict[str, Any] | None:
    """The Airflow of the demo's home that is running now (``{"owner", "pid", "url"}``), if any."""
    try:
        state = json.loads(STACK_STATE.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        STACK_STATE.unlink(missing_ok=True)  # left by a process that is gone
        return None
    return state


@contextmanager
def airflow_stack(env: dict[str, str], *, owner: str, api_port: int = 0,
                  starts: dict[str, datetime] | None = None) -> Iterator[Any]:
    """A whole Airflow on the demo's home and its PostgreSQL metadata database, recorded in
    :data:`STACK_STATE` while it runs (so the demo and ``make airflow`` find each other)."""
    from seccollect_dev.airflow_stack import AirflowStack, postgres_server

    with postgres_server(AIRFLOW_HOME / "pgdata") as pg:
        pg.ensure_database(METADATA_DATABASE)
        stack = AirflowStack(env, pg.sqlalchemy_url(METADATA_DATABASE), DEMO_DIR / "logs", api_port=api_port)
        prepare_airflow(stack, starts)
        stack.start()
        try:
            STACK_STATE.write_text(json.dumps({"owner": owner, "pid": os.getpid(), "url": stack.url,
                                               "password": stack.password}))
            yield stack
        finally:
            STACK_STATE.unlink(missing_ok=True)
            stack.stop()


def demo_dags() -> dict[str, Any]:
    """The DAGs of the demo's enabled instances, by dag_id."""
    from seccollect.dag_factory.builder import register_dags

    namespace: dict[str, Any] = {}
    for error in register_dags(namespace):
        print(f"  instance file problem (no DAG): {error}")
    return dict(sorted(namespace.items()))


def expected_windows(dag: Any, first: datetime, last: datetime) -> list[tuple[datetime, datetime]]:
    """The windows (start, end) of ``dag``'s schedule whose start lies in [``first``, ``last``]."""
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    restriction = TimeRestriction(earliest=pendulum.instance(first), latest=pendulum.instance(last), catchup=True)
    found: list[tuple[datetime, datetime]] = []
    interval = None
    while (info := timetable.next_dagrun_info(last_automated_data_interval=interval, restriction=restriction)) \
            and info.data_interval.start <= last:
        interval = info.data_interval
        found.append((interval.start, interval.end))
    return found


def windows_to_collect(dags: dict[str, Any], span: timedelta, now: datetime | None = None) -> dict[str, list[datetime]]:
    """Per DAG, the window starts (logical dates) the demo collects: its schedule's complete windows
    that ended within the last ``span`` (at least its last complete window, e.g. yesterday's for a
    daily snapshot)."""
    now = now or datetime.now(UTC)
    wanted: dict[str, list[datetime]] = {}
    for dag_id, dag in dags.items():
        complete = [w for w in expected_windows(dag, now - span - timedelta(days=2), now) if w[1] <= now]
        recent = [start for start, end in complete if end > now - span]
        wanted[dag_id] = recent or [start for start, _ in complete[-1:]]
    return wanted


def _logical(run: dict[str, Any]) -> datetime | None:
    value = run.get("logical_date")
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def run_dags(api: Any, windows: dict[str, list[datetime]], timeout: float = 1800,
             keep_alive: Callable[[], list[str]] | None = None) -> list[dict[str, Any]]:
    """Collect ``windows`` (window starts by DAG id) through the scheduler: backfill "Missing Runs" (windows
    the scheduler already ran from the instance's start are left alone), unpause it (a paused DAG's
    tasks are never queued, a backfill's neither), wait for a finished run per window, pause it again.
    ``keep_alive`` is called while waiting (e.g. to restart a component that exited). One row per run.

    The backfill is created while the DAG is paused: the scheduler then finds those runs when it
    reaches their dates and steps over them. Created on an unpaused DAG, a backfill run can be
    inserted between the scheduler's check for an existing run and its own insert of the same
    logical date; Airflow 3.3's scheduler then dies on the unique-key violation (apache/airflow#59120).
    """
    dags = sorted(d for d, w in windows.items() if w)
    wanted = {dag_id: set(windows[dag_id]) for dag_id in dags}
    for dag_id in dags:
        api.set_paused(dag_id, True)
    for dag_id in dags:
        try:
            api.request("POST", "backfills", json={
                "dag_id": dag_id, "from_date": min(wanted[dag_id]).isoformat(), "to_date": max(wanted[dag_id]).isoformat(),
                "reprocess_behavior": "none", "max_active_runs": 4,
            })
        except RuntimeError as exc:
            if "No runs to create" not in str(exc):  # every window has a run already: nothing missing
                raise
    for dag_id in dags:
        api.set_paused(dag_id, False)
    for dag_id in dags:
        print(f"  {dag_id}: {len(wanted[dag_id])} window(s) {min(wanted[dag_id]):%Y-%m-%d %H:%M}.."
              f"{max(wanted[dag_id]):%H:%M} UTC requested", flush=True)
    deadline = time.monotonic() + timeout
    runs_of: dict[str, list[dict[str, Any]]] = {}
    pending = set(dags)
    try:
        while pending:
            for dag_id in sorted(pending):
                runs = [r for r in api.dag_runs(dag_id) if _logical(r) in wanted[dag_id]]
                if {_logical(r) for r in runs} >= wanted[dag_id] and all(r["state"] in ("success", "failed") for r in runs):
                    runs_of[dag_id] = runs
                    pending.discard(dag_id)
                    print(f"  {dag_id}: {len(runs)} run(s) done", flush=True)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"runs not finished after {timeout:.0f}s: {sorted(pending)}")
            if pending:
                for name in keep_alive() if keep_alive else []:
                    print(f"  Airflow's {name} had exited; started it again (see its log)", flush=True)
                time.sleep(3)
    finally:
        for dag_id in dags:
            api.set_paused(dag_id, True)
    rows: list[dict[str, Any]] = []
    for dag_id, runs in sorted(runs_of.items()):
        for run in sorted(runs, key=lambda r: r["logical_date"]):
            tis = api.get(f"dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
            states = {ti["task_id"]: ti["state"] for ti in tis}
            rows.append({
                "dag_id": dag_id, "logical_date": run["logical_date"], "state": run["state"],
                "run_id": run["dag_run_id"], "start_date": run["start_date"], "end_date": run["end_date"],
                "failed_tasks": sorted(t for t, st in states.items() if st in ("failed", "upstream_failed")),
                "skipped_tasks": [t for t, st in states.items() if st == "skipped" and t.startswith("collect_")],
            })
    return rows


def summary(runs: list[dict[str, Any]]) -> str:
    """Per instance and index: records loaded, duplicates skipped, alerts mapped, failures."""
    from seccollect.warehouse.duckdb import DuckDBWarehouse, connect_with_lock_wait

    failures: dict[str, int] = {}
    for run in runs:
        failures[run["dag_id"]] = failures.get(run["dag_id"], 0) + (1 if run["state"] != "success" else 0)
    rows: list[tuple[str, str, int, int, int, int]] = []
    if not WAREHOUSE_PATH.exists():
        return "Nothing was loaded (no warehouse file yet)."
    # Read-only: under `make airflow` scheduled loads may be writing; a reader only waits out their commit.
    connection = connect_with_lock_wait(str(WAREHOUSE_PATH), read_only=True)
    with DuckDBWarehouse(str(WAREHOUSE_PATH), connection=connection) as wh:
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


def wait_for_dags(api: Any, dag_ids: list[str], timeout: float = 180) -> None:
    """Until the dag-processor has parsed every one of ``dag_ids``."""
    deadline = time.monotonic() + timeout
    for dag_id in dag_ids:
        while True:
            try:
                api.get(f"dags/{dag_id}")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{dag_id} was not parsed within {timeout:.0f}s; see {DEMO_DIR / 'logs'}") from None
                time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    from seccollect_dev.airflow_stack import AirflowApi, stop_on_signals

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60, help="how far back windows are collected")
    parser.add_argument("--fresh", action="store_true", help="start from an empty warehouse and staging area")
    args = parser.parse_args(argv)

    # A SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the Airflow and simulators it started stop too.
    stop_on_signals()
    env = {**os.environ, **demo_environment()}
    os.environ.update(demo_environment())
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    running = running_stack()
    if running is not None and running["owner"] != "make airflow":
        print(f"Another demo is running (pid {running['pid']}); wait for it to finish.", file=sys.stderr)
        return 2
    if args.fresh:
        if running is not None:
            print("--fresh would delete the warehouse under the running `make airflow`; stop it first.",
                  file=sys.stderr)
            return 2
        WAREHOUSE_PATH.unlink(missing_ok=True)
        Path(str(WAREHOUSE_PATH) + ".wal").unlink(missing_ok=True)
    print(f"Airflow home: {AIRFLOW_HOME}")
    started = time.monotonic()
    span = timedelta(minutes=args.minutes)
    if running is not None:
        # `make airflow` runs: use its Airflow and simulators; its instance files are the demo's.
        print(f"Using the Airflow of `make airflow` at {running['url']} (pid {running['pid']})")
        api = AirflowApi(running["url"], "admin", running["password"])
        dags = demo_dags()
        wait_for_dags(api, list(dags))
        runs = run_dags(api, windows_to_collect(dags, span))
    else:
        from seccollect.registry import demo_instance_files

        # The windows are read off each DAG's schedule, which begins at its instance's start: assembled
        # first with an early start, so that start does not hide the span's earlier windows.
        early = datetime.now(UTC) - span - timedelta(days=2)
        assemble_instances({path.stem: early for path in demo_instance_files()})
        windows = windows_to_collect(demo_dags(), span)
        # Each instance starts at its first window to collect: the scheduler has nothing older to catch
        # up on, and the backfill's runs are the demo's only work.
        starts = {dag_id: w[0] for dag_id, w in windows.items() if w}
        with services(env) as urls, airflow_stack(env, owner="make demo", starts=starts) as stack:
            print("Simulators: " + ", ".join(f"{name} {url}" for name, url in urls.items()))
            print(f"Airflow: {stack.url} (logs in {DEMO_DIR / 'logs'})")
            api = stack.api()
            wait_for_dags(api, list(windows))
            print(f"Collecting every enabled DAG's windows of the last {args.minutes} minutes:", flush=True)
            runs = run_dags(api, windows, keep_alive=stack.restart_exited)
    (DEMO_DIR / "runs.json").write_text(json.dumps({"runs": runs}, indent=1))
    print()
    print(summary(runs))
    print(f"\nDone in {time.monotonic() - started:.0f}s. Warehouse: {WAREHOUSE_PATH}")
    print(f"Open the Airflow UI on these DAGs and runs:  make airflow   (then http://localhost:{UI_PORT})")
    return 0 if all(r["state"] == "success" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
