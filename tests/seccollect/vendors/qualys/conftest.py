"""Fixtures of the Qualys tests: a seeded data set, its simulator on loopback, connections to it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

#: The test subscription's data: two hours of processing on a fixed day.
QUALYS_START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
QUALYS_END = QUALYS_START + timedelta(hours=2)
QUALYS_USER = "acme_qa"
QUALYS_PASSWORD = "test-pass-7b1d"


@pytest.fixture
def qualys_dataset():
    from seccollect_dev.simulators.qualys import QualysDataset

    return QualysDataset(seed=5, start=QUALYS_START, end=QUALYS_END, hosts=60, detections_per_host=5)


@pytest.fixture
def qualys_sim(qualys_dataset, monkeypatch: pytest.MonkeyPatch, tmp_path):
    """The simulator (its clock a day after all data) + connections ``qualys_test`` and ``qualys_test_b``
    (a second connection to the same account); the account's slots and call budgets are the test's own
    (lock files and an SQLite budget in its directory, whatever the environment says)."""
    from seccollect_dev.simulators.base import SimulatorServer
    from seccollect_dev.simulators.qualys import QualysSimulator

    app = QualysSimulator(qualys_dataset, users={QUALYS_USER: QUALYS_PASSWORD},
                          clock=lambda: QUALYS_END.timestamp() + 86_400)
    monkeypatch.setenv("SECCOLLECT_SLOTS_DIR", str(tmp_path / "slots"))
    monkeypatch.setenv("SECCOLLECT_BUDGET_PATH", str(tmp_path / "budget.sqlite3"))
    for shared in ("SECCOLLECT_LIMITS_URL", "SECCOLLECT_BUDGET_CONN_ID", "SECCOLLECT_BUDGETS"):
        monkeypatch.delenv(shared, raising=False)
    with SimulatorServer(app) as server:
        for conn_id in ("qualys_test", "qualys_test_b"):
            monkeypatch.setenv(
                f"AIRFLOW_CONN_{conn_id.upper()}",
                json.dumps({"conn_type": "qualys", "host": server.url + "/", "login": QUALYS_USER,
                            "password": QUALYS_PASSWORD,
                            "extra": {"concurrency_limit": 2, "concurrency_wait_seconds": 0.2}}),
            )
        app.url = server.url
        yield app


@pytest.fixture
def fast_backoff(monkeypatch):
    """Near-zero backoff for retried pages (the HTTP layer's real backoff is seconds)."""
    from seccollect.http.client import RetryPolicy

    real_backoff = RetryPolicy.backoff
    monkeypatch.setattr(RetryPolicy, "backoff", lambda self, attempt, rng=None: min(real_backoff(self, attempt, rng), 0.05))
