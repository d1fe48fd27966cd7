"""``make airflow`` as a user meets it: the whole Airflow on PostgreSQL with the simulators, the local
S3 filled and kept filling so an AWS DAG's run of a recent window succeeds, the demo refusing to
delete the warehouse under it, and Ctrl-C stopping every process it started within seconds."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.scheduler]

AWS_DAG = "acme-aws_cloudtrail-cloudtrail"


def _lines(stream: object) -> queue.Queue[str]:
    """The lines a child prints, readable with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for_line(lines: queue.Queue[str], text: str, timeout: float, seen: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"{text!r} not printed in {timeout:.0f}s:\n{''.join(seen)[-4000:]}")


def test_make_airflow_serves_aws_runs_refuses_a_fresh_demo_and_stops_on_ctrl_c(
    tmp_path: Path, postgres_server: dict[str, object]
) -> None:
    from seccollect_dev.airflow_stack import KILL_DEADLINE, STOP_GRACE, AirflowApi, PostgresServer, free_port
    from seccollect_dev.demo import SIMULATORS_GRACE
    from seccollect_dev.simulators import SIMULATORS

    # What Ctrl-C may take: the deadlines of its steps (Airflow's shared SIGTERM grace and SIGKILL
    # rounds, then the simulators' process), plus 30 s of slack for this process's own work (finding,
    # signalling and reaping processes) on 2 cores at a load average of 30. Measured: 6-7 s in all,
    # at load averages from 11 to 21 (2026-12-05).
    stop_bound = STOP_GRACE + KILL_DEADLINE + SIMULATORS_GRACE + 30

    env = {**os.environ, "DEMO_ROOT": str(tmp_path), "AIRFLOW_PORT": str(free_port())}
    for name in SIMULATORS:
        env[f"DEMO_{name.upper()}_PORT"] = str(free_port())
    pg = PostgresServer(host=str(postgres_server["host"]), port=int(postgres_server["port"]),
                        user=str(postgres_server["user"]))
    env["SECCOLLECT_PGHOST"], env["SECCOLLECT_PGPORT"] = pg.host, str(pg.port)
    env["SECCOLLECT_DEMO_DATABASE"] = database = f"seccollect_ui_test_{os.getpid()}"
    before = {p.pid for p in psutil.process_iter()}
    # Started with SIGINT ignored, as `make test` starts it (its second pytest is a background job of a
    # non-interactive shell, which ignores SIGINT): Ctrl-C must reach it all the same.
    ui = subprocess.Popen(["sh", "-c", 'trap "" INT; exec "$@"', "sh", sys.executable, "-m", "seccollect_dev.airflow_ui"],
                          env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: list[str] = []
    try:
        lines = _lines(ui.stdout)
        _wait_for_line(lines, "Ctrl-C stops everything", 300, seen)
        state = json.loads((tmp_path / ".airflow" / "stack.json").read_text())
        api = AirflowApi(state["url"], "admin", state["password"])

        # The demo must not delete the warehouse under the running Airflow.
        refused = subprocess.run([sys.executable, "-m", "seccollect_dev.demo", "--fresh"], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "--fresh would delete the warehouse" in refused.stderr, refused

        # An AWS DAG's run of a window that ended a few minutes ago finds its objects in the local S3.
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        window = now - timedelta(minutes=now.minute % 5) - timedelta(minutes=10)
        deadline = time.monotonic() + 120
        while True:
            try:
                api.get(f"dags/{AWS_DAG}")
                break
            except RuntimeError:
                assert time.monotonic() < deadline, f"{AWS_DAG} was not parsed"
                time.sleep(2)
        run = api.request("POST", f"dags/{AWS_DAG}/dagRuns", json={
            "dag_run_id": "ui_test_window", "logical_date": window.isoformat(),
            "conf": {"window_start": window.isoformat(), "window_end": (window + timedelta(minutes=5)).isoformat()},
        })
        api.set_paused(AWS_DAG, False)
        deadline = time.monotonic() + 300
        while (state_now := api.get(f"dags/{AWS_DAG}/dagRuns/{run['dag_run_id']}")["state"]) not in ("success", "failed"):
            assert time.monotonic() < deadline, f"the AWS run is still {state_now}"
            time.sleep(3)
        api.set_paused(AWS_DAG, True)
        tis = api.get(f"dags/{AWS_DAG}/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
        assert state_now == "success", {ti["task_id"]: ti["state"] for ti in tis}
    finally:
        # Ctrl-C, as in a terminal.
        sent_at = datetime.now(UTC)
        began = time.monotonic()
        ui.send_signal(signal.SIGINT)
        try:
            ui.wait(timeout=stop_bound)
        except subprocess.TimeoutExpired:
            ui.kill()
        stopped_in = time.monotonic() - began
        time.sleep(1)
        leftovers = [p for p in psutil.process_iter(["pid", "cmdline"])
                     if p.pid not in before and f"DEMO_ROOT={tmp_path}" in _environ(p)]
        for leftover in leftovers:  # asserted below; never left to the next tests' machine
            try:
                leftover.kill()
            except psutil.Error:
                pass
        pg.drop_database(database)
    output = "".join(seen) + "".join(_drain(lines))
    # Kept beside the test's files: each stop step's time is in it.
    (tmp_path / "make_airflow.out").write_text(
        output + f"\n(test) SIGINT sent at {sent_at:%H:%M:%S.%f}, exited {stopped_in:.1f}s later\n")
    assert stopped_in < stop_bound, f"Ctrl-C took {stopped_in:.0f}s:\n{output[-4000:]}"
    # Each step of the stop reports itself (with its time) and none left a process behind.
    assert "Airflow stopped in" in output and "simulators stopped in" in output, output[-4000:]
    assert "STILL RUNNING" not in output, output[-4000:]
    assert not leftovers, [p.info["cmdline"] for p in leftovers]


def _drain(lines: queue.Queue[str]) -> list[str]:
    """What the child printed that was not read yet (it has exited: its output is complete once the
    pipe's end is read, which the pump thread does at once)."""
    time.sleep(0.5)
    drained = []
    while True:
        try:
            drained.append(lines.get_nowait())
        except queue.Empty:
            return drained


def _environ(process: psutil.Process) -> list[str]:
    """The process's environment as NAME=value strings (empty when it is gone or not ours)."""
    try:
        return [f"{k}={v}" for k, v in process.environ().items()]
    except (psutil.Error, OSError):
        return []
