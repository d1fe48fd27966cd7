"""Netskope v1's limit (24 requests per 5 s per tenant) holds for several worker processes at once.

Two processes read one v1 tenant as fast as their budgets allow, at the same moment. The simulator
records every request it receives; the busiest 5 seconds it saw must stay within the vendor's limit
and it must never have answered 429. With the budget counted per process (no ``SECCOLLECT_LIMITS_URL``)
the same two processes overrun it - the control that shows the measurement can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.conftest import NETSKOPE_START, NETSKOPE_V1_TOKEN
from tests.seccollect.http.test_redis_budget import REDIS_URL, redis_client  # noqa: F401

V1_LIMIT, V1_PERIOD = 24, 5.0

CHILD = """
import sys, time
from datetime import timedelta
from seccollect.vendors.netskope.hook import NetskopeHook
start_at, run_for, first = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
from datetime import datetime
t0 = datetime.fromisoformat(first)
hook = NetskopeHook("netskope_rate")
hook.get_conn()
time.sleep(max(0.0, start_at - time.time()))
i = 0
while time.time() < start_at + run_for:
    for _ in hook.iter_window("alert", t0 + timedelta(seconds=i), t0 + timedelta(seconds=i + 1)):
        pass
    i += 1
print(i)
"""


def _busiest(times: list[float], period: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= period:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _race(netskope_sim, redis, limits_url: str | None, processes: int = 2, run_for: float = 8.0):
    """Start ``processes`` readers together; the v1 request times and statuses the simulator saw."""
    base_url = json.loads(os.environ["AIRFLOW_CONN_NETSKOPE_TEST_V1"])["extra"]["base_url"]
    conn = {"conn_type": "netskope", "password": NETSKOPE_V1_TOKEN,
            "extra": {"base_url": base_url, "api_version": "v1"}}
    env = {**os.environ, "AIRFLOW_CONN_NETSKOPE_RATE": json.dumps(conn)}
    env.pop("SECCOLLECT_LIMITS_URL", None)
    if limits_url:
        env["SECCOLLECT_LIMITS_URL"] = limits_url
    else:
        env["SECCOLLECT_BUDGETS"] = "process"  # the control: each process counts only its own requests
    for key in redis.scan_iter(f"seccollect:budget:netskope-v1:{base_url}:*"):
        redis.delete(key)  # a count left by an earlier run on this port
    netskope_sim.reset()
    start_at = time.time() + 8.0  # after every child has imported Airflow
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(start_at), str(run_for), NETSKOPE_START.isoformat()],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-3000:]
    recent = [r for r in netskope_sim.stats.snapshot()["recent"] if r["path"].startswith("/api/v1/")]
    return [r["t"] for r in recent], [r["status"] for r in recent]


def test_two_processes_of_one_v1_tenant_stay_within_its_limit_together(netskope_sim, redis_client) -> None:  # noqa: F811
    times, statuses = _race(netskope_sim, redis_client, REDIS_URL)
    assert len(times) > V1_LIMIT, "the readers did not push hard enough to test the limit"
    assert _busiest(times, V1_PERIOD) <= V1_LIMIT
    assert "429" not in statuses


def test_control_budgets_per_process_overrun_the_tenant_limit(netskope_sim, redis_client) -> None:  # noqa: F811
    times, statuses = _race(netskope_sim, redis_client, None)
    assert _busiest(times, V1_PERIOD) > V1_LIMIT or "429" in statuses
