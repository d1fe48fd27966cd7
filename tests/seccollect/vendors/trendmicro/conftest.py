"""Fixtures of the Trend Micro CAS tests: a dataset relative to the real clock (the API's 72-hour horizon
is judged against real time), a simulator on loopback, and connections pointing at it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

CAS_TOKEN = "test-cas-token-3b9d"


@pytest.fixture(scope="session")
def cas_now() -> datetime:
    """The tests' "now", on a 5-minute boundary; data spans the 73 hours before it."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=now.minute % 5)


@pytest.fixture(scope="session")
def cas_dataset(cas_now):
    from seccollect_dev.simulators.trendmicro import CasDataset

    return CasDataset(seed=5, start=cas_now - timedelta(hours=73), end=cas_now, per_hour=12,
                      services=("sharepoint", "onedrive", "exchange"))


@pytest.fixture
def budget_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shared-budget SQLite file of the test's own (no state from other tests)."""
    path = tmp_path / "budget.sqlite3"
    monkeypatch.setenv("SECCOLLECT_BUDGET_PATH", str(path))
    monkeypatch.delenv("SECCOLLECT_BUDGET_CONN_ID", raising=False)
    return path


@pytest.fixture
def cas_sim(cas_dataset, monkeypatch: pytest.MonkeyPatch, budget_file) -> Iterator[object]:
    """A CAS simulator on 127.0.0.1 with a generous rate limit, and the connection ``trendmicro_test``
    (a fresh token per test: every test has a budget of its own)."""
    from seccollect_dev.simulators.base import SimulatorServer
    from seccollect_dev.simulators.trendmicro import CasOptions, CasSimulator

    token = f"{CAS_TOKEN}-{uuid.uuid4().hex[:8]}"
    app = CasSimulator(cas_dataset, [token], CasOptions(rate_limit=600, rate_period=60))
    with SimulatorServer(app) as server:
        app.url = server.url
        app.token = token
        monkeypatch.setenv(
            "AIRFLOW_CONN_TRENDMICRO_TEST",
            json.dumps({"conn_type": "trendmicro_cas", "host": server.url, "password": token,
                        "extra": {"requests_per_minute": 600}}),
        )
        yield app
