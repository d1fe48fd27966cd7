"""``python -m seccollect_dev.simulators``: its --help explains fault injection; with no port it runs them all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from seccollect_dev.simulators import SIMULATORS
from seccollect_dev.simulators.__main__ import main


def test_help_explains_fault_injection(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for kind in ("status", "throttle", "slow", "drop", "malformed", "truncate"):
        assert f"\n                {kind} " in text, kind
    for field in ("kind", "path", "method", "after", "count", "status", "seconds", "fraction", "body", "headers"):
        assert f"\n    {field} " in text, field
    for endpoint in (
        "POST   /_sim/faults",
        "GET    /_sim/faults",
        "DELETE /_sim/faults",
        "POST   /_sim/reset",
        "GET    /_sim/stats",
        "/_sim/clock",
        "/_sim/netskope/tokens",
        "/_sim/netskope/expire",
        "/_sim/netskope/rate_limit",
    ):
        assert endpoint in text, endpoint
    assert text.count("curl ") >= 3
    for name in SIMULATORS:
        assert f"--{name}-port" in text


def test_without_ports_every_simulator_runs_in_the_one_process(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seccollect_dev.simulators", "--hours", "0.25", "--state-file", str(state)],
        env={**os.environ, "SIM_NETSKOPE_V2_TOKEN": "all-v2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not state.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "simulators did not start"
            time.sleep(0.05)
        info = json.loads(state.read_text())
        assert set(info) == set(SIMULATORS)
        assert {i["pid"] for i in info.values()} == {proc.pid}
        r = requests.get(info["netskope"]["url"] + "/_sim/stats", timeout=5)
        assert r.status_code == 200 and r.json()["total"] == 0
        r = requests.get(info["aws"]["url"] + "/moto-api/", timeout=5)
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert not state.exists()
