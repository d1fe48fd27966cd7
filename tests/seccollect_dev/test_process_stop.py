"""Stopping a stack's processes (:func:`seccollect_dev.airflow_stack.stop_processes`) and Ctrl-C
(:func:`seccollect_dev.airflow_stack.stop_on_signals`), with plain Python processes standing in for
Airflow's components: one that ignores SIGTERM, a child in a process group of its own (as Airflow's
task runner), an orphan re-parented away from the tree in a session of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from seccollect_dev.airflow_stack import STACK_ID_ENV, stop_processes

#: A component that ignores SIGTERM and leaves behind what a real one can: a child leading its own
#: process group (Airflow's task runner does ``setpgid(0, 0)``), and an orphan: a grandchild in a new
#: session whose parent has exited. Every one of them ignores SIGTERM; it writes their pids to argv[1].
STUBBORN = textwrap.dedent("""
    import json, os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pids = {"component": os.getpid()}
    read, write = os.pipe()
    group_child = os.fork()
    if group_child == 0:
        os.setpgid(0, 0)
        while True:
            time.sleep(1)
    pids["own_group"] = group_child
    middle = os.fork()
    if middle == 0:
        os.setsid()
        orphan = os.fork()
        if orphan == 0:
            while True:
                time.sleep(1)
        os.write(write, str(orphan).encode())
        os._exit(0)
    os.waitpid(middle, 0)
    pids["orphan"] = int(os.read(read, 64))
    with open(sys.argv[1] + ".tmp", "w") as out:
        json.dump(pids, out)
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    while True:
        time.sleep(1)
""")


def _start(code: str, pids_file: Path, marker: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, STACK_ID_ENV: marker}
    return subprocess.Popen([sys.executable, "-c", code, str(pids_file)], env=env, start_new_session=True)


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> dict[str, int]:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, f"the stand-in exited with {proc.returncode}"
        assert time.monotonic() < deadline, "the stand-in did not start"
        time.sleep(0.05)
    return json.loads(path.read_text())


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigkill_reaches_what_ignores_sigterm_leads_its_own_group_or_was_orphaned(tmp_path: Path) -> None:
    marker = f"test-{uuid.uuid4().hex}"
    proc = _start(STUBBORN, tmp_path / "pids.json", f"{marker}/stubborn")
    try:
        pids = _wait_for(tmp_path / "pids.json", proc)
        orphan_parent = psutil.Process(pids["orphan"]).ppid()
        assert orphan_parent != pids["component"], "the orphan is outside the component's tree"
        assert os.getpgid(pids["own_group"]) != os.getpgid(proc.pid)

        report = stop_processes([proc], marker, grace=0.5)

        assert report.found == 3 and report.exited_on_sigterm == 0 and len(report.killed) == 3, str(report)
        assert not report.survivors
        assert [name for name, pid in pids.items() if _running(pid)] == []
        assert proc.returncode == -signal.SIGKILL  # reaped by the stop
    finally:
        for pid in _pids_if_any(tmp_path / "pids.json"):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.kill()
        proc.wait()


def _pids_if_any(path: Path) -> list[int]:
    try:
        return list(json.loads(path.read_text()).values())
    except (OSError, ValueError):
        return []


def test_processes_that_exit_on_sigterm_are_not_killed_and_other_stacks_are_left_alone(tmp_path: Path) -> None:
    marker, other = f"test-{uuid.uuid4().hex}", f"test-{uuid.uuid4().hex}"
    polite = _start("import time\nwhile True: time.sleep(1)", tmp_path / "unused", f"{marker}/polite")
    bystander = _start("import time\nwhile True: time.sleep(1)", tmp_path / "unused", f"{other}/polite")
    try:
        deadline = time.monotonic() + 60
        while STACK_ID_ENV not in psutil.Process(polite.pid).environ():
            assert time.monotonic() < deadline
            time.sleep(0.05)

        report = stop_processes([polite], marker)

        assert report.found == 1 and report.exited_on_sigterm == 1 and report.killed == [], str(report)
        assert polite.returncode == -signal.SIGTERM
        assert bystander.poll() is None, "another stack's process was stopped"
    finally:
        for proc in (polite, bystander):
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_a_command_that_started_with_sigint_ignored(signum: int) -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored (``make test``'s second
    pytest, and so every ``make stack`` it starts); Ctrl-C must still unwind it, and a second signal
    must not break off its stop."""
    code = textwrap.dedent("""
        import signal, sys, time
        from seccollect_dev.airflow_stack import stop_on_signals
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "inherited as make test gives it"
        stop_on_signals()
        try:
            print("ready", flush=True)
            while True:
                time.sleep(0.1)
        except KeyboardInterrupt:
            print("stopping", flush=True)
            sys.stdin.readline()  # the second signal arrives here
            print("stopped", flush=True)
    """)
    # `trap '' INT` then exec: the child inherits SIGINT ignored, as from `cmd &` in sh.
    proc = subprocess.Popen(["sh", "-c", 'trap "" INT; exec "$@"', "sh", sys.executable, "-c", code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signum)
        assert proc.stdout.readline() == "stopping\n"
        proc.send_signal(signum)
        proc.send_signal(signal.SIGINT)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "stopped\n"
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
